namespace Afnio.Api.Tests;

public sealed class HealthTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Theory]
    [InlineData("/healthz/live")]
    [InlineData("/healthz/ready")]
    public async Task HealthEndpoints_AnswerWithoutAKey(string path)
    {
        using var client = app.CreateClient();
        using var response = await client.GetAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Readiness_FailsWhenTheDatabaseIsUnreachable()
    {
        await using var broken = new UnreachableDatabaseApp();
        await broken.InitializeAsync();
        using var client = broken.CreateClient();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz/live")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/healthz/ready")).StatusCode);
    }

    private sealed class UnreachableDatabaseApp : AfnioApiFactory
    {
        public override Task InitializeAsync() => Task.CompletedTask;

        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
            ["ConnectionStrings:Postgres"] = "Host=127.0.0.1;Port=9;Database=none;Username=x;Password=x;Timeout=2",
        };
    }
}
