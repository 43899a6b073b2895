using System.Text.Json;
using System.Text.RegularExpressions;
using Afnio.Domain.Common;
using Afnio.Domain.Optimizers;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>
/// Kills the Worker process in the middle of an optimizer step, starts a new one, and checks that the
/// result equals an uninterrupted step: every parameter rewritten once, one momentum entry and one
/// snapshot each, and no optimizer call paid for twice beyond those in flight at the kill.
/// </summary>
public sealed partial class OptimizerCrashTests
{
    internal const int Width = 24;
    internal const int Concurrency = 4;
    private const string Role = "instruction";

    [Fact]
    public async Task AWorkerKilledMidStep_Resumes_WithoutRewritingParametersTwiceOrRepeatingPaidCalls()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = Reply;
        await using var processes = await SeparateProcesses.StartAsync("afnio_opt_crash", new Dictionary<string, string>
        {
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        var calm = await processes.CreateProjectAsync("uninterrupted");
        var crashed = await processes.CreateProjectAsync("crashed");
        var calmSetup = await SetUpAsync(calm, fake);
        var crashedSetup = await SetUpAsync(crashed, fake);

        var beforeReference = OptimizerCalls(fake);
        var reference = await StepAsync(calm, calmSetup.Optimizer);
        Assert.True(reference.GetProperty("status").GetString() == "succeeded", $"{reference}\n{processes.Worker.Output}");
        Assert.Equal(Width, OptimizerCalls(fake) - beforeReference);

        var beforeCrash = OptimizerCalls(fake);
        var job = await crashed.Client.PostJsonAsync($"/v1/optimizers/{crashedSetup.Optimizer}/step", new { });
        var jobId = job.GetProperty("id").GetString()!;
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var jobGuid));
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        await WaitForCommittedAsync(db, jobGuid, Width / 3, processes.Worker);
        processes.KillWorker();
        var committedAtKill = await db.JobSteps.CountAsync(s => s.JobId == jobGuid);
        var journaledAtKill = await db.ModelCalls.CountAsync(c => c.JobId == jobGuid);
        await fake.SettledRequestCountAsync();
        var calledAtKill = OptimizerCalls(fake) - beforeCrash;
        Assert.InRange(committedAtKill, Width / 3, Width - 1);

