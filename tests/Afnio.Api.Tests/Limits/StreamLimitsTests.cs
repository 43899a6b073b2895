using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Afnio.Api.Tests.Limits;

/// <summary>
/// Streams with a small per-key cap, on a data pool far smaller than the streams open at once, and
/// with a fallback interval longer than any test: every event and every revocation these streams
/// see arrived through a PostgreSQL notification.
/// </summary>
public sealed class StreamLimitsTests(StreamLimitsTests.CappedApp app) : IClassFixture<StreamLimitsTests.CappedApp>
{
    public const int PerKey = 4;

    public sealed class CappedApp : LimitsApp
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio:Streams:MaxPerKey"] = PerKey.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio:Streams:FallbackIntervalSeconds"] = "3600",
            ["Afnio:Database:PoolSize"] = "6",
        };
    }

    [Fact]
    public async Task EventStreams_BeyondTheKeysCap_Answer429TooManyStreams_AndAClosedStreamGivesItsSlotBack()
    {
        var project = await app.CreateProjectAsync();
        var job = await project.QueuedJobAsync();
        var open = new List<JobEventReader>();
        for (var i = 0; i < PerKey; i++)
        {
            var stream = await JobEventReader.OpenAsync(project.Client, job);
            Assert.Equal("job.created", (await stream.NextAsync())?.Type);
            open.Add(stream);
        }

        var (none, refused) = await JobEventReader.TryOpenAsync(project.Client, job);
        Assert.Null(none);
        using (var tooMany = refused!)
        {
            await tooMany.AssertProblemAsync(429, "too_many_streams");
            Assert.True(int.Parse(tooMany.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
        }

        // A long poll takes a slot too; a plain read does not.
        using (var poll = await project.Client.GetAsync($"/v1/jobs/{job}?wait_seconds=1"))
        {
            await poll.AssertProblemAsync(429, "too_many_streams");
        }

        Assert.Equal("queued", (await project.Client.GetJsonAsync($"/v1/jobs/{job}")).GetProperty("status").GetString());

        // Another key of the same project has slots of its own.
        var other = await app.SecondKeyAsync(project);
        await using (var stream = await JobEventReader.OpenAsync(other.Client, job))
        {
            Assert.Equal("job.created", (await stream.NextAsync())?.Type);
        }

        await open[0].DisposeAsync();
        JobEventReader? again = null;
        await Eventually.UntilAsync(async () =>
        {
            var (stream, no) = await JobEventReader.TryOpenAsync(project.Client, job);
            no?.Dispose();
            again = stream;
            return stream is not null;
        }, TimeSpan.FromSeconds(30), () => "The closed stream's slot was not given back.", pollMs: 100);
        open[0] = again!;
        foreach (var stream in open)
        {
            await stream.DisposeAsync();
        }
    }

    [Fact]
    public async Task WhileProjectAHoldsAllItsStreams_ProjectBsCallsWork_AndItsStreamGetsItsJobsEvents()
    {
        var a = await app.CreateProjectAsync();
        var aJob = await a.QueuedJobAsync();
        var aKeys = new List<TestProject> { a };
        for (var i = 0; i < 3; i++)
        {
            aKeys.Add(await app.SecondKeyAsync(a));
        }

        // 4 keys × 4 streams: more streams than the pool has connections.
        var aStreams = new List<JobEventReader>();
        foreach (var key in aKeys)
        {
            for (var i = 0; i < PerKey; i++)
            {
                var stream = await JobEventReader.OpenAsync(key.Client, aJob);
                Assert.Equal("job.created", (await stream.NextAsync())?.Type);
                aStreams.Add(stream);
            }
        }

        var b = await app.CreateProjectAsync();
        (await b.Client.GetAsync("/v1/variables")).EnsureSuccessStatusCode();
        var bJob = await b.QueuedJobAsync();
        await using var bStream = await JobEventReader.OpenAsync(b.Client, bJob);
        Assert.Equal("job.created", (await bStream.NextAsync())?.Type);

        var cancelled = await b.Client.PostJsonAsync($"/v1/jobs/{bJob}/cancel", new { });
        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString());
        var rest = await bStream.ReadToEndAsync();
        Assert.Equal(["job.cancelled"], rest.Select(e => e.Type));

        // A long poll of B's is answered too, and A's streams are still open and following their job.
        var bPoll = await b.Client.GetJsonAsync($"/v1/jobs/{bJob}?wait_seconds=5");
        Assert.Equal("cancelled", bPoll.GetProperty("status").GetString());
        await a.Client.PostJsonAsync($"/v1/jobs/{aJob}/cancel", new { });
        foreach (var stream in aStreams)
        {
            Assert.Equal(["job.cancelled"], (await stream.ReadToEndAsync()).Select(e => e.Type));
            await stream.DisposeAsync();
        }
    }

    [Fact]
    public async Task AStreamAndALongPoll_OpenedBeforeTheirKeyIsRevoked_EndWhenItIs()
    {
        var project = await app.CreateProjectAsync();
        var job = await project.QueuedJobAsync();
        await using var stream = await JobEventReader.OpenAsync(project.Client, job);
        Assert.Equal("job.created", (await stream.NextAsync())?.Type);
        var poll = project.Client.GetAsync($"/v1/jobs/{job}?wait_seconds=60");

        using var admin = app.CreateAdminClient();
        using (var revoke = await admin.DeleteAsync($"/v1/projects/{project.Id}/api_keys/{project.KeyId}"))
        {
            await HttpJson.EnsureSuccessAsync(revoke);
        }

        Assert.Empty(await stream.ReadToEndAsync());
        using (var polled = await poll)
        {
            await polled.AssertProblemAsync(401, "invalid_api_key");
        }

        var (none, refused) = await JobEventReader.TryOpenAsync(project.Client, job);
        Assert.Null(none);
        using (refused)
        {
            await refused!.AssertProblemAsync(401, "invalid_api_key");
        }
    }
}

