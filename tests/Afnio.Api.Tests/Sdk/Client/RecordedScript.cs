using System.Text.Json.Nodes;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>
/// The user program of the recorded session, step by step, as the afnio client runs it: variables, add,
/// sum, split, two model clients, a chat completion judged by exact match, backward, one TGD step, and
/// a trainer-like batch step. Driven against the scripted replay (to check the simulator) and against
/// Afnio itself (to check the server).
/// </summary>
public static class RecordedScript
{
    public static readonly string RecordingPath = Path.Combine(RepoPaths.Root, "tests", "Afnio.Api.Tests", "Sdk", "Client", "afnio-sdk-session.jsonl");

    public static async Task<RecordedOutcome> RunAsync(SdkClient client, string baseUrl)
    {
        var forwardArgs = new JsonObject { ["api_key"] = "sk-fake-forward", ["base_url"] = baseUrl };
        var backwardArgs = new JsonObject { ["api_key"] = "sk-fake-backward", ["base_url"] = baseUrl };
        var model = new JsonObject { ["model"] = "gpt-4.1-nano" };
        JsonObject Sum() => client.RegisterCallable((args, _) => args[0]!.AsArray().Sum(x => x!.GetValue<int>()));

        // variables, add, sum, split
        var hello = await client.CreateVariableAsync("Hello", "greeting", requiresGrad: true);
        var world = await client.CreateVariableAsync(" world", "suffix");
        var added = Assert.Single(await client.RunFunctionAsync("Add", Arr(SdkClient.Ref(hello), SdkClient.Ref(world))));
        var sum = Assert.Single(await client.RunFunctionAsync("Sum", Arr(Arr(SdkClient.Ref(hello), SdkClient.Ref(world)))));
        var parts = await client.RunFunctionAsync("Split", Arr(SdkClient.Ref(added), " ", -1));
        // models
        var forward = await client.CreateModelAsync("AsyncOpenAI", forwardArgs);
        var backward = await client.SetBackwardModelClientAsync("openai/gpt-4o", backwardArgs);
        // chat, exact_match
        var system = await client.CreateVariableAsync("Classify the sentiment.", "system prompt", requiresGrad: true, parameter: true);
        var template = await client.CreateVariableAsync("{text}", "user prompt template");
        var input = await client.CreateVariableAsync("I love it", "input text");
        var answer = Assert.Single(await client.RunFunctionAsync("ChatCompletion",
            Arr(SdkClient.ModelRef(forward), Messages(system, template), new JsonObject { ["text"] = SdkClient.Ref(input) }),
            new JsonObject { ["model"] = "gpt-4.1-nano", ["temperature"] = 0 }));
        var gold = await client.CreateVariableAsync("negative", "gold label");
        var evaluation = await client.RunFunctionAsync("ExactMatchEvaluator", Arr(SdkClient.Ref(answer), SdkClient.Ref(gold), Sum(), "summation"));
        // backward
        await client.BackwardAsync(evaluation[1]);
        var feedback = Assert.Single(await client.GradAsync(system));
        // tgd
        var tgd = await client.CreateTgdAsync([system], forward, momentum: 1, completionArgs: model);
        await client.StepAsync(tgd);
        var improved = await client.DataAsync(system);
        await client.ClearGradAsync(tgd);
        // trainer
        var system2 = await client.CreateVariableAsync("Classify the sentiment.", "system prompt", requiresGrad: true, parameter: true);
        var template2 = await client.CreateVariableAsync("{text}", "user prompt template");
        var tgd2 = await client.CreateTgdAsync([system2], forward, momentum: 1, completionArgs: model);
        var inputs = await client.CreateVariableAsync(new JsonArray("I love it", "I hate it"), "input text");
        var golds = await client.CreateVariableAsync(new JsonArray("positive", "negative"), "gold label");
        await client.ClearGradAsync(tgd2);
        var batch = Assert.Single(await client.RunFunctionAsync("ChatCompletion",
            Arr(SdkClient.ModelRef(forward), Messages(system2, template2), new JsonObject { ["text"] = SdkClient.Ref(inputs) }), model));
        var reduction = await client.CreateVariableAsync("summation", "");
        var evaluation2 = await client.RunFunctionAsync("ExactMatchEvaluator", Arr(SdkClient.Ref(batch), SdkClient.Ref(golds), Sum(), SdkClient.Ref(reduction)));
        await client.BackwardAsync(evaluation2[1]);
        var state = await client.StepAsync(tgd2);
        var usageBeforeClear = client.Models[forward].Usage?.DeepClone();
        await client.ClearModelUsageAsync(forward);
        await client.ClearModelUsageAsync(backward);

        return new RecordedOutcome(added, sum, parts, answer, evaluation, feedback, improved, system, system2, batch, evaluation2, state,
            forward, backward, usageBeforeClear, (await client.GradFnAsync(evaluation2[1]))?.Name);
    }

    private static JsonArray Messages(SimVariable system, SimVariable user) =>
    [
        new JsonObject { ["role"] = "system", ["content"] = new JsonArray(SdkClient.Ref(system)) },
        new JsonObject { ["role"] = "user", ["content"] = new JsonArray(SdkClient.Ref(user)) },
    ];

    private static JsonArray Arr(params JsonNode?[] items) => new(items);
}

/// <summary>What the recorded program ends with, as the client holds it.</summary>
public sealed record RecordedOutcome(
    SimVariable Added,
    SimVariable Sum,
    IReadOnlyList<SimVariable> Parts,
    SimVariable Answer,
    IReadOnlyList<SimVariable> Evaluation,
    SimVariable Feedback,
    JsonNode? Improved,
    SimVariable System,
    SimVariable System2,
    SimVariable Batch,
    IReadOnlyList<SimVariable> Evaluation2,
    JsonNode? OptimizerState,
    string ForwardModel,
    string BackwardModel,
    JsonNode? ForwardUsageBeforeClear,
    string? Evaluation2GradFn);
