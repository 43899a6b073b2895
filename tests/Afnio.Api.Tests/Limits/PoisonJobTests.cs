using System.Text.Json;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests.Limits;

/// <summary>
/// A job whose deliveries keep killing the Worker is stopped after a few of them instead of taking
/// the service down again and again: it fails with <c>job_delivery_limit</c>, pays for nothing more,
/// and the Worker goes on running other jobs.
/// </summary>
public sealed class PoisonJobTests
{
    private const int MaxDeliveries = 2;

    [Fact]
    public async Task AJobWhoseWorkerDiesOnEveryDelivery_FailsAfterTheLimit_AndTheNextJobRuns()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        var slow = true;
        // Feedback calls hang while "slow": the Worker is killed while each delivery waits on one, as an
        // out-of-memory kill would land mid-job.
        fake.Default = request => IsFeedback(request)
            ? Volatile.Read(ref slow) ? FakeReply.Hang(TimeSpan.FromMinutes(5)) : FakeReply.Text("Be more specific.")
            : FakeReply.Text("an answer");
        await using var processes = await SeparateProcesses.StartAsync("afnio_poison", new Dictionary<string, string>
        {
            ["Afnio__Jobs__MaxDeliveries"] = MaxDeliveries.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        var project = await processes.CreateProjectAsync("poison");
        var model = (await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = fake.Endpoint.ToString(),
            api_key = "sk-poison-test-key-000000",
            default_completion_args = new { model = "gpt-4o-mini" },
        })).GetProperty("id").GetString()!;
        await project.Client.PutJsonAsync("/v1/backward_model", new { model_id = model, completion_args = new { model = "gpt-4o" } });
        var parameter = await project.VariableAsync("Answer the question.", "instruction", requiresGrad: true);
        var output = await project.OutputAsync("chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { parameter } } },
        });
        var feedback = await project.VariableAsync("The answer is too vague.", "feedback");
        var pass = new { variables = new[] { output }, grad_variables = new[] { feedback } };

        var started = await project.Client.PostJsonAsync("/v1/backward", pass);
        var jobId = started.GetProperty("id").GetString()!;
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var jobGuid));
        for (var delivery = 1; delivery <= MaxDeliveries; delivery++)
        {
            await WaitForFeedbackCallsAsync(fake, delivery, processes);
            processes.KillWorker();
            processes.StartWorker();
        }

        var failed = await project.WaitForJobAsync(jobId, 120);
        Assert.True(failed.GetProperty("status").GetString() == "failed", $"{failed}\n{processes.Worker.Output}");
        var error = failed.GetProperty("error");
        Assert.Equal("job_delivery_limit", error.GetProperty("code").GetString());
        Assert.Contains("Afnio__Jobs__MaxDeliveries is 2", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("died", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        var events = (await project.Client.GetJsonAsync($"/v1/jobs/{jobId}/events")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(MaxDeliveries, events.Count(e => e.GetProperty("type").GetString() == "job.started"));
        Assert.Equal("job.failed", events[^1].GetProperty("type").GetString());
        Assert.Equal(MaxDeliveries, FeedbackCalls(fake));

        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        var journaled = await db.ModelCalls.CountAsync(c => c.JobId == jobGuid);

        // The failed pass gave its graph back: the same pass runs again, on the same Worker, and succeeds.
        Volatile.Write(ref slow, false);
        var again = await project.BackwardAsync(pass);
        Assert.True(again.GetProperty("status").GetString() == "succeeded", $"{again}\n{processes.Worker.Output}");
        Assert.Equal(["Be more specific."], await project.GradTextsAsync(parameter));

        // Nothing more was asked of the provider for the poisoned job: only the new pass's one call.
        Assert.Equal(MaxDeliveries + 1, FeedbackCalls(fake));
        Assert.Equal(journaled, await db.ModelCalls.CountAsync(c => c.JobId == jobGuid));
        Assert.Equal("failed", (await project.Client.GetJsonAsync($"/v1/jobs/{jobId}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task ATrainingRunWhoseWorkerDiesOnEveryDelivery_EndsFailed_WithItsJob()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        // Every call hangs, so no delivery commits a step before its Worker is killed.
        fake.Default = _ => FakeReply.Hang(TimeSpan.FromMinutes(5));
        await using var processes = await SeparateProcesses.StartAsync("afnio_poison_run", new Dictionary<string, string>
        {
            ["Afnio__Jobs__MaxDeliveries"] = MaxDeliveries.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        var project = await processes.CreateProjectAsync("poisoned run");
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => TrainingCrashTests.RegisterAsync(p, fake));
        var run = await project.Client.PostJsonAsync("/v1/runs", FacilityTraining.RunBody(program, dataset, model, epochs: 1));
        var runId = run.GetProperty("id").GetString()!;
        var jobId = run.GetProperty("job_id").GetString()!;
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var jobGuid));
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        for (var delivery = 1; delivery <= MaxDeliveries; delivery++)
        {
            var before = fake.Requests.Count;
            await Eventually.UntilAsync(
                async () => await db.Jobs.AsNoTracking().Where(j => j.Id == jobGuid).Select(j => j.Attempts).SingleAsync() >= delivery
                    && fake.Requests.Count > before,
                TimeSpan.FromSeconds(60), () => $"delivery {delivery} made no call:\n{processes.Worker.Output}");
            processes.KillWorker();
            processes.StartWorker();
        }

        var failed = await project.WaitForJobAsync(jobId, 120);
        Assert.True(failed.GetProperty("status").GetString() == "failed", $"{failed}\n{processes.Worker.Output}");
        Assert.Equal("job_delivery_limit", failed.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(0, await db.JobSteps.CountAsync(s => s.JobId == jobGuid));
        Assert.Equal("failed", (await project.Client.GetJsonAsync($"/v1/runs/{runId}")).GetProperty("status").GetString());
        var runFailed = (await project.Client.GetJsonAsync("/v1/events?type=run.failed")).GetProperty("data").EnumerateArray();
        Assert.Equal(runId, Assert.Single(runFailed).GetProperty("data").GetProperty("id").GetString());
        var jobFailed = (await project.Client.GetJsonAsync("/v1/events?type=job.failed")).GetProperty("data").EnumerateArray();
        Assert.Equal(jobId, Assert.Single(jobFailed).GetProperty("data").GetProperty("id").GetString());
    }

    private static Task WaitForFeedbackCallsAsync(FakeOpenAiServer fake, int count, SeparateProcesses processes) =>
        Eventually.UntilAsync(() => Task.FromResult(FeedbackCalls(fake) >= count), TimeSpan.FromSeconds(60),
            () => $"delivery {count} made no feedback call:\n{processes.Worker.Output}");

    private static int FeedbackCalls(FakeOpenAiServer fake) => fake.Requests.Count(IsFeedback);

    private static bool IsFeedback(JsonElement request) =>
        request.GetProperty("messages")[0].GetProperty("content").GetString() == FeedbackPrompts.GradientEngineSystemPrompt;
}
