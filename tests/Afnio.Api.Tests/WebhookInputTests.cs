using Afnio.Data.Events;
using Afnio.Domain.Common;

namespace Afnio.Api.Tests;

/// <summary>
/// Webhook endpoints refuse every bad registration (the SSRF guard above all) with a precise 400
/// on its field, other projects' endpoints, deliveries and events are 404s, and a refused request
/// changes nothing.
/// </summary>
public sealed class WebhookInputTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    /// <summary>A public address written as such: accepted without a DNS lookup, and never called (no worker here).</summary>
    private const string PublicUrl = "https://93.184.216.34/hook";

    private const string UnknownEndpoint = "we_0000000000007000800000000000000a";
    private const string UnknownDelivery = "whd_0000000000007000800000000000000a";
    private const string UnknownEvent = "evt_0000000000007000800000000000000a";

    public static TheoryData<string, string> RefusedUrls => new()
    {
        // url, code
        { "http://93.184.216.34/hook", "webhook_url_not_allowed" },
        { "https://127.0.0.1/x", "webhook_url_not_allowed" },
        { "https://10.0.0.5/", "webhook_url_not_allowed" },
        { "https://169.254.169.254/latest/meta-data", "webhook_url_not_allowed" },
        { "https://[::1]/", "webhook_url_not_allowed" },
        { "https://[fe80::1]/", "webhook_url_not_allowed" },
        { "https://100.64.0.1/", "webhook_url_not_allowed" },
        { "https://0.0.0.0/", "webhook_url_not_allowed" },
        { "https://[::ffff:127.0.0.1]/", "webhook_url_not_allowed" },
        { "https://192.168.1.1/", "webhook_url_not_allowed" },
        { "https://172.16.0.1/", "webhook_url_not_allowed" },
        { "https://[fc00::1]/", "webhook_url_not_allowed" },
        { "https://[::]/", "webhook_url_not_allowed" },
        { "https://localhost/", "webhook_url_not_allowed" },
        { "https://LOCALHOST./", "webhook_url_not_allowed" },
        { "https://api.localhost/", "webhook_url_not_allowed" },
        { "https://foo.internal/", "webhook_url_not_allowed" },
        { "https://intranet/", "webhook_url_not_allowed" },
        // Other spellings of loopback that the URL parser normalizes.
        { "https://2130706433/", "webhook_url_not_allowed" },
        { "https://0x7f000001/", "webhook_url_not_allowed" },
        { "https://127.1/", "webhook_url_not_allowed" },
        { "https://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/", "webhook_url_not_allowed" },
        { "https://127\u30020\u30020\u30021/", "webhook_url_not_allowed" },
        { "not a url", "invalid_url" },
        { "https://example.com/\u0000", "invalid_url" },
        { "/relative/hook", "invalid_url" },
        { "ftp://example.com/", "invalid_url" },
        { "https://user:pw@example.com/", "invalid_url" },
        { "https://example.com/#frag", "invalid_url" },
        { "https://example.com/a b", "invalid_url" },
        { "https://example.com/" + new string('a', 2980), "invalid_url" },
        { "https://nothing-here.invalid/hook", "webhook_url_unresolvable" },
    };

    [Theory]
    [MemberData(nameof(RefusedUrls))]
    public async Task ARefusedUrl_IsA400OnUrl_AndRegistersNothing(string url, string code)
    {
        var project = await app.CreateProjectAsync();

        using var response = await project.Client.PostAsJsonAsync("/v1/webhook_endpoints", new { url, events = new[] { "*" } });

        var problem = await response.AssertProblemAsync(400, code);
        Assert.Equal("url", problem.GetProperty("param").GetString());
        await AssertNoEndpointsAsync(project);
    }

    [Fact]
    public async Task APublicAddress_IsRegistered_WithItsSecretShownOnce()
    {
        var project = await app.CreateProjectAsync();

        using var response = await project.Client.PostAsJsonAsync("/v1/webhook_endpoints",
            new { url = PublicUrl, events = new[] { "job.succeeded", "run.failed", "job.succeeded" }, description = "ops" });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = await HttpJson.EnsureSuccessAsync(response);
        var id = created.GetProperty("id").GetString()!;
        Assert.StartsWith("we_", id, StringComparison.Ordinal);
        Assert.Equal($"/v1/webhook_endpoints/{id}", response.Headers.Location?.OriginalString);
        Assert.Equal("webhook_endpoint", created.GetProperty("object").GetString());
        Assert.StartsWith("whsec_", created.GetProperty("secret").GetString(), StringComparison.Ordinal);
        Assert.Equal(PublicUrl, created.GetProperty("url").GetString());
        Assert.Equal(["job.succeeded", "run.failed"], created.GetProperty("events").EnumerateArray().Select(e => e.GetString()));
        Assert.True(created.GetProperty("enabled").GetBoolean());
        Assert.Equal("ops", created.GetProperty("description").GetString());
        var read = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{id}");
        Assert.False(read.TryGetProperty("secret", out _), "the secret is shown only when it is made");
        Assert.Equal(id, Assert.Single((await project.Client.GetJsonAsync("/v1/webhook_endpoints")).GetProperty("data").EnumerateArray()).GetProperty("id").GetString());
    }

    public static TheoryData<string, string, string?> BadBodies => new()
    {
        // raw body ($url = a public URL), code, param
        { "{\"events\": [\"*\"]}", "missing_field", "url" },
        { "{\"url\": \"$url\"}", "missing_field", "events" },
        { "{\"url\": \"$url\", \"events\": []}", "invalid_events", "events" },
        { "{\"url\": \"$url\", \"events\": [\"job.succeeded\", \"job.exploded\"]}", "invalid_event_type", "events[1]" },
        { "{\"url\": \"$url\", \"events\": [\"JOB.SUCCEEDED\"]}", "invalid_event_type", "events[0]" },
        { "{\"url\": \"$url\", \"events\": \"job.succeeded\"}", "invalid_type", "events" },
        { "{\"url\": \"$url\", \"events\": [\"*\", null]}", "invalid_event_type", "events[1]" },
        { "{\"url\": \"$url\", \"events\": [\"*\"], \"description\": \"a\\u0000b\"}", "invalid_description", "description" },
        { "{\"url\": \"$url\", \"events\": [\"*\"], \"enabled\": \"yes\"}", "invalid_type", "enabled" },
        { "{\"url\": 42, \"events\": [\"*\"]}", "invalid_type", "url" },
        { "{\"url\": \"$url\", \"events\": [\"*\"], \"description\": \"$long\"}", "invalid_description", "description" },
        { "{\"url\": \"$url\", \"events\": [\"*\"], \"description\": \"\"}", "invalid_description", "description" },
        { "{\"url\": \"$url\", \"events\": [\"*\"], \"colour\": \"red\"}", "unknown_field", "colour" },
        { "{\"url\": \"$url\", \"events\": [\"*\"]", "invalid_json", null },
        { "{\"url\": \"$url\", \"events\": [\"*\"],}", "invalid_json", null },
        { "[\"$url\"]", "invalid_type", null },
        { "", "invalid_request", null },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task ABadRegistrationBody_IsA400WithAStableCode_AndRegistersNothing(string body, string code, string? param)
    {
        var project = await app.CreateProjectAsync();
        var raw = body.Replace("$url", PublicUrl, StringComparison.Ordinal).Replace("$long", new string('d', 2001), StringComparison.Ordinal);

        using var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/webhook_endpoints", raw);

        var problem = await response.AssertProblemAsync(400, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        await AssertNoEndpointsAsync(project);
    }

    [Fact]
    public async Task TheFiftyFirstEndpoint_IsRefused()
    {
        var project = await app.CreateProjectAsync();
        for (var i = 0; i < 50; i++)
        {
            await project.Client.PostJsonAsync("/v1/webhook_endpoints", new { url = $"{PublicUrl}/{i}", events = new[] { "*" } });
        }

        using var response = await project.Client.PostAsJsonAsync("/v1/webhook_endpoints", new { url = $"{PublicUrl}/50", events = new[] { "*" } });

        await response.AssertProblemAsync(400, "too_many_webhook_endpoints");
        var all = (await project.Client.GetJsonAsync("/v1/webhook_endpoints?limit=100")).GetProperty("data");
        Assert.Equal(50, all.GetArrayLength());
        Assert.DoesNotContain(all.EnumerateArray(), e => e.GetProperty("url").GetString() == $"{PublicUrl}/50");
    }

    public static TheoryData<string, string, string> BadUpdates => new()
    {
        // body of PATCH, code, param
        { "{\"url\": \"https://127.0.0.1/\"}", "webhook_url_not_allowed", "url" },
        { "{\"url\": \"https://[::1]/\"}", "webhook_url_not_allowed", "url" },
        { "{\"url\": \"http://93.184.216.34/hook\"}", "webhook_url_not_allowed", "url" },
        { "{\"url\": \"https://metadata.google.internal/\"}", "webhook_url_not_allowed", "url" },
        { "{\"url\": \"https://user:pw@example.com/\"}", "invalid_url", "url" },
        { "{\"events\": []}", "invalid_events", "events" },
        { "{\"events\": [\"*\", \"nope\"]}", "invalid_event_type", "events[1]" },
        { "{\"description\": \"\"}", "invalid_description", "description" },
        { "{\"enabled\": \"no\"}", "invalid_type", "enabled" },
        // A valid URL with a bad event list changes neither.
        { "{\"url\": \"https://93.184.216.35/other\", \"events\": [\"bogus\"]}", "invalid_event_type", "events[0]" },
        { "{\"url\": \"https://93.184.216.35/other\", \"enabled\": false, \"description\": \"$long\"}", "invalid_description", "description" },
    };

    [Theory]
    [MemberData(nameof(BadUpdates))]
    public async Task ABadUpdate_IsA400_AndTheEndpointIsUnchanged(string body, string code, string param)
    {
        var project = await app.CreateProjectAsync();
        var id = await EndpointAsync(project);
        var before = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{id}");

        using var response = await project.Client.SendRawAsync(HttpMethod.Patch, $"/v1/webhook_endpoints/{id}",
            body.Replace("$long", new string('d', 2001), StringComparison.Ordinal));

        var problem = await response.AssertProblemAsync(400, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        var after = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{id}");
        Assert.Equal(before.GetRawText(), after.GetRawText());
        Assert.Equal(PublicUrl, after.GetProperty("url").GetString());
    }

    [Theory]
    [InlineData("{\"expire_previous_in_seconds\": -1}", "invalid_expire_previous_in_seconds", "expire_previous_in_seconds")]
    [InlineData("{\"expire_previous_in_seconds\": 10000000}", "invalid_expire_previous_in_seconds", "expire_previous_in_seconds")]
    [InlineData("{\"expire_previous_in_seconds\": 604801}", "invalid_expire_previous_in_seconds", "expire_previous_in_seconds")]
    [InlineData("{\"expire_previous_in_seconds\": \"soon\"}", "invalid_type", "expire_previous_in_seconds")]
    [InlineData("{\"expire_previous_in_seconds\": 1.5}", "invalid_type", "expire_previous_in_seconds")]
    public async Task ABadRotation_IsA400_AndKeepsTheSecret(string body, string code, string param)
    {
        var project = await app.CreateProjectAsync();
        var id = await EndpointAsync(project);
        var before = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{id}");

        using var response = await project.Client.SendRawAsync(HttpMethod.Post, $"/v1/webhook_endpoints/{id}/rotate_secret", body);

        var problem = await response.AssertProblemAsync(400, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        var after = await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{id}");
        Assert.Equal(before.GetRawText(), after.GetRawText());
        Assert.Equal(JsonValueKind.Null, after.GetProperty("previous_secret_expires_at").ValueKind);
    }

    [Fact]
    public async Task RotationBounds_AreInclusive()
    {
        var project = await app.CreateProjectAsync();
        var id = await EndpointAsync(project);

        var week = await project.Client.PostJsonAsync($"/v1/webhook_endpoints/{id}/rotate_secret", new { expire_previous_in_seconds = 604800 });
        Assert.StartsWith("whsec_", week.GetProperty("secret").GetString(), StringComparison.Ordinal);
        Assert.Equal(week.GetProperty("updated_at").GetInt64() + 604800, week.GetProperty("previous_secret_expires_at").GetInt64());

        var now = await project.Client.PostJsonAsync($"/v1/webhook_endpoints/{id}/rotate_secret", new { expire_previous_in_seconds = 0 });
        Assert.NotEqual(week.GetProperty("secret").GetString(), now.GetProperty("secret").GetString());
        Assert.Equal(JsonValueKind.Null, now.GetProperty("previous_secret_expires_at").ValueKind);
    }

    [Theory]
    [InlineData(UnknownEndpoint)]
    [InlineData("not-an-id")]
    [InlineData("sched_0000000000007000800000000000000a")]
    [InlineData("WE_0000000000007000800000000000000A")]
    [InlineData("we_zzzz")]
    public async Task UnknownOrMalformedEndpointIds_Are404_OnEveryRoute(string id)
    {
        var project = await app.CreateProjectAsync();
        await AssertEndpointRoutesAre404Async(project, id);
        await AssertNoEndpointsAsync(project);
    }

    [Theory]
    [InlineData(UnknownDelivery)]
    [InlineData("not-an-id")]
    [InlineData("we_0000000000007000800000000000000a")]
    public async Task UnknownOrMalformedDeliveryIds_Are404(string id)
    {
        var project = await app.CreateProjectAsync();
        await (await project.Client.GetAsync($"/v1/webhook_deliveries/{id}")).AssertProblemAsync(404, "webhook_delivery_not_found");
        await (await project.Client.PostAsJsonAsync($"/v1/webhook_deliveries/{id}/retry", new { })).AssertProblemAsync(404, "webhook_delivery_not_found");
    }

    [Theory]
    [InlineData(UnknownEvent)]
    [InlineData("not-an-id")]
    [InlineData("job_0000000000007000800000000000000a")]
    public async Task UnknownOrMalformedEventIds_Are404(string id)
    {
        var project = await app.CreateProjectAsync();
        var problem = await (await project.Client.GetAsync($"/v1/events/{id}")).AssertProblemAsync(404, "event_not_found");
        Assert.Equal("id", problem.GetProperty("param").GetString());
    }

    [Fact]
    public async Task AnotherProjectsEndpointsDeliveriesAndEvents_Are404_AreNotListed_AndAreNotChanged()
    {
        var project = await app.CreateProjectAsync();
        var other = await app.CreateProjectAsync();
        var endpoint = await EndpointAsync(other);
        var eventId = await PublishedEventAsync(other);
        var delivery = Assert.Single((await other.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}/deliveries")).GetProperty("data").EnumerateArray());
        var deliveryId = delivery.GetProperty("id").GetString()!;
        Assert.Equal(eventId, delivery.GetProperty("event_id").GetString());
        var before = await other.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}");

        await AssertEndpointRoutesAre404Async(project, endpoint);
        await (await project.Client.GetAsync($"/v1/webhook_deliveries/{deliveryId}")).AssertProblemAsync(404, "webhook_delivery_not_found");
        await (await project.Client.PostAsJsonAsync($"/v1/webhook_deliveries/{deliveryId}/retry", new { })).AssertProblemAsync(404, "webhook_delivery_not_found");
        await (await project.Client.GetAsync($"/v1/events/{eventId}")).AssertProblemAsync(404, "event_not_found");

        Assert.Empty((await project.Client.GetJsonAsync("/v1/events")).GetProperty("data").EnumerateArray());
        Assert.Empty((await project.Client.GetJsonAsync("/v1/events?type=job.cancelled")).GetProperty("data").EnumerateArray());
        await AssertNoEndpointsAsync(project);
        // The owner still sees all of it, unchanged.
        Assert.Equal(before.GetRawText(), (await other.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}")).GetRawText());
        Assert.Equal(eventId, (await other.Client.GetJsonAsync($"/v1/events/{eventId}")).GetProperty("id").GetString());
        var unchanged = await other.Client.GetJsonAsync($"/v1/webhook_deliveries/{deliveryId}");
        Assert.Equal(delivery.GetRawText(), unchanged.GetRawText());
    }

    [Theory]
    [InlineData("job.exploded")]
    [InlineData("*")]
    [InlineData("")]
    [InlineData("Job.Succeeded")]
    public async Task AnUnknownEventTypeFilter_IsA400(string type)
    {
        var project = await app.CreateProjectAsync();

        var problem = await (await project.Client.GetAsync($"/v1/events?type={Uri.EscapeDataString(type)}")).AssertProblemAsync(400, "invalid_event_type");

        Assert.Equal("type", problem.GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("done")]
    [InlineData("Pending")]
    [InlineData("")]
    public async Task AnUnknownDeliveryStatusFilter_IsA400(string status)
    {
        var project = await app.CreateProjectAsync();
        var id = await EndpointAsync(project);

        var problem = await (await project.Client.GetAsync($"/v1/webhook_endpoints/{id}/deliveries?status={Uri.EscapeDataString(status)}"))
            .AssertProblemAsync(400, "invalid_status");

        Assert.Equal("status", problem.GetProperty("param").GetString());
    }

    [Fact]
    public async Task RetryingADeliveryOfADisabledEndpoint_IsA409_AndLeavesItAsItWas()
    {
        var project = await app.CreateProjectAsync();
        var endpoint = await EndpointAsync(project);
        await PublishedEventAsync(project);
        var delivery = Assert.Single((await project.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}/deliveries")).GetProperty("data").EnumerateArray());
        var deliveryId = delivery.GetProperty("id").GetString()!;
        using (var disable = await project.Client.PatchAsJsonAsync($"/v1/webhook_endpoints/{endpoint}", new { enabled = false }))
        {
            Assert.False((await HttpJson.EnsureSuccessAsync(disable)).GetProperty("enabled").GetBoolean());
        }

        await (await project.Client.PostAsJsonAsync($"/v1/webhook_deliveries/{deliveryId}/retry", new { })).AssertProblemAsync(409, "webhook_endpoint_disabled");

        Assert.Equal(delivery.GetRawText(), (await project.Client.GetJsonAsync($"/v1/webhook_deliveries/{deliveryId}")).GetRawText());
    }

    private static async Task AssertEndpointRoutesAre404Async(TestProject project, string id)
    {
        foreach (var (method, path, body) in new (string, string, string?)[]
        {
            ("GET", $"/v1/webhook_endpoints/{id}", null),
            ("PATCH", $"/v1/webhook_endpoints/{id}", "{\"description\": \"mine now\"}"),
            ("PATCH", $"/v1/webhook_endpoints/{id}", "{\"url\": \"https://127.0.0.1/\"}"),
            ("DELETE", $"/v1/webhook_endpoints/{id}", null),
            ("POST", $"/v1/webhook_endpoints/{id}/rotate_secret", "{}"),
            ("POST", $"/v1/webhook_endpoints/{id}/rotate_secret", "{\"expire_previous_in_seconds\": 0}"),
            ("GET", $"/v1/webhook_endpoints/{id}/deliveries", null),
        })
        {
            using var response = await project.Client.SendRawAsync(new HttpMethod(method), path, body);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{method} {path} {body}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            var problem = await response.AssertProblemAsync(404, "webhook_endpoint_not_found");
            Assert.True(problem.GetProperty("param").GetString() == "id", $"{method} {path}: {problem}");
        }
    }

    private static async Task AssertNoEndpointsAsync(TestProject project) =>
        Assert.Empty((await project.Client.GetJsonAsync("/v1/webhook_endpoints")).GetProperty("data").EnumerateArray());

    private static async Task<string> EndpointAsync(TestProject project) =>
        (await project.Client.PostJsonAsync("/v1/webhook_endpoints", new { url = PublicUrl, events = new[] { "*" }, description = "tests" }))
            .GetProperty("id").GetString()!;

    /// <summary>
    /// Publishes a <c>job.succeeded</c> event of <paramref name="project"/> through the real outbox (which
    /// also queues a pending delivery per subscribed endpoint; no worker runs here to send it) and checks the
    /// project lists it; returns the event's id. (Cancelling a queued job would publish one through the API,
    /// but that path currently answers 500: see RunEnd.MarkEndedAsync.)
    /// </summary>
    private async Task<string> PublishedEventAsync(TestProject project)
    {
        Assert.True(PrefixedId.TryParse(PrefixedId.Project, project.Id, out var projectId));
        var job = PrefixedId.Format(PrefixedId.Job, PrefixedId.NewGuid());
        await using (var db = app.CreateDbContext())
        {
            await db.PublishAsync(projectId, EventTypes.JobSucceeded, new { id = job, job_type = "backward", error_code = (string?)null },
                DateTimeOffset.UtcNow, CancellationToken.None);
        }

        var listed = Assert.Single((await project.Client.GetJsonAsync("/v1/events")).GetProperty("data").EnumerateArray());
        Assert.Equal("job.succeeded", listed.GetProperty("type").GetString());
        Assert.Equal(job, listed.GetProperty("data").GetProperty("id").GetString());
        return listed.GetProperty("id").GetString()!;
    }
}
