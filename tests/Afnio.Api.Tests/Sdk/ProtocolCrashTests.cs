using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Tests.Sdk.Client;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Optimizers;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests.Sdk;

/// <summary>
/// A protocol client's backward pass and TGD step run as Worker jobs; the Worker is killed in the
/// middle of each and another one started. The client's call, still waiting on heartbeats, ends as it
/// would have without the kill: the same gradients and rewritten parameters as an uninterrupted run in
/// another namespace, none duplicated or lost, and no provider call paid twice beyond those in flight
/// at the kill.
/// </summary>
public sealed class ProtocolCrashTests : IClassFixture<ProtocolCrashTests.Processes>
{
    private const int Width = 12;
    private readonly Processes _afnio;

    public ProtocolCrashTests(Processes afnio)
    {
        _afnio = afnio;
        afnio.Fake.Default = Reply;
    }

    /// <summary>Gradients and optimizer calls two at a time, so a kill lands among them even on a busy machine.</summary>
    public sealed class Processes : SdkProcesses
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio__Jobs__BackwardConcurrency"] = "2",
            ["Afnio__Models__DefaultMaxConcurrency"] = "2",
        };
    }

    [Fact]
    public async Task WorkerKilledDuringAProtocolBackwardAndStep_TheClientEndsAsWithoutTheKill()
    {
        var calmUser = await _afnio.NewUserAsync("calm");
        var crashedUser = await _afnio.NewUserAsync("crashed");
        await using var calm = await _afnio.ConnectAsync(calmUser, "Crash Test");
        await using var crashed = await _afnio.ConnectAsync(crashedUser, "Crash Test");
        var calmProgram = await BuildAsync(calm.Client);
        var crashedProgram = await BuildAsync(crashed.Client);
        await using var db = TestDatabase.CreateDbContext(_afnio.Processes.ConnectionString);
        var crashedProject = ProjectGuid(crashed.ProjectId);

        // Backward: uninterrupted, then killed once a third of the feedback is journaled.
        var before = LanguageModelCrashTests.FeedbackCalls(_afnio.Fake);
        await calm.Client.BackwardAsync(calmProgram.Root, calmProgram.Feedback);
        Assert.Equal(Width, LanguageModelCrashTests.FeedbackCalls(_afnio.Fake) - before);

        before = LanguageModelCrashTests.FeedbackCalls(_afnio.Fake);
        var backward = crashed.Client.BackwardAsync(crashedProgram.Root, crashedProgram.Feedback);
        var (journaled, called) = await KillWhenJournaledAsync(db, crashedProject, Data.Jobs.BackwardJobArguments.JobType,
            () => LanguageModelCrashTests.FeedbackCalls(_afnio.Fake) - before);
        _afnio.Processes.StartWorker();
        await backward;

        for (var i = 0; i < Width; i++)
        {
            var expected = (await calm.Client.GradAsync(calmProgram.Parameters[i])).Select(g => g.Data!.GetValue<string>()).ToList();
            Assert.Equal([$"Make p{i} more specific."], expected);
            Assert.Equal(expected, (await crashed.Client.GradAsync(crashedProgram.Parameters[i])).Select(g => g.Data!.GetValue<string>()));
        }

        var backwardJob = await db.Jobs.Where(j => j.ProjectId == crashedProject && j.Type == Data.Jobs.BackwardJobArguments.JobType).SingleAsync();
        Assert.Equal(2, backwardJob.Attempts);
        Assert.Equal(Width, await db.ModelCalls.CountAsync(c => c.JobId == backwardJob.Id && c.Status == "succeeded"));
        Assert.InRange(LanguageModelCrashTests.FeedbackCalls(_afnio.Fake) - before - Width, 0, called - journaled);

        // TGD step: the same.
        before = OptimizerCrashTests.OptimizerCalls(_afnio.Fake);
        await calm.Client.StepAsync(calmProgram.Optimizer);
        Assert.Equal(Width, OptimizerCrashTests.OptimizerCalls(_afnio.Fake) - before);

        before = OptimizerCrashTests.OptimizerCalls(_afnio.Fake);
        var step = crashed.Client.StepAsync(crashedProgram.Optimizer);
        (journaled, called) = await KillWhenJournaledAsync(db, crashedProject, Data.Jobs.OptimizerStepJobArguments.JobType,
            () => OptimizerCrashTests.OptimizerCalls(_afnio.Fake) - before);
        _afnio.Processes.StartWorker();
        var crashedState = await step;

        for (var i = 0; i < Width; i++)
        {
            Assert.Equal($"P{i}", (await calm.Client.DataAsync(calmProgram.Parameters[i]))!.GetValue<string>());
            Assert.Equal($"P{i}", (await crashed.Client.DataAsync(crashedProgram.Parameters[i]))!.GetValue<string>());
        }

        Assert.Equal(Width, crashedState!.AsArray().Count);
        Assert.All(crashedState.AsArray(), entry => Assert.Single(entry!["value"]!["momentum_buffer"]!.AsArray()));
        var stepJob = await db.Jobs.Where(j => j.ProjectId == crashedProject && j.Type == Data.Jobs.OptimizerStepJobArguments.JobType).SingleAsync();
        Assert.Equal(2, stepJob.Attempts);
        Assert.Equal(Width, await db.ModelCalls.CountAsync(c => c.JobId == stepJob.Id && c.Status == "succeeded"));
        Assert.InRange(OptimizerCrashTests.OptimizerCalls(_afnio.Fake) - before - Width, 0, called - journaled);

        // Nothing made twice: both namespaces' projects hold the same number of variables, and the clients saw no fault.
        Assert.Equal(
            await db.Variables.CountAsync(v => v.ProjectId == ProjectGuid(calm.ProjectId)),
            await db.Variables.CountAsync(v => v.ProjectId == crashedProject));
        Assert.Empty(calm.Client.Violations);
        Assert.Empty(crashed.Client.Violations);
    }

    private sealed record Program(IReadOnlyList<SimVariable> Parameters, SimVariable Root, SimVariable Feedback, SimOptimizer Optimizer);

    /// <summary><c>sum(chat_completion([p_i]) for i in 0..n)</c> over the protocol, with a TGD optimizer over the p_i.</summary>
    private async Task<Program> BuildAsync(SdkClient client)
    {
        var config = new JsonObject { ["api_key"] = "sk-crash-test-key-000000", ["base_url"] = _afnio.Fake.Endpoint.ToString() };
        var model = await client.CreateModelAsync("OpenAI", config);
        await client.SetBackwardModelClientAsync("openai/gpt-4o", (JsonObject)config.DeepClone());
        var parameters = new List<SimVariable>();
        var outputs = new JsonArray();
        for (var i = 0; i < Width; i++)
        {
            var parameter = await client.CreateVariableAsync($"p{i}", $"instruction {i}", requiresGrad: true, parameter: true);
            parameters.Add(parameter);
            var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(SdkClient.Ref(parameter)) });
            var output = Assert.Single(await client.RunFunctionAsync("ChatCompletion",
                new JsonArray(SdkClient.ModelRef(model), messages, new JsonObject()), new JsonObject { ["model"] = "gpt-4o-mini" }));
            outputs.Add(SdkClient.Ref(output));
        }

        var root = Assert.Single(await client.RunFunctionAsync("Sum", new JsonArray(outputs)));
        var feedback = await client.CreateVariableAsync("The answers are too vague.", "feedback");
        var optimizer = await client.CreateTgdAsync(parameters, model, momentum: 2, completionArgs: new JsonObject { ["model"] = "gpt-4o" });
        return new Program(parameters, root, feedback, optimizer);
    }

    /// <summary>
    /// Kills the Worker once the project's job of this type has a third of its calls journaled; answers how
    /// many the journal and the provider held at that moment.
    /// </summary>
    private async Task<(int Journaled, int Called)> KillWhenJournaledAsync(Data.AfnioDbContext db, Guid project, string type, Func<int> called)
    {
        IQueryable<Data.LanguageModels.ModelCall> Journal() => db.ModelCalls.Where(c => db.Jobs.Any(j => j.Id == c.JobId && j.ProjectId == project && j.Type == type));
        await Eventually.UntilAsync(async () => await Journal().CountAsync() >= Width / 3,
            TimeSpan.FromSeconds(60), () => $"the {type} job did not start:\n{_afnio.Processes.Worker.Output}");
        _afnio.Processes.KillWorker();
        await _afnio.Fake.SettledRequestCountAsync();
        var journaled = await Journal().CountAsync(c => c.Status == "succeeded");
        Assert.InRange(journaled, 1, Width - 1);
        return (journaled, called());
    }

    private static Guid ProjectGuid(string projectId) =>
        PrefixedId.TryParse(PrefixedId.Project, projectId, out var id) ? id : throw new ArgumentException(projectId, nameof(projectId));

    // Feedback calls name the variable they criticise; TGD calls write it in capitals; both are slow.
    private static FakeReply Reply(JsonElement request)
    {
        var system = FakeOpenAiServer.MessageText(request, "system");
        if (system == FeedbackPrompts.GradientEngineSystemPrompt)
        {
            return LanguageModelCrashTests.Reply(request);
        }

        return system == TgdPrompts.SystemPrompt
            ? OptimizerCrashTests.Reply(request)
            : FakeReply.Text("answer to " + FakeOpenAiServer.MessageText(request, "user"));
    }
}
