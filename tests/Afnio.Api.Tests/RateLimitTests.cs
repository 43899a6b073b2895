namespace Afnio.Api.Tests;

public sealed class RateLimitTests(RateLimitTests.SmallBucketApp app) : IClassFixture<RateLimitTests.SmallBucketApp>
{
    public sealed class SmallBucketApp : AfnioApiFactory
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio:RateLimit:TokenLimit"] = "5",
            ["Afnio:RateLimit:TokensPerSecond"] = "1",
        };
    }

    [Fact]
    public async Task ABurstOverTheBucket_Answers429_WithRetryAfter_PerKey()
    {
        // The admin has a bucket of its own: two calls to make a project and key.
        var busy = await app.CreateProjectAsync();
        var quiet = await app.CreateProjectAsync();

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 12 && limited is null; i++)
        {
            var response = await busy.Client.GetAsync("/v1/variables");
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited = response;
            }
        }

        Assert.NotNull(limited);
        Assert.True(statuses.Count(s => s == HttpStatusCode.OK) >= 4, string.Join(",", statuses));
        await limited.AssertProblemAsync(429, "rate_limited");
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single()) >= 1);

        // Another key of another project is not affected.
        (await quiet.Client.GetAsync("/v1/variables")).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task HealthChecks_AreNeverRateLimited()
    {
        using var client = app.CreateClient();
        for (var i = 0; i < 20; i++)
        {
            (await client.GetAsync("/healthz/live")).EnsureSuccessStatusCode();
        }
    }
}
