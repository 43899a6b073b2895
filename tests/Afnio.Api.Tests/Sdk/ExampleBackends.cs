using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Tests.Sdk.Client;

namespace Afnio.Api.Tests.Sdk;

/// <summary>
/// A variable as its user sees it, what the documented examples compare between the two ways in: its data
/// as compact JSON with only the escapes JSON needs, role, flags and the name of its grad_fn node.
/// </summary>
public sealed record SeenVariable(string Data, string Role, bool RequiresGrad, bool IsLeaf, string? GradFn)
{
    private static readonly System.Text.Json.JsonSerializerOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Json(JsonNode? data) => data?.ToJsonString(Readable) ?? "null";

    public static string Json(string text) => Json(JsonValue.Create(text));
}

/// <summary>A gradient as its user sees it.</summary>
public sealed record SeenGradient(string Data, string Role);

/// <summary>
/// The afnio operations the documented examples use, written once and run two ways: over the afnio
/// protocol as the Python client drives it (<see cref="ProtocolBackend"/>), and over the v1 REST API
/// (<see cref="RestBackend"/>). Variables, models and optimizers are named by their public ids.
/// </summary>
public interface IExampleBackend
{
    Task<string> VariableAsync(JsonNode data, string role, bool requiresGrad = false, bool parameter = false);

    Task<string> AddAsync(string x, string y);

    Task<string> SumAsync(IReadOnlyList<string> xs);

    Task<IReadOnlyList<string>> SplitAsync(string x, string? sep, int maxsplit);

    Task<string> ModelAsync();

    Task UseBackwardModelAsync();

    /// <summary>A chat completion with one system and one user message, the user message's placeholders filled from <paramref name="inputs"/>.</summary>
    Task<string> ChatAsync(string model, string system, string user, IReadOnlyDictionary<string, string> inputs);

    /// <summary>Exact match, summed and described as "summation".</summary>
    Task<IReadOnlyList<string>> ExactMatchAsync(string prediction, string target);

    /// <summary>
    /// A deterministic evaluator whose score for a pair is 1 when the prediction's JSON field equals the
    /// target: a Python function of the client's over the protocol, the <c>json_field</c> catalogue entry over REST.
    /// </summary>
    Task<IReadOnlyList<string>> JsonFieldEvaluatorAsync(string prediction, string target, string field, string purpose);

    /// <summary>An LM judge over one instruction message whose placeholders name the prediction and target, summed as "summation".</summary>
    Task<IReadOnlyList<string>> LmJudgeAsync(string model, string instructions, string prediction, string target);

    Task BackwardAsync(string root, string? gradient = null, bool retainGraph = false);

    Task AppendGradAsync(string variable, string gradient);

    Task<SeenVariable> SeeAsync(string variable);

    Task<IReadOnlyList<SeenGradient>> GradsAsync(string variable);

    Task<string> TgdAsync(IReadOnlyList<string> parameters, string model, int momentum, IReadOnlyList<string> constraints);

    /// <summary>Adds a parameter group with the optimizer's defaults but its own momentum.</summary>
    Task AddParamGroupAsync(string optimizer, IReadOnlyList<string> parameters, int momentum);

    Task StepAsync(string optimizer);

    Task ClearGradAsync(string optimizer);
}

/// <summary>The examples as an afnio program runs them, through the client simulator.</summary>
public sealed class ProtocolBackend(SdkClient client, Uri providerBase) : IExampleBackend
{
    private static readonly JsonObject CompletionArgs = new() { ["model"] = "gpt-4o-mini", ["temperature"] = 0 };

    private readonly Dictionary<string, SimVariable> _variables = [];
    private readonly Dictionary<string, SimOptimizer> _optimizers = [];

    public async Task<string> VariableAsync(JsonNode data, string role, bool requiresGrad = false, bool parameter = false) =>
        Keep(await client.CreateVariableAsync(data.DeepClone(), role, requiresGrad || parameter, parameter));

    public async Task<string> AddAsync(string x, string y) => Keep(Assert.Single(await client.RunFunctionAsync("Add", [Ref(x), Ref(y)])));

    public async Task<string> SumAsync(IReadOnlyList<string> xs) =>
        Keep(Assert.Single(await client.RunFunctionAsync("Sum", [new JsonArray([.. xs.Select(x => (JsonNode)Ref(x))])])));

    public async Task<IReadOnlyList<string>> SplitAsync(string x, string? sep, int maxsplit) =>
        [.. (await client.RunFunctionAsync("Split", [Ref(x), sep, maxsplit])).Select(Keep)];

    public Task<string> ModelAsync() => client.CreateModelAsync("OpenAI", Provider());

    public Task UseBackwardModelAsync() => client.SetBackwardModelClientAsync("openai/gpt-4o", Provider());

