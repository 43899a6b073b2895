using System.Text.Json;
using Afnio.Api.Tests.Infrastructure;
using Afnio.Data.Webhooks;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>
/// Kills the Worker process while a webhook request is in flight, starts a new one, and checks the
/// event is delivered again with the same <c>webhook-id</c>, once more, and logged honestly.
/// </summary>
public sealed class WebhookCrashTests
{
    [Fact]
    public async Task AWorkerKilledMidRequest_RedeliversTheSameEvent_WithTheSameWebhookId()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var processes = await SeparateProcesses.StartAsync("afnio_hook_crash", new Dictionary<string, string>
        {
            ["Afnio__Webhooks__AllowPrivateAddresses"] = "true", // the receiver listens on loopback
            ["Afnio__Webhooks__AllowHttp"] = "true",
            ["Afnio__Webhooks__TimeoutSeconds"] = "3",
            ["Afnio__Webhooks__RedispatchAfterSeconds"] = "1",
            ["Afnio__Webhooks__PollIntervalSeconds"] = "0.2",
        });
        var project = await processes.CreateProjectAsync("webhooks");
        var path = $"crash-{Guid.NewGuid():N}";
        // The first request hangs until the Worker dies; later ones are answered at once.
        receiver.Enqueue(path, new ReceiverReply(200, Delay: TimeSpan.FromSeconds(60)));
        var endpoint = await project.Client.PostJsonAsync("/v1/webhook_endpoints", new { url = receiver.Url(path), events = new[] { "job.succeeded" } });
        var secret = endpoint.GetProperty("secret").GetString()!;

        var job = await WebhookDeliveryTests.SucceedingJobAsync(project);
        await receiver.WaitForAsync(path, 1);
        processes.KillWorker();
        processes.StartWorker();

        var requests = await receiver.WaitForAsync(path, 2, seconds: 90);
        Assert.All(requests, r => Assert.True(WebhookReceiver.Verify(secret, r)));
        Assert.Equal(requests[0].Id, requests[1].Id);
        Assert.Equal(requests[0].Body, requests[1].Body);
        using (var body = JsonDocument.Parse(requests[1].Body))
        {
            Assert.Equal(job, body.RootElement.GetProperty("data").GetProperty("id").GetString());
        }

        var endpointId = endpoint.GetProperty("id").GetString()!;
        var delivery = await WebhookDeliveryTests.SettledDeliveryAsync(project, endpointId);
        Assert.True(delivery.GetProperty("status").GetString() == "succeeded", $"{delivery}\n{processes.Worker.Output}");
        var attempts = delivery.GetProperty("attempts").EnumerateArray().ToList();
        Assert.Equal(["interrupted", "succeeded"], attempts.Select(a => a.GetProperty("status").GetString()));
        Assert.Equal([1, 2], attempts.Select(a => a.GetProperty("number").GetInt32()));

        await Task.Delay(2000);
        Assert.Equal(2, receiver.On(path).Count);
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        Assert.True(PrefixedId.TryParse(PrefixedId.Event, requests[0].Id, out var eventId));
        Assert.Equal(1, await db.Events.CountAsync(e => e.Type == "job.succeeded"));
        Assert.Equal(1, await db.WebhookDeliveries.CountAsync(d => d.EventId == eventId));
        Assert.Equal(WebhookDelivery.Succeeded, (await db.WebhookDeliveries.SingleAsync(d => d.EventId == eventId)).Status);
    }
}