/// <summary>Streams that live one second, with a fallback read every half second.</summary>
public sealed class ShortStreamTests(ShortStreamTests.ShortStreamsApp app) : IClassFixture<ShortStreamTests.ShortStreamsApp>
{
    public sealed class ShortStreamsApp : LimitsApp
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio:Streams:MaxDurationSeconds"] = "1",
            ["Afnio:Streams:FallbackIntervalSeconds"] = "0.5",
        };
    }

    [Fact]
    public async Task AStream_EndsAfterItsMaximumDuration_AndLastEventIdResumesItWhereItEnded()
    {
        var project = await app.CreateProjectAsync();
        var job = await project.QueuedJobAsync();

        List<JobEventReader.ServerEvent> first;
        await using (var stream = await JobEventReader.OpenAsync(project.Client, job))
        {
            first = await stream.ReadToEndAsync();
        }

        Assert.Equal(["job.created"], first.Select(e => e.Type));
        Assert.Equal("queued", (await project.Client.GetJsonAsync($"/v1/jobs/{job}")).GetProperty("status").GetString());

        // A client resumes each ended stream after the last event it saw, as EventSource does, until the job's last event.
        await project.Client.PostJsonAsync($"/v1/jobs/{job}/cancel", new { });
        var seen = new List<JobEventReader.ServerEvent>(first);
        for (var attempt = 0; attempt < 30 && seen[^1].Type != "job.cancelled"; attempt++)
        {
            await using var resumed = await JobEventReader.OpenAsync(project.Client, job, seen[^1].Id);
            seen.AddRange(await resumed.ReadToEndAsync());
        }

        Assert.Equal(["job.created", "job.cancelled"], seen.Select(e => e.Type));
        Assert.Equal([1L, 2L], seen.Select(e => e.Data.GetProperty("sequence").GetInt64()));

        // Resuming after the last event ends at once: nothing more will come.
        await using var after = await JobEventReader.OpenAsync(project.Client, job, seen[^1].Id);
        Assert.Empty(await after.ReadToEndAsync());
    }
}

/// <summary>A data pool of one connection that waits one second for it.</summary>
public sealed class PoolExhaustionTests(PoolExhaustionTests.OneConnectionApp app) : IClassFixture<PoolExhaustionTests.OneConnectionApp>
{
    public sealed class OneConnectionApp : LimitsApp
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio:Database:PoolSize"] = "1",
            ["Afnio:Database:AcquireTimeoutSeconds"] = "1",
            ["Afnio:KeyCacheSeconds"] = "300",
        };
    }

    [Fact]
    public async Task WhenThePoolHasNoFreeConnection_ARequestWaits_ThenAnswers503DatabaseBusy_AndWorksAgainAfter()
    {
        var project = await app.CreateProjectAsync();
        (await project.Client.GetAsync("/v1/variables")).EnsureSuccessStatusCode();

        // The same connection string is the same pool: this holds its only connection.
        var connectionString = Data.ConnectionBudget.DataConnectionString(app.Services.GetRequiredService<IConfiguration>());
        await using (var held = new NpgsqlConnection(connectionString))
        {
            await held.OpenAsync();
            using var busy = await project.Client.GetAsync("/v1/variables");
            await busy.AssertProblemAsync(503, "database_busy");
            Assert.Equal("1", busy.Headers.GetValues("Retry-After").Single());
        }

        (await project.Client.GetAsync("/v1/variables")).EnsureSuccessStatusCode();
    }
}