    public async Task<string> ChatAsync(string model, string system, string user, IReadOnlyDictionary<string, string> inputs)
    {
        var messages = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = new JsonArray(Ref(system)) },
            new JsonObject { ["role"] = "user", ["content"] = new JsonArray(Ref(user)) });
        var fill = new JsonObject();
        foreach (var (name, variable) in inputs)
        {
            fill[name] = Ref(variable);
        }

        return Keep(Assert.Single(await client.RunFunctionAsync("ChatCompletion", [SdkClient.ModelRef(model), messages, fill],
            (JsonObject)CompletionArgs.DeepClone())));
    }

    public async Task<IReadOnlyList<string>> ExactMatchAsync(string prediction, string target) =>
        [.. (await client.RunFunctionAsync("ExactMatchEvaluator", [Ref(prediction), Ref(target), Summation(), "summation"])).Select(Keep)];

    public async Task<IReadOnlyList<string>> JsonFieldEvaluatorAsync(string prediction, string target, string field, string purpose)
    {
        // What a quickstart user writes: parse the prediction as JSON, compare one field with the target.
        var evalFn = client.RegisterCallable((args, _) =>
            JsonNode.Parse(args[0]!.GetValue<string>())?[field]?.GetValue<string>() == args[1]!.GetValue<string>() ? 1 : 0);
        return [.. (await client.RunFunctionAsync("DeterministicEvaluator",
            [Ref(prediction), Ref(target), evalFn, purpose, null, Summation(), "summation"])).Select(Keep)];
    }

    public async Task<IReadOnlyList<string>> LmJudgeAsync(string model, string instructions, string prediction, string target)
    {
        var messages = new JsonArray(new JsonObject { ["role"] = "system", ["content"] = new JsonArray(Ref(instructions)) });
        var kwargs = (JsonObject)CompletionArgs.DeepClone();
        kwargs["reduction_fn"] = Summation();
        kwargs["reduction_fn_purpose"] = "summation";
        return [.. (await client.RunFunctionAsync("LMJudgeEvaluator", [SdkClient.ModelRef(model), messages, Ref(prediction), Ref(target)], kwargs)).Select(Keep)];
    }

    public async Task BackwardAsync(string root, string? gradient = null, bool retainGraph = false) =>
        await client.BackwardAsync(_variables[root], gradient is null ? null : _variables[gradient], retainGraph ? true : null);

    public Task AppendGradAsync(string variable, string gradient) => client.AppendGradAsync(_variables[variable], _variables[gradient]);

    public async Task<SeenVariable> SeeAsync(string variable)
    {
        var v = _variables[variable];
        var data = await client.DataAsync(v);
        return new SeenVariable(SeenVariable.Json(data), v.Role, v.RequiresGrad, v.IsLeaf, (await client.GradFnAsync(v))?.Name);
    }

    public async Task<IReadOnlyList<SeenGradient>> GradsAsync(string variable) =>
        [.. (await client.GradAsync(_variables[variable])).Select(g => new SeenGradient(g.Data?.ToString() ?? "", g.Role))];

    public async Task<string> TgdAsync(IReadOnlyList<string> parameters, string model, int momentum, IReadOnlyList<string> constraints)
    {
        var optimizer = await client.CreateTgdAsync([.. parameters.Select(p => _variables[p])], model,
            constraints: new JsonArray([.. constraints.Select(c => (JsonNode)c)]), momentum: momentum, completionArgs: (JsonObject)CompletionArgs.DeepClone());
        _optimizers[optimizer.Id] = optimizer;
        return optimizer.Id;
    }

    public async Task AddParamGroupAsync(string optimizer, IReadOnlyList<string> parameters, int momentum) =>
        await client.AddParamGroupAsync(_optimizers[optimizer], new JsonObject
        {
            ["params"] = new JsonArray([.. parameters.Select(p => (JsonNode)Ref(p))]),
            ["momentum"] = momentum,
        });

    public async Task StepAsync(string optimizer) => await client.StepAsync(_optimizers[optimizer]);

    public Task ClearGradAsync(string optimizer) => client.ClearGradAsync(_optimizers[optimizer]);

    private JsonObject Provider() => new() { ["api_key"] = "sk-examples", ["base_url"] = providerBase.ToString() };

    private JsonObject Summation() => client.RegisterCallable((args, _) => args[0]!.AsArray().Sum(x => x!.GetValue<int>()));

    private JsonObject Ref(string id) => SdkClient.Ref(_variables[id]);

    private string Keep(SimVariable v)
    {
        _variables[v.Id] = v;
        return v.Id;
    }
}

/// <summary>The examples as a REST user runs them, with a project key.</summary>
public sealed class RestBackend(TestProject project, Uri providerBase) : IExampleBackend
{
    private static readonly object CompletionArgs = new { model = "gpt-4o-mini", temperature = 0 };

    private HttpClient Http => project.Client;

