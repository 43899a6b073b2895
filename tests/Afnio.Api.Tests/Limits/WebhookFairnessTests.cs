using System.Collections.Concurrent;
using System.Text.Json;
using Afnio.Api.Tests.Infrastructure;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Afnio.Api.Tests.Limits;

/// <summary>
/// The Worker with more delivery slots than one project may use, a long attempt timeout (so a slow
/// receiver really holds its slots), and a failing streak of two attempts before the short timeout.
/// </summary>
public sealed class WebhookFairnessApp : WebhookWorkerApp
{
    public const int PerProject = 2;

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>(base.Settings)
    {
        ["Afnio:Webhooks:WorkerCount"] = "4",
        ["Afnio:Webhooks:MaxInFlightPerProject"] = PerProject.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Afnio:Webhooks:MaxInFlightPerEndpoint"] = "1",
        ["Afnio:Webhooks:TimeoutSeconds"] = "60",
        ["Afnio:Webhooks:FailingAfterAttempts"] = "2",
        ["Afnio:Webhooks:FailingTimeoutSeconds"] = "1",
        ["Afnio:Webhooks:RetryScheduleSeconds:2"] = "1",
        ["Afnio:Webhooks:RetryScheduleSeconds:3"] = "1",
        ["Afnio:Webhooks:RetryScheduleSeconds:4"] = "1",
    };
}

