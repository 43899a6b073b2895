using System.Text.Json;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>
/// Kills the Worker process in the middle of a training batch, starts a new one, and checks that the
/// run ends exactly as an uninterrupted run with the same seed: the same metrics, checkpoints and
/// promoted prompt, the same paid calls in the journal, and at most the calls in flight at the kill
/// sent to the provider again.
/// </summary>
public sealed class TrainingCrashTests
{
    internal const int Concurrency = 6;

    [Fact]
    public async Task AWorkerKilledMidEpoch_ResumesFromTheLastCheckpoint_AndEndsLikeAnUninterruptedRun()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        // Slow forward calls, so the kill lands inside a batch.
        fake.Default = r => FacilityTraining.Reply(r) with { Delay = TimeSpan.FromMilliseconds(40) };
        await using var processes = await SeparateProcesses.StartAsync("afnio_run_crash", new Dictionary<string, string>
        {
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        var calm = await processes.CreateProjectAsync("uninterrupted");
        var crashed = await processes.CreateProjectAsync("crashed");
        Task<string> Model(TestProject project) => RegisterAsync(project, fake);
        var (calmData, calmProgram, calmModel) = await FacilityTraining.SetUpAsync(calm, Model);
        var (crashedData, crashedProgram, crashedModel) = await FacilityTraining.SetUpAsync(crashed, Model);
        var body = (string p, string d, string m) => WithRandomSampler(FacilityTraining.RunBody(p, d, m, epochs: 2, batchSize: 22));

        var reference = await RunAsync(calm, body(calmProgram, calmData, calmModel));
        var referenceCalls = fake.Requests.Count;

        var run = await crashed.Client.PostJsonAsync("/v1/runs", body(crashedProgram, crashedData, crashedModel));
        var jobId = run.GetProperty("job_id").GetString()!;
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var job));
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        // Mid-epoch: the first batch is committed and the second one has paid for some of its calls.
        await Eventually.UntilAsync(
            async () => await db.JobSteps.AnyAsync(s => s.JobId == job && s.StepKey == "e1/b0")
                && await db.ModelCalls.CountAsync(c => c.JobId == job && c.StepKey.StartsWith("fit/e1/b1/")) >= 8,
            TimeSpan.FromSeconds(90), () => $"the run did not reach its second batch:\n{processes.Worker.Output}");
        processes.KillWorker();
        var sentAtKill = await fake.SettledRequestCountAsync() - referenceCalls;
        var journaledAtKill = await db.ModelCalls.CountAsync(c => c.JobId == job);
        Assert.False(await db.JobSteps.AnyAsync(s => s.JobId == job && s.StepKey == "e1/end"), "the kill landed before the epoch's end");

        processes.StartWorker();
        var finished = await crashed.WaitForJobAsync(jobId, 180);
        Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"{finished}\n{processes.Worker.Output}");
        var resumed = (await crashed.Client.GetJsonAsync($"/v1/runs/{run.GetProperty("id").GetString()}")).GetProperty("training");

        // The same metrics, value for value, and the same checkpoints and promoted prompt.
        Assert.Equal(await TrainingRunTests.MetricsAsync(calm, reference.Id), await TrainingRunTests.MetricsAsync(crashed, run.GetProperty("id").GetString()!));
        Assert.Equal(await CheckpointsAsync(calm, reference.Id), await CheckpointsAsync(crashed, run.GetProperty("id").GetString()!));
        Assert.Equal(await ProductionAsync(calm, calmProgram), await ProductionAsync(crashed, crashedProgram));
        Assert.Equal(reference.Training.GetProperty("summary").GetProperty("best_epoch").GetInt32(), resumed.GetProperty("summary").GetProperty("best_epoch").GetInt32());

        // Every paid call once in the journal: as many as the uninterrupted run paid for.
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, reference.JobId, out var referenceJob));
        var paid = await db.ModelCalls.CountAsync(c => c.JobId == job && c.Status == "succeeded");
        Assert.Equal(await db.ModelCalls.CountAsync(c => c.JobId == referenceJob && c.Status == "succeeded"), paid);
        Assert.Equal(paid, await db.ModelCalls.Where(c => c.JobId == job).Select(c => new { c.StepKey, c.RequestHash }).Distinct().CountAsync());
        Assert.Equal(paid, resumed.GetProperty("summary").GetProperty("usage").GetProperty("calls").GetInt32());

        // The provider saw again only what was in flight when the Worker died: sent, but not yet in the journal
        // (a call leaves its concurrency slot when the reply arrives, then waits for the journal's group commit).
        var repeated = fake.Requests.Count - referenceCalls - paid;
        Assert.InRange(repeated, 0, sentAtKill - journaledAtKill);
        Assert.True(journaledAtKill > 0 && paid - journaledAtKill > 0, "the kill landed between paid calls");
    }

    internal static Dictionary<string, object?> WithRandomSampler(Dictionary<string, object?> body)
    {
        body["sampler"] = new { type = "random" };
        body["seed"] = 7;
        return body;
    }

    internal static async Task<string> RegisterAsync(TestProject project, FakeOpenAiServer fake) =>
        (await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = fake.Endpoint.ToString(),
            api_key = "sk-crash-test-key-000000",
            default_completion_args = new { model = "gpt-4.1-nano" },
            max_concurrency = Concurrency,
        })).GetProperty("id").GetString()!;

    internal static async Task<(string Id, string JobId, JsonElement Training)> RunAsync(TestProject project, object body)
    {
        var run = await project.Client.PostJsonAsync("/v1/runs", body);
        var job = await project.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 180);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var id = run.GetProperty("id").GetString()!;
        return (id, run.GetProperty("job_id").GetString()!, (await project.Client.GetJsonAsync($"/v1/runs/{id}")).GetProperty("training"));
    }

    internal static async Task<List<string>> CheckpointsAsync(TestProject project, string run) =>
        [.. (await project.Client.GetJsonAsync($"/v1/runs/{run}/checkpoints?limit=100")).GetProperty("data").EnumerateArray()
            .Select(c => $"{c.GetProperty("kind").GetString()} {c.GetProperty("epoch")} {c.GetProperty("batch")} {c.GetProperty("score")} {c.GetProperty("parameters").GetProperty("sentiment_task").GetString()}")];

    internal static async Task<string> ProductionAsync(TestProject project, string program) =>
        (await project.Client.GetJsonAsync($"/v1/programs/{program}")).GetProperty("parameters").GetProperty("sentiment_task").GetProperty("value").GetString()!;
}
