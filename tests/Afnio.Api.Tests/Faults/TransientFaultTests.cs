using System.Text.Json;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Microsoft.EntityFrameworkCore;
using Xunit.Abstractions;

namespace Afnio.Api.Tests.Faults;

/// <summary>
/// A provider that fails 30% of its attempts (429 with Retry-After, 500, a reply that never comes,
/// malformed JSON): training runs still complete, with the result of a provider that never fails.
/// A call whose retries run out fails its step, and so the run, with an error that says why.
/// </summary>
public sealed class TransientFaultTests(ITestOutputHelper output)
{
    private const double FaultRate = 0.3;
    private const int MaxAttempts = 10;

    [Fact]
    public async Task ThirtyPercentTransientFaults_RunsComplete_AndExhaustedRetriesFailOneStepClearly()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        var random = new Random(20261126);
        var faulty = false;
        var injected = new int[4];
        fake.Default = request =>
        {
            var reply = FacilityTraining.Reply(request);
            int kind;
            lock (random)
            {
                kind = faulty && random.NextDouble() < FaultRate ? random.Next(4) : -1;
            }

            if (kind < 0)
            {
                return reply;
            }

            Interlocked.Increment(ref injected[kind]);
            return kind switch
            {
                0 => FakeReply.RateLimited(1),
                1 => FakeReply.ServerError(),
                2 => FakeReply.Hang(TimeSpan.FromSeconds(3)),
                _ => FakeReply.Junk(),
            };
        };
        // Ten attempts ride out a 30% fault rate (a call fails only when all ten do: 6 in a million).
        await using var processes = await SeparateProcesses.StartAsync("afnio_faults", new Dictionary<string, string>
        {
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
            ["Afnio__Models__MaxAttempts"] = $"{MaxAttempts}",
            ["Afnio__Models__RetryBaseDelayMs"] = "20",
            ["Afnio__Models__NetworkTimeoutSeconds"] = "1",
        });
        var scenario = new TrainingScenario(fake);
        var calm = await processes.CreateProjectAsync("no faults");
        var calmSetup = await scenario.SetUpAsync(calm);
        var reference = await calm.WaitForJobAsync(await scenario.StartAsync(calm, calmSetup), 180);
        Assert.True(reference.GetProperty("status").GetString() == "succeeded", $"{reference}\n{processes.Worker.Output}");

        faulty = true;
        var stormy = await processes.CreateProjectAsync("faults");
        var setup = await scenario.SetUpAsync(stormy);
        var jobId = await scenario.StartAsync(stormy, setup);
        var finished = await stormy.WaitForJobAsync(jobId, 600);
        Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"{finished}\n{processes.Worker.Output}");
        await scenario.AssertSameAsync(calm, calmSetup, stormy, setup);

        // Every call paid once, most after several attempts; every kind of fault was met.
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var job));
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        var calls = await db.ModelCalls.AsNoTracking().Where(c => c.JobId == job).Select(c => new { c.Status, c.Attempts }).ToListAsync();
        Assert.All(calls, c => Assert.Equal("succeeded", c.Status));
        var retried = calls.Count(c => c.Attempts > 1);
        Assert.All(injected, count => Assert.True(count > 0, $"faults injected: {string.Join(", ", injected)}"));
        Assert.Equal(calls.Sum(c => c.Attempts) - calls.Count, injected.Sum());
        output.WriteLine($"{calls.Count} calls, {retried} of them retried, {injected.Sum()} faults injected " +
            $"(429: {injected[0]}, 500: {injected[1]}, timeout: {injected[2]}, malformed: {injected[3]})");

        // A provider that keeps failing the evaluator's feedback calls: the batch's backward step fails once
        // its attempts run out. (A failed optimizer call does not fail a step: that parameter keeps its value.)
        faulty = false;
        fake.Default = request => FakeOpenAiServer.MessageText(request, "system") == EvaluatorFeedback.SystemPrompt
            ? FakeReply.ServerError()
            : FacilityTraining.Reply(request);
        var failing = await processes.CreateProjectAsync("exhausted");
        var failingSetup = await scenario.SetUpAsync(failing);
        var failed = await failing.WaitForJobAsync(await scenario.StartAsync(failing, failingSetup), 180);
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        var error = failed.GetProperty("error");
        Assert.Equal("model_call_failed", error.GetProperty("code").GetString());
        var message = error.GetProperty("message").GetString()!;
        Assert.Contains($"failed after {MaxAttempts} attempts", message, StringComparison.Ordinal);
        Assert.Contains("The provider answered 500", message, StringComparison.Ordinal);
        output.WriteLine($"exhausted retries: {message}");

        // Only the feedback call of the first batch failed: the run stopped there, with nothing after it committed.
        var run = await failing.Client.GetJsonAsync($"/v1/runs/{failingSetup.Run}");
        Assert.Equal("failed", run.GetProperty("status").GetString());
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, failed.GetProperty("id").GetString()!, out var failedJob));
        var failures = await db.ModelCalls.AsNoTracking().Where(c => c.JobId == failedJob && c.Status == "failed").ToListAsync();
        var only = Assert.Single(failures);
        Assert.StartsWith("fit/e1/b0/backward/", only.StepKey, StringComparison.Ordinal);
        Assert.Equal(MaxAttempts, only.Attempts);
        Assert.False(await db.JobSteps.AnyAsync(s => s.JobId == failedJob && s.StepKey == "e1/b0"), "the failed batch was not committed");
        var checkpoints = (await failing.Client.GetJsonAsync($"/v1/runs/{failingSetup.Run}/checkpoints")).GetProperty("data").EnumerateArray()
            .Select(c => c.GetProperty("kind").GetString()).ToList();
        Assert.Equal(["baseline"], checkpoints);
    }
}
