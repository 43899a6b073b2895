using System.Net.Http.Headers;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Tests;

/// <summary>Jobs without a worker: they stay queued, so listing, filtering and cancelling a queued job are deterministic.</summary>
public sealed class QueuedJobsTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task AQueuedJob_IsCancelledAtOnce_AndNeverRuns()
    {
        var project = await app.CreateProjectAsync();
        var job = await StartPassAsync(project);
        var id = job.GetProperty("id").GetString()!;
        Assert.Equal("queued", job.GetProperty("status").GetString());

        var cancelled = await project.Client.PostJsonAsync($"/v1/jobs/{id}/cancel", new { });

        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString());
        Assert.NotEqual(JsonValueKind.Null, cancelled.GetProperty("finished_at").ValueKind);
        using var again = await project.Client.PostAsync($"/v1/jobs/{id}/cancel", null);
        await again.AssertProblemAsync(409, "job_not_cancellable");
        var events = await project.Client.GetJsonAsync($"/v1/jobs/{id}/events");
        Assert.Equal(["job.created", "job.cancelled"], events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("type").GetString()));
        Assert.Equal([1L, 2L], events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("sequence").GetInt64()));
    }

    [Fact]
    public async Task Jobs_AreListedNewestFirst_FilteredByTypeAndStatus_AndPaged()
    {
        var project = await app.CreateProjectAsync();
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await StartPassAsync(project)).GetProperty("id").GetString()!);
        }

        await project.Client.PostJsonAsync($"/v1/jobs/{ids[1]}/cancel", new { });

        var all = await project.Client.GetJsonAsync("/v1/jobs?type=backward");
        Assert.Equal(ids.AsEnumerable().Reverse(), all.GetProperty("data").EnumerateArray().Select(j => j.GetProperty("id").GetString()));
        var queued = await project.Client.GetJsonAsync("/v1/jobs?status=queued&order=asc");
        Assert.Equal([ids[0], ids[2]], queued.GetProperty("data").EnumerateArray().Select(j => j.GetProperty("id").GetString()));
        var page = await project.Client.GetJsonAsync($"/v1/jobs?limit=1&after={ids[2]}");
        Assert.Equal(ids[1], page.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.True(page.GetProperty("has_more").GetBoolean());
        Assert.Equal(0, (await project.Client.GetJsonAsync("/v1/jobs?type=optimizer_step")).GetProperty("data").GetArrayLength());

        using var badStatus = await project.Client.GetAsync("/v1/jobs?status=sleeping");
        var problem = await badStatus.AssertProblemAsync(400, "invalid_status");
        Assert.Equal("status", problem.GetProperty("param").GetString());
    }

    [Fact]
    public async Task WaitSeconds_ReturnsAfterTheWait_WhenTheJobDoesNotFinish()
    {
        var project = await app.CreateProjectAsync();
        var id = (await StartPassAsync(project)).GetProperty("id").GetString()!;
        var started = DateTime.UtcNow;

        var job = await project.Client.GetJsonAsync($"/v1/jobs/{id}?wait_seconds=1");

        Assert.Equal("queued", job.GetProperty("status").GetString());
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(0.9));
        using var tooLong = await project.Client.GetAsync($"/v1/jobs/{id}?wait_seconds=61");
        await tooLong.AssertProblemAsync(400, "invalid_wait_seconds");
    }

    [Fact]
    public async Task OtherProjectsJobs_AreNotFound()
    {
        var mine = await app.CreateProjectAsync();
        var theirs = await app.CreateProjectAsync();
        var id = (await StartPassAsync(theirs)).GetProperty("id").GetString()!;

        foreach (var path in new[] { $"/v1/jobs/{id}", $"/v1/jobs/{id}/events", "/v1/jobs/job_nope" })
        {
            using var response = await mine.Client.GetAsync(path);
            await response.AssertProblemAsync(404, "job_not_found");
        }

        using var cancel = await mine.Client.PostAsync($"/v1/jobs/{id}/cancel", null);
        await cancel.AssertProblemAsync(404, "job_not_found");
        Assert.Equal(0, (await mine.Client.GetJsonAsync("/v1/jobs")).GetProperty("data").GetArrayLength());
        Assert.Equal("queued", (await theirs.Client.GetJsonAsync($"/v1/jobs/{id}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task EventCursors_AreChecked()
    {
        var project = await app.CreateProjectAsync();
        var id = (await StartPassAsync(project)).GetProperty("id").GetString()!;
        using var bad = await project.Client.GetAsync($"/v1/jobs/{id}/events?after=job_x");
        await bad.AssertProblemAsync(400, "invalid_cursor");
        using var foreign = await project.Client.GetAsync($"/v1/jobs/{id}/events?after=evt_{Guid.NewGuid():N}");
        await foreign.AssertProblemAsync(400, "invalid_cursor");
    }

    [Fact]
    public async Task APassThroughAGraphAnEarlierPassFreed_FailsItsJob_WithACodeAndMessage()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("x", "x", requiresGrad: true);
        var z = await project.OutputAsync("add", new { x, y = x });
        // Both are accepted: while they wait in the queue, nothing has freed the graph yet.
        var first = (await project.Client.PostJsonAsync("/v1/backward", new { variables = new[] { z } })).GetProperty("id").GetString()!;
        var second = (await project.Client.PostJsonAsync("/v1/backward", new { variables = new[] { z } })).GetProperty("id").GetString()!;

        var worker = DirectWorker();
        await worker.RunAsync(JobGuid(first), CancellationToken.None);
        await worker.RunAsync(JobGuid(second), CancellationToken.None);

        Assert.Equal("succeeded", (await project.Client.GetJsonAsync($"/v1/jobs/{first}")).GetProperty("status").GetString());
        var failed = await project.Client.GetJsonAsync($"/v1/jobs/{second}");
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal("graph_released", failed.GetProperty("error").GetProperty("code").GetString());
        Assert.StartsWith("Trying to backward through the graph a second time", failed.GetProperty("error").GetProperty("message").GetString());
        Assert.NotEqual(JsonValueKind.Null, failed.GetProperty("finished_at").ValueKind);
        var last = (await project.Client.GetJsonAsync($"/v1/jobs/{second}/events")).GetProperty("data").EnumerateArray().Last();
        Assert.Equal("job.failed", last.GetProperty("type").GetString());
        Assert.Equal("graph_released", last.GetProperty("data").GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(2, (await project.GradTextsAsync(x)).Count); // only the first pass appended
    }

    // The worker's job class on the tests' database, run by hand: this fixture runs no Worker.
    private Worker.Backward.BackwardJobs DirectWorker()
    {
        var options = new DbContextOptionsBuilder<Data.AfnioDbContext>();
        Data.AfnioDataSetup.ConfigureDbContext(options, app.ConnectionString);
        var contexts = new PooledDbContextFactory<Data.AfnioDbContext>(options.Options);
        var jobOptions = Options.Create(new Worker.Jobs.JobOptions());
        return new Worker.Backward.BackwardJobs(contexts, app.Services.GetRequiredService<Data.LanguageModels.ModelGateway>(),
            new Worker.Jobs.JobExecution(contexts, new Worker.Jobs.ClaimedJob(), jobOptions, TimeProvider.System, NullLogger<Worker.Jobs.JobExecution>.Instance),
            new Worker.Jobs.CpuSlots(), jobOptions, Options.Create(new Afnio.Domain.Common.OperationLimits()), TimeProvider.System, NullLogger<Worker.Backward.BackwardJobs>.Instance);
    }

    private static Guid JobGuid(string id) =>
        PrefixedId.TryParse(PrefixedId.Job, id, out var guid) ? guid : throw new ArgumentException(id, nameof(id));

    private static async Task<JsonElement> StartPassAsync(TestProject project)
    {
        var x = await project.VariableAsync("x", "x", requiresGrad: true);
        var z = await project.OutputAsync("add", new { x, y = x });
        return await project.Client.PostJsonAsync("/v1/backward", new { variables = new[] { z }, retain_graph = true });
    }
}

/// <summary>A worker that runs one node at a time, so a pass lasts long enough to watch and to cancel.</summary>
public sealed class SlowWorkerApp : WorkerApp
{
    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>(base.Settings)
    {
        ["Afnio:Jobs:BackwardConcurrency"] = "1",
    };
}

[Collection(WorkerHosts.Name)]
public sealed class RunningJobsTests(SlowWorkerApp app) : IClassFixture<SlowWorkerApp>
{
    [Fact]
    public async Task EventStream_FollowsTheJobLive_InSequence_UntilItSucceeds()
    {
        var project = await app.CreateProjectAsync();
        var (root, _) = await WideGraphAsync(project, 300);
        var job = await project.Client.PostJsonAsync("/v1/backward", new { variables = new[] { root } });
        var id = job.GetProperty("id").GetString()!;

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{id}/events");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await project.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await ReadEventsAsync(response);

        Assert.Equal("job.created", events[0].Type);
        Assert.Equal("job.started", events[1].Type);
        Assert.Equal("job.succeeded", events[^1].Type);
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Data.GetProperty("sequence").GetInt64()));
        Assert.All(events, e => Assert.Equal(e.Id, e.Data.GetProperty("id").GetString()));
        var progress = events.Where(e => e.Type == "job.progress").Select(e => e.Data.GetProperty("data")).ToList();
        Assert.NotEmpty(progress);
        Assert.All(progress, p => Assert.Equal(301, p.GetProperty("total").GetInt32()));
        var completed = progress.Select(p => p.GetProperty("completed").GetInt32()).ToList();
        Assert.Equal(completed.Order(), completed);

        // The JSON list holds the same events, and Last-Event-ID resumes the stream after one.
        var list = await project.Client.GetJsonAsync($"/v1/jobs/{id}/events?limit=100");
        Assert.Equal(events.Take(100).Select(e => e.Id), list.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("id").GetString()));
        using var resume = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{id}/events?stream=true");
        resume.Headers.Add("Last-Event-ID", events[^2].Id);
        using var resumed = await project.Client.SendAsync(resume, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal([events[^1].Id], (await ReadEventsAsync(resumed)).Select(e => e.Id));
    }

    [Fact]
    public async Task CancellingARunningPass_StopsBetweenSteps_AndKeepsWhatItCommitted()
    {
        var project = await app.CreateProjectAsync();
        var (root, leaves) = await WideGraphAsync(project, 1000);
        var job = await project.Client.PostJsonAsync("/v1/backward", new { variables = new[] { root } });
        var id = job.GetProperty("id").GetString()!;
        await WaitForProgressAsync(project, id, 20);

        var cancelling = await project.Client.PostJsonAsync($"/v1/jobs/{id}/cancel", new { });
        Assert.Equal("cancelling", cancelling.GetProperty("status").GetString());
        var finished = await project.WaitForJobAsync(id);

        Assert.Equal("cancelled", finished.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, finished.GetProperty("error").ValueKind);
        var completed = finished.GetProperty("progress").GetProperty("completed").GetInt32();
        Assert.InRange(completed, 20, 1000);

        // Every committed step is whole: each leaf has its one gradient or none, and the count matches the steps.
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, id, out var jobId));
        await using var db = app.CreateDbContext();
        var steps = await db.JobSteps.CountAsync(s => s.JobId == jobId);
        Assert.Equal(completed, steps);
        var gradients = 0;
        foreach (var leaf in leaves)
        {
            var count = (await project.GradTextsAsync(leaf)).Count;
            Assert.InRange(count, 0, 1);
            gradients += count;
        }

        Assert.Equal(steps - 1, gradients); // every step but SumBackward0's appended one gradient
        var events = await project.Client.GetJsonAsync($"/v1/jobs/{id}/events");
        var types = events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Equal("job.cancelled", types[^1]);
        Assert.Contains("job.cancelling", types);

        // The unfinished pass gave its graph back: it can run again.
        var rerun = await project.BackwardAsync(new { variables = new[] { root } });
        Assert.Equal("succeeded", rerun.GetProperty("status").GetString());
    }

    /// <summary><c>sum(p_1 … p_n)</c> over leaves that require grad: n + 1 nodes, all but one independent.</summary>
    internal static async Task<(string Root, IReadOnlyList<string> Leaves)> WideGraphAsync(TestProject project, int width)
    {
        var leaves = await project.LeavesAsync(width);
        return (await project.OutputAsync("sum", new { x = leaves }), leaves);
    }

    private static async Task WaitForProgressAsync(TestProject project, string id, int atLeast)
    {
        for (var i = 0; i < 600; i++)
        {
            var job = await project.Client.GetJsonAsync($"/v1/jobs/{id}");
            if (job.GetProperty("progress").GetProperty("completed").GetInt32() >= atLeast)
            {
                return;
            }

            Assert.Contains(job.GetProperty("status").GetString(), new[] { "queued", "running" });
            await Task.Delay(20);
        }

        Assert.Fail($"The pass made no progress: {await project.Client.GetJsonAsync($"/v1/jobs/{id}")}");
    }

    private sealed record ServerEvent(string Id, string Type, JsonElement Data);

    private static async Task<List<ServerEvent>> ReadEventsAsync(HttpResponseMessage response)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<ServerEvent>();
        string? id = null, type = null, data = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0)
            {
                if (data is not null)
                {
                    events.Add(new ServerEvent(id!, type!, JsonDocument.Parse(data).RootElement.Clone()));
                }

                (id, type, data) = (null, null, null);
                continue;
            }

            var (field, value) = (line[..line.IndexOf(':', StringComparison.Ordinal)], line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].TrimStart());
            switch (field)
            {
                case "id": id = value; break;
                case "event": type = value; break;
                case "data": data = value; break;
            }
        }

        return events;
    }
}