    public async Task<string> VariableAsync(JsonNode data, string role, bool requiresGrad = false, bool parameter = false) =>
        Id(await Http.PostJsonAsync("/v1/variables", new { data, role, requires_grad = requiresGrad || parameter, is_parameter = parameter }));

    public Task<string> AddAsync(string x, string y) => project.OutputAsync("add", new { x, y });

    public Task<string> SumAsync(IReadOnlyList<string> xs) => project.OutputAsync("sum", new { x = xs });

    public Task<IReadOnlyList<string>> SplitAsync(string x, string? sep, int maxsplit) => project.OutputsAsync("split", new { x, sep, maxsplit });

    public async Task<string> ModelAsync() =>
        Id(await Http.PostJsonAsync("/v1/models", new { provider = "openai", base_url = providerBase.ToString(), api_key = "sk-examples" }));

    public async Task UseBackwardModelAsync() =>
        await Http.PutJsonAsync("/v1/backward_model", new { model_id = await ModelAsync(), completion_args = new { model = "gpt-4o" } });

    public Task<string> ChatAsync(string model, string system, string user, IReadOnlyDictionary<string, string> inputs) =>
        project.OutputAsync("chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "system", content = new[] { system } }, new { role = "user", content = new[] { user } } },
            inputs,
            completion_args = CompletionArgs,
        });

    public Task<IReadOnlyList<string>> ExactMatchAsync(string prediction, string target) =>
        project.OutputsAsync("exact_match_evaluator", new { prediction, target });

    public Task<IReadOnlyList<string>> JsonFieldEvaluatorAsync(string prediction, string target, string field, string purpose) =>
        project.OutputsAsync("deterministic_evaluator", new
        {
            prediction,
            target,
            eval_fn = new { name = "json_field", field },
            eval_fn_purpose = purpose,
            reduction = "sum",
            reduction_fn_purpose = "summation",
        });

    public Task<IReadOnlyList<string>> LmJudgeAsync(string model, string instructions, string prediction, string target) =>
        project.OutputsAsync("lm_judge_evaluator", new
        {
            model_id = model,
            messages = new[] { new { role = "system", content = new[] { instructions } } },
            prediction,
            target,
            reduction = "sum",
            reduction_fn_purpose = "summation",
            completion_args = CompletionArgs,
        });

    public async Task BackwardAsync(string root, string? gradient = null, bool retainGraph = false)
    {
        var job = await project.BackwardAsync(new
        {
            variables = new[] { root },
            grad_variables = gradient is null ? null : new[] { gradient },
            retain_graph = retainGraph,
        });
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
    }

    public async Task AppendGradAsync(string variable, string gradient)
    {
        using var response = await Http.PostAsJsonAsync($"/v1/variables/{variable}/grad", new { variable_id = gradient });
        await HttpJson.EnsureSuccessAsync(response);
    }

    public async Task<SeenVariable> SeeAsync(string variable)
    {
        var v = await Http.GetJsonAsync($"/v1/variables/{variable}");
        var gradFn = v.GetProperty("grad_fn").GetString();
        var node = gradFn is null ? null : (await Http.GetJsonAsync($"/v1/nodes/{gradFn}")).GetProperty("name").GetString();
        return new SeenVariable(SeenVariable.Json(JsonNode.Parse(v.GetProperty("data").GetRawText())), v.GetProperty("role").GetString()!,
            v.GetProperty("requires_grad").GetBoolean(), v.GetProperty("is_leaf").GetBoolean(), node);
    }

    public async Task<IReadOnlyList<SeenGradient>> GradsAsync(string variable) =>
        [.. (await project.GradListAsync(variable)).EnumerateArray().Select(g => new SeenGradient(g.GetProperty("data").ToString(), g.GetProperty("role").GetString()!))];

    public async Task<string> TgdAsync(IReadOnlyList<string> parameters, string model, int momentum, IReadOnlyList<string> constraints) =>
        Id(await Http.PostJsonAsync("/v1/optimizers", new { type = "tgd", @params = parameters, model_id = model, momentum, constraints, completion_args = CompletionArgs }));

    public async Task AddParamGroupAsync(string optimizer, IReadOnlyList<string> parameters, int momentum)
    {
        using var response = await Http.PostAsJsonAsync($"/v1/optimizers/{optimizer}/param_groups", new { @params = parameters, momentum });
        await HttpJson.EnsureSuccessAsync(response);
    }

    public async Task StepAsync(string optimizer)
    {
        using var response = await Http.PostAsync($"/v1/optimizers/{optimizer}/step", null);
        var job = await project.WaitForJobAsync((await HttpJson.EnsureSuccessAsync(response)).GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
    }

    public async Task ClearGradAsync(string optimizer)
    {
        using var response = await Http.PostAsync($"/v1/optimizers/{optimizer}/clear_grad", null);
        await HttpJson.EnsureSuccessAsync(response);
    }

    private static string Id(JsonElement created) => created.GetProperty("id").GetString()!;
}