/// <summary>
/// One project's slow receivers cannot hold up another project's webhooks: deliveries are limited
/// per project and per endpoint and taken round-robin across projects, and an endpoint that keeps
/// failing gets a shorter timeout per attempt.
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed class WebhookFairnessTests(WebhookFairnessApp app) : IClassFixture<WebhookFairnessApp>
{
    [Fact]
    public async Task AProjectWithManySlowEndpoints_HoldsOnlyItsShare_AndAnotherProjectsWebhookArrives()
    {
        await using var slow = await HoldingReceiver.StartAsync();
        var noisy = await app.CreateProjectAsync("many slow endpoints");
        const int endpoints = 6;
        for (var i = 0; i < endpoints; i++)
        {
            await noisy.Client.PostJsonAsync("/v1/webhook_endpoints", new { url = slow.Url($"a{i}"), events = new[] { "job.succeeded" } });
        }

        // Two events: twelve deliveries, all due now, none of which the slow receiver answers yet.
        await WebhookDeliveryTests.SucceedingJobAsync(noisy);
        await WebhookDeliveryTests.SucceedingJobAsync(noisy);
        await Eventually.UntilAsync(() => Task.FromResult(slow.Holding == WebhookFairnessApp.PerProject), TimeSpan.FromSeconds(30),
            () => $"the slow receiver holds {slow.Holding} requests");

        var quiet = await app.CreateProjectAsync("one fast endpoint");
        var path = $"b-{Guid.NewGuid():N}";
        var created = await quiet.Client.PostJsonAsync("/v1/webhook_endpoints", new { url = app.Receiver.Url(path), events = new[] { "job.succeeded" } });
        await WebhookDeliveryTests.SucceedingJobAsync(quiet);

        await app.Receiver.WaitForAsync(path, 1, seconds: 30);
        var delivery = await WebhookDeliveryTests.SettledDeliveryAsync(quiet, created.GetProperty("id").GetString()!);
        Assert.Equal("succeeded", delivery.GetProperty("status").GetString());
        // B got through while A's receiver still held every request it had been sent, and A was sent
        // no more than its share.
        Assert.False(slow.Released);
        Assert.Equal(WebhookFairnessApp.PerProject, slow.Holding);
        Assert.Equal(WebhookFairnessApp.PerProject, slow.Received);

        slow.Release();
        await Eventually.UntilAsync(() => Task.FromResult(slow.Received == 2 * endpoints), TimeSpan.FromSeconds(60),
            () => $"the slow receiver got {slow.Received} of {2 * endpoints} requests");
        await using var db = app.CreateDbContext();
        Assert.True(PrefixedId.TryParse(PrefixedId.Project, noisy.Id, out var noisyId));
        await Eventually.UntilAsync(async () => await db.WebhookDeliveries.CountAsync(d => d.ProjectId == noisyId && d.Status == "succeeded") == 2 * endpoints,
            TimeSpan.FromSeconds(30), () => "the noisy project's deliveries did not all succeed");
        Assert.Equal(WebhookFairnessApp.PerProject, slow.MaxConcurrent);
        Assert.Equal(1, slow.MaxConcurrentOnOnePath);
    }

    [Fact]
    public async Task AnEndpointThatKeepsFailing_GetsTheShortTimeout_UntilItSucceedsAgain()
    {
        var project = await app.CreateProjectAsync("failing endpoint");
        var path = $"f-{Guid.NewGuid():N}";
        // Two quick failures start the streak; the third attempt waits longer than the short timeout.
        app.Receiver.Enqueue(path, new ReceiverReply(500), new ReceiverReply(500), new ReceiverReply(200, Delay: TimeSpan.FromSeconds(4)), new ReceiverReply(200));
        var created = await project.Client.PostJsonAsync("/v1/webhook_endpoints", new { url = app.Receiver.Url(path), events = new[] { "job.succeeded" } });
        var endpoint = created.GetProperty("id").GetString()!;
        Assert.True(PrefixedId.TryParse(PrefixedId.WebhookEndpoint, endpoint, out var endpointId));

        await WebhookDeliveryTests.SucceedingJobAsync(project);
        var delivery = await WebhookDeliveryTests.SettledDeliveryAsync(project, endpoint);
        Assert.Equal("succeeded", delivery.GetProperty("status").GetString());
        var attempts = delivery.GetProperty("attempts").EnumerateArray().ToList();
        Assert.Equal(["failed", "failed", "failed", "succeeded"], attempts.Select(a => a.GetProperty("status").GetString()));
        Assert.Equal("No response within 1 s.", attempts[2].GetProperty("error").GetString());
        Assert.InRange(attempts[2].GetProperty("duration_ms").GetInt32(), 0, 3999);
        await using var db = app.CreateDbContext();
        Assert.Equal(0, await db.WebhookEndpoints.Where(e => e.Id == endpointId).Select(e => e.ConsecutiveFailures).SingleAsync());

        // After the success the full timeout applies again: an answer slower than the short timeout is taken.
        app.Receiver.Enqueue(path, new ReceiverReply(200, Delay: TimeSpan.FromSeconds(2)));
        await WebhookDeliveryTests.SucceedingJobAsync(project);
        JsonElement second = default;
        await Eventually.UntilAsync(async () =>
        {
            var deliveries = (await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}/deliveries")).GetProperty("data").EnumerateArray().ToList();
            second = deliveries.FirstOrDefault(d => d.GetProperty("id").GetString() != delivery.GetProperty("id").GetString());
            return second.ValueKind == JsonValueKind.Object && second.GetProperty("status").GetString() != "pending";
        }, TimeSpan.FromSeconds(30), () => $"the second delivery did not settle: {second}", pollMs: 100);
        var attempt = Assert.Single(second.GetProperty("attempts").EnumerateArray());
        Assert.Equal("succeeded", attempt.GetProperty("status").GetString());
        Assert.True(attempt.GetProperty("duration_ms").GetInt32() >= 1900, $"{attempt}");
    }

    /// <summary>
    /// A receiver that answers nothing until released, and counts how many requests it holds at once,
    /// in all and on any one path.
    /// </summary>
    private sealed class HoldingReceiver : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly ConcurrentDictionary<string, int> _perPath = new();
        private readonly Lock _lock = new();
        private int _holding;
        private int _received;
        private int _maxConcurrent;
        private int _maxOnOnePath;

        private HoldingReceiver(WebApplication app) => _app = app;

        public string BaseUrl { get; private set; } = string.Empty;

        public int Holding { get { lock (_lock) { return _holding; } } }

        public int Received { get { lock (_lock) { return _received; } } }

        public int MaxConcurrent { get { lock (_lock) { return _maxConcurrent; } } }

        public int MaxConcurrentOnOnePath { get { lock (_lock) { return _maxOnOnePath; } } }

        public bool Released => _gate.Task.IsCompleted;

        public static async Task<HoldingReceiver> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            var app = builder.Build();
            var receiver = new HoldingReceiver(app);
            app.MapPost("/{path}", receiver.HandleAsync);
            await app.StartAsync();
            receiver.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return receiver;
        }

        public string Url(string path) => $"{BaseUrl}/{path}";

        public void Release() => _gate.TrySetResult();

        public async ValueTask DisposeAsync()
        {
            Release();
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        private async Task HandleAsync(HttpContext context, string path)
        {
            lock (_lock)
            {
                _received++;
                _holding++;
                _maxConcurrent = Math.Max(_maxConcurrent, _holding);
                _maxOnOnePath = Math.Max(_maxOnOnePath, _perPath.AddOrUpdate(path, 1, (_, n) => n + 1));
            }

            try
            {
                await _gate.Task.WaitAsync(context.RequestAborted);
                context.Response.StatusCode = 200;
            }
            catch (OperationCanceledException)
            {
                // The sender gave up; nothing to answer.
            }
            finally
            {
                lock (_lock)
                {
                    _holding--;
                    _perPath.AddOrUpdate(path, 0, (_, n) => n - 1);
                }
            }
        }
    }
}
