using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

public sealed class IdempotencyTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task SameKeySameBody_ReplaysTheStoredResponse_AndCreatesOnce()
    {
        var project = await app.CreateProjectAsync();
        var key = Guid.NewGuid().ToString();

        using var first = await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "once", role = "r" });
        using var second = await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "once", role = "r" });

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, second.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());
        Assert.Equal(first.Headers.Location, second.Headers.Location);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, (await project.Client.GetJsonAsync("/v1/variables")).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task SameKeyOtherBody_Answers422_AndCreatesNothing()
    {
        var project = await app.CreateProjectAsync();
        var key = Guid.NewGuid().ToString();
        (await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "a" })).EnsureSuccessStatusCode();

        using var reused = await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "b" });

        await reused.AssertProblemAsync(422, "idempotency_key_reused");
        Assert.Equal(1, (await project.Client.GetJsonAsync("/v1/variables")).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task SameKeyOnAnotherPath_Answers422()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/variables", new { data = "x" })).GetProperty("id").GetString();
        var key = Guid.NewGuid().ToString();
        (await PostWithKeyAsync(project.Client, $"/v1/variables/{id}/detach", key, null)).EnsureSuccessStatusCode();

        using var other = await PostWithKeyAsync(project.Client, "/v1/variables", key, null);
        await other.AssertProblemAsync(422, "idempotency_key_reused");
    }

    [Fact]
    public async Task Keys_AreScopedToTheCallersApiKey()
    {
        var one = await app.CreateProjectAsync();
        var two = await app.CreateProjectAsync();
        var key = Guid.NewGuid().ToString();

        var a = await HttpJson.EnsureSuccessAsync(await PostWithKeyAsync(one.Client, "/v1/variables", key, new { data = "same" }));
        var b = await HttpJson.EnsureSuccessAsync(await PostWithKeyAsync(two.Client, "/v1/variables", key, new { data = "same" }));

        Assert.NotEqual(a.GetProperty("id").GetString(), b.GetProperty("id").GetString());
        await two.Client.GetJsonAsync($"/v1/variables/{b.GetProperty("id").GetString()}");
    }

    [Fact]
    public async Task FailedValidation_IsNotStored_SoAFixedRetryWithTheSameKeyRuns()
    {
        var project = await app.CreateProjectAsync();
        var key = Guid.NewGuid().ToString();
        var id = (await project.Client.PostJsonAsync("/v1/variables", new { data = "leaf", requires_grad = true })).GetProperty("id").GetString();

        using var refused = await PostWithKeyAsync(project.Client, $"/v1/variables/{id}/cast", key, new { dtype = "int" });
        await refused.AssertProblemAsync(400, "cast_failed");

        using var fixedRequest = await PostWithKeyAsync(project.Client, $"/v1/variables/{id}/cast", key, new { dtype = "str" });
        Assert.Equal(HttpStatusCode.Created, fixedRequest.StatusCode);
        using var replay = await PostWithKeyAsync(project.Client, $"/v1/variables/{id}/cast", key, new { dtype = "str" });
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await fixedRequest.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AConcurrentRetry_WhileTheFirstIsInFlight_Answers409()
    {
        var project = await app.CreateProjectAsync();
        var key = Guid.NewGuid().ToString();
        // Arrange a request that is still running: its row holds the key and has no response yet.
        (await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "x" })).EnsureSuccessStatusCode();
        await using (var db = app.CreateDbContext())
        {
            await db.IdempotencyRecords.Where(r => r.Key == key).ExecuteUpdateAsync(s => s
                .SetProperty(r => r.ResponseStatus, (int?)null)
                .SetProperty(r => r.LockedUntil, DateTimeOffset.UtcNow.AddMinutes(1)));
        }

        using var retry = await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "x" });

        await retry.AssertProblemAsync(409, "idempotency_request_in_progress");
    }

    [Fact]
    public async Task ExpiredRecords_AreNotReplayed()
    {
        var project = await app.CreateProjectAsync();
        var key = Guid.NewGuid().ToString();
        var first = await HttpJson.EnsureSuccessAsync(await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "x" }));
        await using (var db = app.CreateDbContext())
        {
            await db.IdempotencyRecords.Where(r => r.Key == key)
                .ExecuteUpdateAsync(s => s.SetProperty(r => r.ExpiresAt, DateTimeOffset.UtcNow.AddSeconds(-1)));
        }

        var second = await HttpJson.EnsureSuccessAsync(await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "x" }));

        Assert.NotEqual(first.GetProperty("id").GetString(), second.GetProperty("id").GetString());
    }

    [Theory]
    [InlineData("tab\tinside")]
    public async Task InvalidKeys_Answer400(string key)
    {
        var project = await app.CreateProjectAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/variables") { Content = JsonContent.Create(new { data = "x" }) };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);

        using var response = await project.Client.SendAsync(request);

        await response.AssertProblemAsync(400, "invalid_idempotency_key");
    }

    [Fact]
    public async Task TooLongKey_Answers400()
    {
        var project = await app.CreateProjectAsync();
        using var response = await PostWithKeyAsync(project.Client, "/v1/variables", new string('k', 256), new { data = "x" });
        await response.AssertProblemAsync(400, "invalid_idempotency_key");
    }

    [Fact]
    public async Task QuotedStructuredHeaderForm_IsTheSameKey()
    {
        var project = await app.CreateProjectAsync();
        var key = Guid.NewGuid().ToString();
        var first = await HttpJson.EnsureSuccessAsync(await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "x" }));

        var second = await HttpJson.EnsureSuccessAsync(await PostWithKeyAsync(project.Client, "/v1/variables", $"\"{key}\"", new { data = "x" }));

        Assert.Equal(first.GetProperty("id").GetString(), second.GetProperty("id").GetString());
    }

    [Fact]
    public async Task AdminPosts_AreIdempotentToo()
    {
        using var admin = app.CreateAdminClient();
        var key = Guid.NewGuid().ToString();
        var a = await HttpJson.EnsureSuccessAsync(await PostWithKeyAsync(admin, "/v1/projects", key, new { name = "idem" }));
        var b = await HttpJson.EnsureSuccessAsync(await PostWithKeyAsync(admin, "/v1/projects", key, new { name = "idem" }));

        Assert.Equal(a.GetProperty("id").GetString(), b.GetProperty("id").GetString());
    }

    [Fact]
    public async Task StoredRecords_HaveA24HourExpiry()
    {
        var project = await app.CreateProjectAsync();
        var key = Guid.NewGuid().ToString();
        (await PostWithKeyAsync(project.Client, "/v1/variables", key, new { data = "x" })).EnsureSuccessStatusCode();

        await using var db = app.CreateDbContext();
        var record = await db.IdempotencyRecords.SingleAsync(r => r.Key == key);
        Assert.Equal(201, record.ResponseStatus);
        Assert.InRange(record.ExpiresAt - record.CreatedAt, TimeSpan.FromHours(23.9), TimeSpan.FromHours(24.1));
    }

    private static Task<HttpResponseMessage> PostWithKeyAsync(HttpClient client, string path, string key, object? body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return client.SendAsync(request);
    }
}
