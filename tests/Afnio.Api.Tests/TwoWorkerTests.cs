using System.Text.Json;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>
/// Two Worker processes on one queue: every job runs exactly once (one claim, one paid call, one
/// gradient), and both Workers take part. Each Worker has fewer slots than there are jobs in flight,
/// so neither can take the whole burst alone.
/// </summary>
public sealed class TwoWorkerTests
{
    private const int Jobs = 24;

    [Fact]
    public async Task TwoWorkers_ShareABurstOfJobs_RunningEachExactlyOnce()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = request => LanguageModelCrashTests.Reply(request);
        await using var processes = await SeparateProcesses.StartAsync("afnio_two_workers", new Dictionary<string, string>
        {
            ["Afnio__Jobs__Slots"] = "4",
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        processes.StartWorker();
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        await Eventually.UntilAsync(async () => await ListeningDispatchersAsync(db) == 2, TimeSpan.FromSeconds(60),
            () => $"two dispatchers did not start:\n{processes.Workers[0].Output}\n{processes.Workers[1].Output}");

        var project = await processes.CreateProjectAsync("burst");
        var model = (await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = fake.Endpoint.ToString(),
            api_key = "sk-two-workers-key-000000",
            default_completion_args = new { model = "gpt-4o-mini" },
            max_concurrency = 16,
        })).GetProperty("id").GetString()!;
        await project.Client.PutJsonAsync("/v1/backward_model", new { model_id = model, completion_args = new { model = "gpt-4o" } });
        var feedback = await project.VariableAsync("The answer is too vague.", "feedback");
        var passes = new List<(string Parameter, string Root)>();
        for (var i = 0; i < Jobs; i++)
        {
            var parameter = await project.VariableAsync($"p{i}", $"instruction {i}", requiresGrad: true);
            var root = await project.OutputAsync("chat_completion", new
            {
                model_id = model,
                messages = new[] { new { role = "user", content = new[] { parameter } } },
            });
            passes.Add((parameter, root));
        }

        var before = LanguageModelCrashTests.FeedbackCalls(fake);
        var jobIds = new List<string>();
        foreach (var (_, root) in passes)
        {
            var job = await project.Client.PostJsonAsync("/v1/backward", new { variables = new[] { root }, grad_variables = new[] { feedback } });
            jobIds.Add(job.GetProperty("id").GetString()!);
        }

        foreach (var id in jobIds)
        {
            var finished = await project.WaitForJobAsync(id, 120);
            Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"{finished}\n{processes.Workers[0].Output}\n{processes.Workers[1].Output}");
        }

        var guids = jobIds.Select(id => PrefixedId.TryParse(PrefixedId.Job, id, out var g) ? g : throw new ArgumentException(id)).ToList();
        var rows = await db.Jobs.AsNoTracking().Where(j => guids.Contains(j.Id)).ToListAsync();
        Assert.Equal(Jobs, rows.Count);
        Assert.All(rows, j => Assert.Equal((1, 0), (j.Attempts, j.LostDeliveries)));
        var started = await db.JobEvents.AsNoTracking().Where(e => guids.Contains(e.JobId) && e.Type == "job.started")
            .GroupBy(e => e.JobId).Select(g => g.Count()).ToListAsync();
        Assert.Equal(Enumerable.Repeat(1, Jobs), started);

        // One paid call per job, journaled once, seen once by the provider; one gradient per parameter.
        Assert.Equal(Jobs, LanguageModelCrashTests.FeedbackCalls(fake) - before);
        var calls = await db.ModelCalls.AsNoTracking().Where(c => c.JobId != null && guids.Contains(c.JobId.Value))
            .GroupBy(c => c.JobId).Select(g => g.Count()).ToListAsync();
        Assert.Equal(Enumerable.Repeat(1, Jobs), calls);
        for (var i = 0; i < Jobs; i++)
        {
            Assert.Equal([$"Make p{i} more specific."], await project.GradTextsAsync(passes[i].Parameter));
        }

        // Both Workers ran jobs.
        var byWorker = rows.GroupBy(j => j.ExecutedBy).ToDictionary(g => g.Key!, g => g.Count());
        var workerIds = processes.Workers.Select(w => $":{w.Id}").ToList();
        Assert.Equal(2, byWorker.Count);
        Assert.All(byWorker.Keys, name => Assert.Contains(workerIds, id => name.EndsWith(id, StringComparison.Ordinal)));
    }

    private static async Task<int> ListeningDispatchersAsync(Data.AfnioDbContext db) =>
        await db.Database.SqlQuery<int>($"""
            SELECT count(*)::int AS "Value" FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'afnio-dispatcher'
            """).SingleAsync();
}
