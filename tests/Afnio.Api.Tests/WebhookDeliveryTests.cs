using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Afnio.Api.Tests.Infrastructure;
using Afnio.Data.Webhooks;
using Afnio.Worker.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Tests;

/// <summary>
/// Webhook delivery end to end: events written with the change they report, delivered by the
/// Worker to a receiver on loopback that checks every signature with its own HMAC code.
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed class WebhookDeliveryTests(WebhookWorkerApp app) : IClassFixture<WebhookWorkerApp>
{
    private WebhookReceiver Receiver => app.Receiver;

    [Fact]
    public void TheSigner_MatchesTheStandardWebhooksKnownAnswer()
    {
        var signature = WebhookSecrets.Sign(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "msg_p5jXN8AQM9LWM0D4loKWxJek",
            DateTimeOffset.FromUnixTimeSeconds(1614265330), "{\"test\": 2432232314}");

        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", signature);
    }

    [Fact]
    public async Task AJobThatSucceeds_IsDeliveredOnce_Signed_WithAThinPayloadMatchingTheEventsList()
    {
        var project = await app.CreateProjectAsync();
        var path = Path();
        var (endpoint, secret) = await EndpointAsync(project, path, "job.succeeded");
        var (other, _) = await EndpointAsync(project, Path(), "run.succeeded");

        var job = await SucceedingJobAsync(project);

        var request = Assert.Single(await Receiver.WaitForAsync(path, 1));
        Assert.True(WebhookReceiver.Verify(secret, request), "the signature must verify with the endpoint's secret");
        Assert.False(WebhookReceiver.Verify(WebhookSecrets.NewSecret(), request), "another secret must not verify");
        Assert.False(WebhookReceiver.Verify(secret, request with { Body = request.Body.Replace("job_", "jab_", StringComparison.Ordinal) }),
            "a changed body must not verify");
        using var payload = JsonDocument.Parse(request.Body);
        var root = payload.RootElement;
        Assert.Equal(["id", "object", "type", "created_at", "data"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal(request.Id, root.GetProperty("id").GetString());
        Assert.Equal("event", root.GetProperty("object").GetString());
        Assert.Equal("job.succeeded", root.GetProperty("type").GetString());
        Assert.Equal(job, root.GetProperty("data").GetProperty("id").GetString());
        Assert.Equal("backward", root.GetProperty("data").GetProperty("job_type").GetString());

        var listed = Assert.Single((await project.Client.GetJsonAsync("/v1/events?type=job.succeeded")).GetProperty("data").EnumerateArray());
        Assert.Equal(request.Id, listed.GetProperty("id").GetString());
        Assert.Equal(root.GetProperty("created_at").GetInt64(), listed.GetProperty("created_at").GetInt64());
        Assert.Equal(job, listed.GetProperty("data").GetProperty("id").GetString());
        Assert.Equal(request.Id, (await project.Client.GetJsonAsync($"/v1/events/{request.Id}")).GetProperty("id").GetString());

        var delivery = await SettledDeliveryAsync(project, endpoint);
        Assert.Equal("succeeded", delivery.GetProperty("status").GetString());
        Assert.Equal(request.Id, delivery.GetProperty("event_id").GetString());
        var attempt = Assert.Single(delivery.GetProperty("attempts").EnumerateArray());
        Assert.Equal(("succeeded", 200, "ok", "scheduled"), (attempt.GetProperty("status").GetString(), attempt.GetProperty("response_status").GetInt32(),
            attempt.GetProperty("response_body").GetString(), attempt.GetProperty("trigger").GetString()));
        Assert.Empty((await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{other}/deliveries")).GetProperty("data").EnumerateArray());

        await Task.Delay(1500);
        Assert.Single(Receiver.On(path));
    }

    [Fact]
    public async Task FailedAttempts_AreRetriedOnTheSchedule_WithTheSameWebhookId_AndLogged()
    {
        var project = await app.CreateProjectAsync();
        var path = Path();
        var longBody = string.Concat(Enumerable.Repeat("boom ", 1000));
        Receiver.Enqueue(path, new ReceiverReply(500, Body: longBody), new ReceiverReply(503, Body: "busy"));
        var (endpoint, secret) = await EndpointAsync(project, path, "*");

        await SucceedingJobAsync(project);

        var requests = await Receiver.WaitForAsync(path, 3);
        Assert.All(requests, r => Assert.True(WebhookReceiver.Verify(secret, r)));
        Assert.Single(requests.Select(r => r.Id).Distinct());
        // The configured schedule waits 1 s after the first failure and 2 s after the second.
        Assert.True(requests[1].ReceivedAt - requests[0].ReceivedAt >= TimeSpan.FromSeconds(0.95), $"first retry after {requests[1].ReceivedAt - requests[0].ReceivedAt}");
        Assert.True(requests[2].ReceivedAt - requests[1].ReceivedAt >= TimeSpan.FromSeconds(1.95), $"second retry after {requests[2].ReceivedAt - requests[1].ReceivedAt}");

        var delivery = await SettledDeliveryAsync(project, endpoint);
        Assert.Equal("succeeded", delivery.GetProperty("status").GetString());
        Assert.Equal(3, delivery.GetProperty("attempt_count").GetInt32());
        var attempts = delivery.GetProperty("attempts").EnumerateArray().ToList();
        Assert.Equal([1, 2, 3], attempts.Select(a => a.GetProperty("number").GetInt32()));
        Assert.Equal(["failed", "failed", "succeeded"], attempts.Select(a => a.GetProperty("status").GetString()));
        Assert.Equal([500, 503, 200], attempts.Select(a => a.GetProperty("response_status").GetInt32()));
        // The log keeps the start of each response: at most 2,048 characters.
        Assert.Equal([longBody[..WebhookSender.BodyLimit], "busy", "ok"], attempts.Select(a => a.GetProperty("response_body").GetString()));
        Assert.Equal(JsonValueKind.Null, (await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}")).GetProperty("failing_since").ValueKind);
    }

    [Fact]
    public async Task AResponseCutShort_IsAFailedAttempt_AndTheDeliveryMovesOn()
    {
        var project = await app.CreateProjectAsync();
        var path = Path();
        Receiver.Enqueue(path, new ReceiverReply(200, Body: "partial", CutShort: true));
        var (endpoint, _) = await EndpointAsync(project, path, "job.succeeded");

        await SucceedingJobAsync(project);

        await Receiver.WaitForAsync(path, 2);
        var delivery = await SettledDeliveryAsync(project, endpoint);
        Assert.Equal("succeeded", delivery.GetProperty("status").GetString());
        var attempts = delivery.GetProperty("attempts").EnumerateArray().ToList();
        Assert.Equal(["failed", "succeeded"], attempts.Select(a => a.GetProperty("status").GetString()));
        // Depending on when the connection drops, the client sees a broken response or a broken request.
        Assert.Matches("^The (response could not be read|request failed): ", attempts[0].GetProperty("error").GetString());
    }

    [Fact]
    public async Task ADeliveryThatRunsOutOfRetries_Fails_AndAManualRetryRedeliversTheSameEvent()
    {
        var project = await app.CreateProjectAsync();
        var path = Path();
        Receiver.SetDefault(path, new ReceiverReply(500));
        var (endpoint, secret) = await EndpointAsync(project, path, "job.succeeded");

        await SucceedingJobAsync(project);

        await Receiver.WaitForAsync(path, 3);
        var failed = await SettledDeliveryAsync(project, endpoint);
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal(3, failed.GetProperty("attempt_count").GetInt32());
        Assert.Equal("The receiver answered 500.", failed.GetProperty("last_error").GetString());
        Assert.Equal(JsonValueKind.Null, failed.GetProperty("next_attempt_at").ValueKind);
        var stillEnabled = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}");
        Assert.True(stillEnabled.GetProperty("enabled").GetBoolean());
        Assert.NotEqual(JsonValueKind.Null, stillEnabled.GetProperty("failing_since").ValueKind);
        await Task.Delay(2500);
        Assert.Equal(3, Receiver.On(path).Count);

        Receiver.SetDefault(path, new ReceiverReply(204, Body: string.Empty));
        using var retry = await project.Client.PostAsync($"/v1/webhook_deliveries/{failed.GetProperty("id").GetString()}/retry", null);
        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);

        var requests = await Receiver.WaitForAsync(path, 4);
        Assert.True(WebhookReceiver.Verify(secret, requests[3]));
        Assert.Equal(requests[0].Id, requests[3].Id);
        var retried = await SettledDeliveryAsync(project, endpoint);
        Assert.Equal("succeeded", retried.GetProperty("status").GetString());
        var last = retried.GetProperty("attempts").EnumerateArray().Last();
        Assert.Equal((4, "manual", "succeeded", 204), (last.GetProperty("number").GetInt32(), last.GetProperty("trigger").GetString(),
            last.GetProperty("status").GetString(), last.GetProperty("response_status").GetInt32()));
    }

    [Fact]
    public async Task A410_DisablesTheEndpoint_WithAnEventSayingSo_AndNothingMoreIsSentToIt()
    {
        var project = await app.CreateProjectAsync();
        var gonePath = Path();
        var watchPath = Path();
        Receiver.SetDefault(gonePath, new ReceiverReply(410, Body: "gone"));
        var (gone, _) = await EndpointAsync(project, gonePath, "job.succeeded");
        var (_, watchSecret) = await EndpointAsync(project, watchPath, "webhook_endpoint.disabled");

        await SucceedingJobAsync(project);

        var notice = Assert.Single(await Receiver.WaitForAsync(watchPath, 1));
        Assert.True(WebhookReceiver.Verify(watchSecret, notice));
        using (var body = JsonDocument.Parse(notice.Body))
        {
            Assert.Equal("webhook_endpoint.disabled", body.RootElement.GetProperty("type").GetString());
            Assert.Equal(gone, body.RootElement.GetProperty("data").GetProperty("id").GetString());
            Assert.Equal("gone", body.RootElement.GetProperty("data").GetProperty("reason").GetString());
        }

        var endpoint = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{gone}");
        Assert.False(endpoint.GetProperty("enabled").GetBoolean());
        Assert.Equal("gone", endpoint.GetProperty("disabled_reason").GetString());
        var delivery = await SettledDeliveryAsync(project, gone);
        Assert.Equal(("failed", 1), (delivery.GetProperty("status").GetString(), delivery.GetProperty("attempt_count").GetInt32()));
        using (var retry = await project.Client.PostAsync($"/v1/webhook_deliveries/{delivery.GetProperty("id").GetString()}/retry", null))
        {
            await retry.AssertProblemAsync(409, "webhook_endpoint_disabled");
        }

        await SucceedingJobAsync(project);
        await Task.Delay(1500);
        Assert.Single(Receiver.On(gonePath));
        Assert.Single((await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{gone}/deliveries")).GetProperty("data").EnumerateArray());

        var enabled = await PatchAsync(project, $"/v1/webhook_endpoints/{gone}", new { enabled = true });
        Assert.True(enabled.GetProperty("enabled").GetBoolean());
        Assert.Equal(JsonValueKind.Null, enabled.GetProperty("disabled_reason").ValueKind);
    }

    [Fact]
    public async Task AnEndpointFailingForTheWholeWindow_IsDisabledAtItsNextFailure()
    {
        var project = await app.CreateProjectAsync();
        var path = Path();
        Receiver.SetDefault(path, new ReceiverReply(500));
        var (endpoint, _) = await EndpointAsync(project, path, "job.succeeded");
        // Its attempts have been failing for six days (the window is five).
        await using (var db = app.CreateDbContext())
        {
            Assert.True(Afnio.Domain.Common.PrefixedId.TryParse("we", endpoint, out var id));
            await db.WebhookEndpoints.Where(e => e.Id == id).ExecuteUpdateAsync(s => s.SetProperty(e => e.FailingSince, DateTimeOffset.UtcNow.AddDays(-6)));
        }

        await SucceedingJobAsync(project);

        await Receiver.WaitForAsync(path, 1);
        var delivery = await SettledDeliveryAsync(project, endpoint);
        Assert.Equal(("failed", 1), (delivery.GetProperty("status").GetString(), delivery.GetProperty("attempt_count").GetInt32()));
        var disabled = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}");
        Assert.Equal((false, "failing"), (disabled.GetProperty("enabled").GetBoolean(), disabled.GetProperty("disabled_reason").GetString()));
        var notice = Assert.Single((await project.Client.GetJsonAsync("/v1/events?type=webhook_endpoint.disabled")).GetProperty("data").EnumerateArray());
        Assert.Equal(endpoint, notice.GetProperty("data").GetProperty("id").GetString());
    }

    [Fact]
    public async Task RedirectsAreNotFollowed_AndSlowReceiversTimeOut_BothCountingAsFailures()
    {
        var project = await app.CreateProjectAsync();
        var (redirectPath, targetPath, slowPath) = (Path(), Path(), Path());
        Receiver.SetDefault(redirectPath, new ReceiverReply(302, Location: Receiver.Url(targetPath)));
        Receiver.SetDefault(slowPath, new ReceiverReply(200, Delay: TimeSpan.FromSeconds(10)));
        var (redirect, _) = await EndpointAsync(project, redirectPath, "job.succeeded");
        var (slow, _) = await EndpointAsync(project, slowPath, "job.succeeded");

        await SucceedingJobAsync(project);

        var redirected = await FirstAttemptAsync(project, redirect);
        Assert.Equal(("failed", 302), (redirected.GetProperty("status").GetString(), redirected.GetProperty("response_status").GetInt32()));
        Assert.Contains("redirect", redirected.GetProperty("error").GetString(), StringComparison.Ordinal);
        var timedOut = await FirstAttemptAsync(project, slow);
        Assert.Equal("failed", timedOut.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, timedOut.GetProperty("response_status").ValueKind);
        Assert.Equal("No response within 2 s.", timedOut.GetProperty("error").GetString());
        Assert.InRange(timedOut.GetProperty("duration_ms").GetInt32(), 1900, 9000);
        Assert.Empty(Receiver.On(targetPath));

        await project.Client.DeleteAsync($"/v1/webhook_endpoints/{redirect}");
        await project.Client.DeleteAsync($"/v1/webhook_endpoints/{slow}");
    }

    [Fact]
    public async Task ARotatedSecret_SignsAlongsideThePreviousOne_UntilThatExpires()
    {
        var project = await app.CreateProjectAsync();
        var path = Path();
        var (endpoint, first) = await EndpointAsync(project, path, "job.succeeded");

        var rotated = await project.Client.PostJsonAsync($"/v1/webhook_endpoints/{endpoint}/rotate_secret", new { });
        var second = rotated.GetProperty("secret").GetString()!;
        Assert.StartsWith("whsec_", second, StringComparison.Ordinal);
        Assert.NotEqual(first, second);
        Assert.InRange(rotated.GetProperty("previous_secret_expires_at").GetInt64() - DateTimeOffset.UtcNow.ToUnixTimeSeconds(), 86_000, 86_400);
        await SucceedingJobAsync(project);
        var both = (await Receiver.WaitForAsync(path, 1))[0];
        Assert.Equal(2, both.Signature!.Split(' ').Length);
        Assert.True(WebhookReceiver.Verify(second, both));
        Assert.True(WebhookReceiver.Verify(first, both));

        var third = (await project.Client.PostJsonAsync($"/v1/webhook_endpoints/{endpoint}/rotate_secret", new { expire_previous_in_seconds = 0 }))
            .GetProperty("secret").GetString()!;
        await SucceedingJobAsync(project);
        var only = (await Receiver.WaitForAsync(path, 2))[1];
        Assert.Single(only.Signature!.Split(' '));
        Assert.True(WebhookReceiver.Verify(third, only));
        Assert.False(WebhookReceiver.Verify(second, only));
    }

    [Fact]
    public async Task Secrets_AreShownOnce_AndStoredEncrypted()
    {
        var project = await app.CreateProjectAsync();
        var (endpoint, secret) = await EndpointAsync(project, Path(), "job.succeeded");

        var shown = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}");
        Assert.False(shown.TryGetProperty("secret", out _));
        var listed = Assert.Single((await project.Client.GetJsonAsync("/v1/webhook_endpoints")).GetProperty("data").EnumerateArray());
        Assert.False(listed.TryGetProperty("secret", out _));
        await using var db = app.CreateDbContext();
        Assert.True(Afnio.Domain.Common.PrefixedId.TryParse("we", endpoint, out var id));
        var stored = await db.WebhookEndpoints.AsNoTracking().SingleAsync(e => e.Id == id);
        Assert.DoesNotContain(secret["whsec_".Length..], stored.Secret, StringComparison.Ordinal);
        Assert.Equal(secret, new WebhookSecrets(app.Services.GetRequiredService<Microsoft.AspNetCore.DataProtection.IDataProtectionProvider>()).Unprotect(stored.Secret));
    }

    [Fact]
    public async Task TheSender_RefusesNonPublicAddressesWhenConnecting_AfterResolvingTheName()
    {
        var path = Path();
        using var guarded = new WebhookSender(Options.Create(new WebhookOptions { TimeoutSeconds = 2 }));
        var port = new Uri(Receiver.BaseUrl).Port;

        foreach (var url in new[] { Receiver.Url(path), $"http://localhost:{port}/{path}", $"http://[::ffff:127.0.0.1]:{port}/{path}" })
        {
            var refused = await guarded.SendAsync(url, "evt_1", DateTimeOffset.UtcNow, "v1,x", "{}", TimeSpan.FromSeconds(2), CancellationToken.None);
            Assert.Null(refused.Status);
            Assert.Contains("non-public address", refused.Error, StringComparison.Ordinal);
        }

        Assert.Empty(Receiver.On(path));
        using var open = new WebhookSender(Options.Create(new WebhookOptions { TimeoutSeconds = 2, AllowPrivateAddresses = true }));
        Assert.Equal(200, (await open.SendAsync(Receiver.Url(path), "evt_1", DateTimeOffset.UtcNow, "v1,x", "{}", TimeSpan.FromSeconds(2), CancellationToken.None)).Status);
        Assert.Single(Receiver.On(path));
    }

    private static string Path() => $"hook-{Guid.NewGuid():N}";

    private async Task<(string Id, string Secret)> EndpointAsync(TestProject project, string path, params string[] events)
    {
        var created = await project.Client.PostJsonAsync("/v1/webhook_endpoints", new { url = Receiver.Url(path), events, description = "tests" });
        return (created.GetProperty("id").GetString()!, created.GetProperty("secret").GetString()!);
    }

    /// <summary>Runs a backward pass without a model (a string op) and returns its job id: a <c>job.succeeded</c> event.</summary>
    internal static async Task<string> SucceedingJobAsync(TestProject project)
    {
        var x = await project.VariableAsync("abc", "first input", requiresGrad: true);
        var y = await project.VariableAsync("def", "second input");
        var z = await project.OutputAsync("add", new { x, y });
        var feedback = await project.VariableAsync("feedback", "feedback");
        var job = await project.BackwardAsync(new { variables = new[] { z }, grad_variables = new[] { feedback } });
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        return job.GetProperty("id").GetString()!;
    }

    /// <summary>The endpoint's only delivery once it is not pending any more.</summary>
    internal static async Task<JsonElement> SettledDeliveryAsync(TestProject project, string endpoint)
    {
        JsonElement delivery = default;
        await Eventually.UntilAsync(async () =>
        {
            delivery = Assert.Single((await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}/deliveries")).GetProperty("data").EnumerateArray());
            return delivery.GetProperty("status").GetString() != "pending";
        }, TimeSpan.FromSeconds(30), () => $"the delivery stayed pending: {delivery}", pollMs: 100);
        return delivery;
    }

    private static async Task<JsonElement> FirstAttemptAsync(TestProject project, string endpoint)
    {
        JsonElement attempt = default;
        await Eventually.UntilAsync(async () =>
        {
            var delivery = Assert.Single((await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}/deliveries")).GetProperty("data").EnumerateArray());
            var attempts = delivery.GetProperty("attempts").EnumerateArray().ToList();
            attempt = attempts.FirstOrDefault();
            return attempts.Count > 0 && attempt.GetProperty("status").GetString() != "sending";
        }, TimeSpan.FromSeconds(30), () => $"no finished attempt: {attempt}", pollMs: 100);
        return attempt;
    }

    private static async Task<JsonElement> PatchAsync(TestProject project, string path, object body)
    {
        using var response = await project.Client.PatchAsJsonAsync(path, body);
        return await HttpJson.EnsureSuccessAsync(response);
    }
}
