namespace Afnio.Api.Tests.Infrastructure;

/// <summary>
/// <see cref="ModelWorkerApp"/> with a webhook receiver on loopback, webhooks allowed to reach it,
/// a short retry schedule, and schedule firings served by this host with a one-second poll.
/// </summary>
public class WebhookWorkerApp : ModelWorkerApp
{
    public WebhookReceiver Receiver { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Receiver = await WebhookReceiver.StartAsync();
    }

    protected override async Task DisposeFixtureAsync()
    {
        await base.DisposeFixtureAsync();
        if (Receiver is not null)
        {
            await Receiver.DisposeAsync();
        }
    }

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>(base.Settings)
    {
        ["Afnio:Webhooks:AllowPrivateAddresses"] = "true",
        ["Afnio:Webhooks:AllowHttp"] = "true",
        ["Afnio:Webhooks:TimeoutSeconds"] = "2",
        ["Afnio:Webhooks:RetryScheduleSeconds:0"] = "1",
        ["Afnio:Webhooks:RetryScheduleSeconds:1"] = "2",
        ["Afnio:Webhooks:PollIntervalSeconds"] = "0.5",
        ["Afnio:Webhooks:RedispatchAfterSeconds"] = "5",
        ["Afnio:Schedules:RunFirings"] = "true",
        ["Afnio:Schedules:PollIntervalSeconds"] = "1",
    };
}