        processes.StartWorker();
        var finished = await crashed.WaitForJobAsync(jobId, 120);
        Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"{finished}\n{processes.Worker.Output}");
        Assert.Equal(Width, finished.GetProperty("result").GetProperty("updated").GetInt32());

        // Every parameter holds what the uninterrupted step wrote, with exactly one momentum entry.
        var calmState = await StateAsync(calm, calmSetup.Optimizer);
        var crashedState = await StateAsync(crashed, crashedSetup.Optimizer);
        for (var i = 0; i < Width; i++)
        {
            var expected = await DataAsync(calm, calmSetup.Parameters[i]);
            Assert.Equal($"P{i} MUST BE UPPER CASE", expected);
            Assert.Equal(expected, await DataAsync(crashed, crashedSetup.Parameters[i]));
            Assert.Single(calmState[calmSetup.Parameters[i]]);
            var entry = Assert.Single(crashedState[crashedSetup.Parameters[i]]);
            Assert.Equal($"p{i} must be upper case", await DataAsync(crashed, entry.GetProperty("snapshot_id").GetString()!));
        }

        // No orphan snapshot from the attempt that was killed: the same number of variables in both projects.
        Assert.Equal(await VariableCountAsync(db, calm), await VariableCountAsync(db, crashed));
        var events = (await crashed.Client.GetJsonAsync($"/v1/jobs/{jobId}/events?limit=100")).GetProperty("data").EnumerateArray()
            .Count(e => e.GetProperty("type").GetString() == "optimizer.parameter_updated");
        Assert.Equal(Width, events);

        // One paid call per parameter in the journal; the provider saw again at most the calls in flight at the kill.
        Assert.Equal(Width, await db.ModelCalls.CountAsync(c => c.JobId == jobGuid && c.Status == "succeeded"));
        var repeated = OptimizerCalls(fake) - beforeCrash - Width;
        Assert.InRange(repeated, 0, Math.Min(Concurrency, calledAtKill - journaledAtKill));
    }

    internal sealed record Setup(string Optimizer, IReadOnlyList<string> Parameters);

    /// <summary><see cref="Width"/> parameters, each with one gradient, in one TGD optimizer with momentum 2.</summary>
    internal static async Task<Setup> SetUpAsync(TestProject project, FakeOpenAiServer fake)
    {
        var model = (await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = fake.Endpoint.ToString(),
            api_key = "sk-crash-test-key-000000",
            default_completion_args = new { model = "gpt-4o" },
            max_concurrency = Concurrency,
        })).GetProperty("id").GetString()!;
        var parameters = new List<string>();
        for (var i = 0; i < Width; i++)
        {
            var parameter = (await project.Client.PostJsonAsync("/v1/variables",
                new { data = $"p{i} must be upper case", role = Role, is_parameter = true })).GetProperty("id").GetString()!;
            var gradient = await project.VariableAsync("Use only capital letters", $"feedback to {Role}");
            await project.Client.PostJsonAsync($"/v1/variables/{parameter}/grad", new { variable_id = gradient });
            parameters.Add(parameter);
        }

        var optimizer = (await project.Client.PostJsonAsync("/v1/optimizers",
            new { type = "tgd", @params = parameters, model_id = model, momentum = 2 })).GetProperty("id").GetString()!;
        return new Setup(optimizer, parameters);
    }

    // Slow optimizer calls, so the kill lands among them.
    internal static FakeReply Reply(JsonElement request) => FakeReply.Text(
        $"{TgdPrompts.OpenTag}{VariableValue().Match(FakeOpenAiServer.MessageText(request, "user")).Groups[1].Value.ToUpperInvariant()}{TgdPrompts.CloseTag}",
        TimeSpan.FromMilliseconds(300));

    internal static int OptimizerCalls(FakeOpenAiServer fake) =>
        fake.Requests.Count(r => FakeOpenAiServer.MessageText(r, "system") == TgdPrompts.SystemPrompt);

    private static async Task<JsonElement> StepAsync(TestProject project, string optimizer)
    {
        var job = await project.Client.PostJsonAsync($"/v1/optimizers/{optimizer}/step", new { });
        return await project.WaitForJobAsync(job.GetProperty("id").GetString()!, 120);
    }

    internal static async Task<Dictionary<string, List<JsonElement>>> StateAsync(TestProject project, string optimizer) =>
        (await project.Client.GetJsonAsync($"/v1/optimizers/{optimizer}")).GetProperty("state").EnumerateArray()
            .ToDictionary(s => s.GetProperty("param_id").GetString()!, s => s.GetProperty("momentum_buffer").EnumerateArray().ToList());

    internal static async Task<string> DataAsync(TestProject project, string variable) =>
        (await project.Client.GetJsonAsync($"/v1/variables/{variable}")).GetProperty("data").GetString()!;

    internal static Task<int> VariableCountAsync(Data.AfnioDbContext db, TestProject project) =>
        PrefixedId.TryParse(PrefixedId.Project, project.Id, out var id)
            ? db.Variables.CountAsync(v => v.ProjectId == id)
            : throw new ArgumentException(project.Id, nameof(project));

    private static Task WaitForCommittedAsync(Data.AfnioDbContext db, Guid jobId, int atLeast, ProcessHost worker) =>
        Eventually.UntilAsync(async () => await db.JobSteps.CountAsync(s => s.JobId == jobId) >= atLeast,
            TimeSpan.FromSeconds(60), () => $"the step did not start:\n{worker.Output}");

    [GeneratedRegex(@"<VARIABLE>(.*?)</VARIABLE>", RegexOptions.Singleline)]
    private static partial Regex VariableValue();
}
