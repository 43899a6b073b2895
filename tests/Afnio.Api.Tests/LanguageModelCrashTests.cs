using System.Text.Json;
using System.Text.RegularExpressions;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>
/// Kills the Worker process while a backward pass is asking the provider for feedback, starts a new
/// one, and checks that the result equals an uninterrupted run and that no feedback call was paid for
/// twice, except the ones in flight at the moment of the kill.
/// </summary>
public sealed partial class LanguageModelCrashTests
{
    internal const int Width = 40;
    internal const int Concurrency = 4;

    [Fact]
    public async Task AWorkerKilledMidFeedback_ResumesFromTheJournal_WithoutRepeatingPaidCalls()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = Reply;
        await using var processes = await SeparateProcesses.StartAsync("afnio_llm_crash", new Dictionary<string, string>
        {
            ["Afnio__Jobs__BackwardConcurrency"] = Concurrency.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        var calm = await processes.CreateProjectAsync("uninterrupted");
        var crashed = await processes.CreateProjectAsync("crashed");
        var calmGraph = await BuildAsync(calm, fake);
        var crashedGraph = await BuildAsync(crashed, fake);

        var beforeReference = FeedbackCalls(fake);
        var reference = await calm.BackwardAsync(new { variables = new[] { calmGraph.Root }, grad_variables = new[] { calmGraph.Feedback } });
        Assert.True(reference.GetProperty("status").GetString() == "succeeded", $"{reference}\n{processes.Worker.Output}");
        Assert.Equal(Width, FeedbackCalls(fake) - beforeReference);

        var beforeCrash = FeedbackCalls(fake);
        var job = await crashed.Client.PostJsonAsync("/v1/backward", new { variables = new[] { crashedGraph.Root }, grad_variables = new[] { crashedGraph.Feedback } });
        var jobId = job.GetProperty("id").GetString()!;
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var jobGuid));
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        await WaitForJournalAsync(db, jobGuid, Width / 3, processes.Worker);
        processes.KillWorker();
        var journaledAtKill = await db.ModelCalls.CountAsync(c => c.JobId == jobGuid);
        var calledAtKill = FeedbackCalls(fake) - beforeCrash;
        Assert.InRange(journaledAtKill, Width / 3, Width - 1);

        processes.StartWorker();
        var finished = await crashed.WaitForJobAsync(jobId, 120);
        Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"{finished}\n{processes.Worker.Output}");

        // Every parameter got exactly the feedback of the uninterrupted run, once.
        for (var i = 0; i < Width; i++)
        {
            var expected = await calm.GradTextsAsync(calmGraph.Parameters[i]);
            Assert.Equal([$"Make p{i} more specific."], expected);
            Assert.Equal(expected, await crashed.GradTextsAsync(crashedGraph.Parameters[i]));
        }

        // The journal holds one paid call per parameter; the provider saw at most the calls that were
        // in flight at the kill a second time.
        Assert.Equal(Width, await db.ModelCalls.CountAsync(c => c.JobId == jobGuid && c.Status == "succeeded"));
        var repeated = FeedbackCalls(fake) - beforeCrash - Width;
        Assert.InRange(repeated, 0, Math.Min(Concurrency, calledAtKill - journaledAtKill));
    }

    internal sealed record Graph(string Root, string Feedback, IReadOnlyList<string> Parameters);

    /// <summary><c>sum(chat_completion([p_i]) for i in 0..n)</c>: n chat nodes, each with one parameter behind it.</summary>
    internal static async Task<Graph> BuildAsync(TestProject project, FakeOpenAiServer fake)
    {
        var model = (await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = fake.Endpoint.ToString(),
            api_key = "sk-crash-test-key-000000",
            default_completion_args = new { model = "gpt-4o-mini" },
            max_concurrency = Concurrency,
        })).GetProperty("id").GetString()!;
        await project.Client.PutJsonAsync("/v1/backward_model", new { model_id = model, completion_args = new { model = "gpt-4o" } });
        var parameters = new List<string>();
        var outputs = new List<string>();
        for (var i = 0; i < Width; i++)
        {
            var parameter = await project.VariableAsync($"p{i}", $"instruction {i}", requiresGrad: true);
            parameters.Add(parameter);
            outputs.Add(await project.OutputAsync("chat_completion", new
            {
                model_id = model,
                messages = new[] { new { role = "user", content = new[] { parameter } } },
            }));
        }

        var root = await project.OutputAsync("sum", new { x = outputs });
        return new Graph(root, await project.VariableAsync("The answers are too vague.", "feedback"), parameters);
    }

    // Feedback calls are slow (so the kill lands among them) and name the variable they criticise.
    internal static FakeReply Reply(JsonElement request) =>
        IsFeedback(request)
            ? FakeReply.Text($"Make {VariableValue().Match(FakeOpenAiServer.MessageText(request, "user")).Groups[1].Value} more specific.",
                TimeSpan.FromMilliseconds(150))
            : FakeReply.Text("answer to " + FakeOpenAiServer.MessageText(request, "user"));

    internal static int FeedbackCalls(FakeOpenAiServer fake) =>
        fake.Requests.Count(IsFeedback);

    private static bool IsFeedback(JsonElement request) =>
        request.GetProperty("messages")[0].GetProperty("content").GetString() == FeedbackPrompts.GradientEngineSystemPrompt;

    private static Task WaitForJournalAsync(Data.AfnioDbContext db, Guid jobId, int atLeast, ProcessHost worker) =>
        Eventually.UntilAsync(async () => await db.ModelCalls.CountAsync(c => c.JobId == jobId) >= atLeast,
            TimeSpan.FromSeconds(60), () => $"the pass did not start:\n{worker.Output}");

    [GeneratedRegex(@"<VARIABLE>\s*(p\d+)\s*</VARIABLE>")]
    private static partial Regex VariableValue();
}
