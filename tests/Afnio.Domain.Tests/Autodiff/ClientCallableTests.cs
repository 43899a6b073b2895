using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Autodiff.Evaluation;
using Afnio.Domain.Autodiff.Ops;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests.Autodiff;

/// <summary>
/// The evaluators with the afnio client's own functions (eval_fn, reduction_fn, success_fn), called
/// back through <see cref="IClientCallables"/>, and with purposes given as variables.
/// </summary>
public sealed class ClientCallableTests
{
    /// <summary>Plays the client: named Python-like functions, and a log of every call in order.</summary>
    private sealed class Client : IClientCallables
    {
        private readonly Dictionary<string, Func<JsonArray, JsonNode?>> _functions = new(StringComparer.Ordinal)
        {
            ["exact_match_fn"] = args => JsonValue.Create(args[0]!.ToJsonString() == args[1]!.ToJsonString() ? 1 : 0),
            ["sum"] = args => JsonValue.Create(args[0]!.AsArray().Sum(s => s!.GetValue<long>())),
            ["all_ones"] = args => JsonValue.Create(args[0]!.AsArray().All(s => s!.GetValue<double>() == 1)),
            ["text"] = _ => JsonValue.Create("not a number"),
        };

        public List<(string Id, string Args)> Calls { get; } = [];

        public ValueTask<JsonElement> CallAsync(string callableId, IReadOnlyList<JsonNode?> args, CancellationToken cancellationToken)
        {
            var list = new JsonArray([.. args.Select(a => a?.DeepClone())]);
            Calls.Add((callableId, list.ToJsonString()));
            return ValueTask.FromResult(JsonSerializer.SerializeToElement(_functions[callableId](list)));
        }
    }

    private readonly Dictionary<Guid, VariableSnapshot> _variables = [];
    private readonly Client _client = new();

    private string Variable(string json, string role, bool requiresGrad = false)
    {
        var v = new VariableSnapshot(PrefixedId.NewGuid(), Json.Data(json), role, requiresGrad, null, 0);
        _variables[v.Id] = v;
        return Tape.Id(v.Id);
    }

    private static string Callable(string id) => $"{{\"__callable__\": true, \"callable_id\": \"{id}\"}}";

    private async Task<(OpCall Call, ForwardResult Result)> ForwardAsync(IOperation operation, string arguments)
    {
        using var doc = JsonDocument.Parse(arguments);
        var call = operation.Bind(doc.RootElement);
        return (call, await operation.ForwardAsync(call, _variables, CancellationToken.None));
    }

    [Fact]
    public async Task DeterministicEvaluator_WithTheClientsEvalFn_ScoresEachPairThroughIt_WithThePlainValues()
    {
        var prediction = Variable("\"green\"", "color prediction", requiresGrad: true);
        var operation = new DeterministicEvaluatorOperation(null!, _client);

        var (_, result) = await ForwardAsync(operation, $$"""
            {"prediction": "{{prediction}}", "target": "red", "eval_fn": {{Callable("exact_match_fn")}}, "eval_fn_purpose": "exact match",
             "success": null, "reduction": null, "reduction_fn_purpose": null}
            """);

        Assert.Equal([("exact_match_fn", "[\"green\",\"red\"]")], _client.Calls);
        Assert.Equal("0", result.Outputs[0].Data.ToJson());
        Assert.Equal("The evaluation function, designed for 'exact match', compared the <DATA> field of the predicted variable ('green') "
            + "with the <DATA> field of the target variable ('red'), resulting in a score: 0.", result.Outputs[1].Data.Scalar.AsStr);
    }

    [Fact]
    public async Task ExactMatch_WithTheClientsSum_ReducesTheBatchScoresInOneCall()
    {
        var prediction = Variable("[\"green\", \"blue\"]", "color predictions", requiresGrad: true);
        var operation = new ExactMatchEvaluatorOperation(null!, _client);

        var (_, result) = await ForwardAsync(operation, $$"""
            {"prediction": "{{prediction}}", "target": ["red", "blue"], "reduction": {{Callable("sum")}}, "reduction_fn_purpose": "summation"}
            """);

        // The recorded session: one run_callable with the list of scores, [[0, 1]] here.
        Assert.Equal([("sum", "[[0,1]]")], _client.Calls);
        Assert.Equal("1", result.Outputs[0].Data.ToJson());
        Assert.EndsWith("aggregated using the reduction function 'summation', resulting in a final aggregated score: 1.", result.Outputs[1].Data.Scalar.AsStr);
    }

    [Fact]
    public async Task ClientSuccessFn_DecidesTheSavedSuccess_FromTheScores()
    {
        var prediction = Variable("[\"blue\", \"blue\"]", "color predictions", requiresGrad: true);
        var operation = new DeterministicEvaluatorOperation(null!, _client);

        var (_, result) = await ForwardAsync(operation, $$"""
            {"prediction": "{{prediction}}", "target": ["blue", "blue"], "eval_fn": {{Callable("exact_match_fn")}}, "eval_fn_purpose": "exact match",
             "success": {{Callable("all_ones")}}, "reduction": {{Callable("sum")}}, "reduction_fn_purpose": "summation"}
            """);

        Assert.Equal(["exact_match_fn", "exact_match_fn", "sum", "all_ones"], _client.Calls.Select(c => c.Id));
        Assert.Equal("[[1,1]]", _client.Calls[^1].Args);
        Assert.True(result.SavedContext["success"]!.GetValue<bool>());
    }

    [Fact]
    public async Task PurposesGivenAsVariables_AreQuoted_AndTakeEdgesInArgumentOrder()
    {
        var prediction = Variable("[\"a\", \"b\"]", "labels", requiresGrad: true);
        var target = Variable("[\"a\", \"c\"]", "gold labels");
        var purpose = Variable("\"summation\"", "");
        var operation = new ExactMatchEvaluatorOperation(null!, _client);

        var (call, result) = await ForwardAsync(operation, $$"""
            {"prediction": "{{prediction}}", "target": "{{target}}", "reduction": {{Callable("sum")}}, "reduction_fn_purpose": "{{purpose}}"}
            """);

        // As afnio's trainer sends it: prediction, target and the purpose variable, three edges.
        Assert.Equal([prediction, target, purpose], call.Variables.Select(Tape.Id));
        Assert.EndsWith("the reduction function 'summation', resulting in a final aggregated score: 1.", result.Outputs[1].Data.Scalar.AsStr);
    }

    [Fact]
    public async Task ClientFunctionReturningText_IsAClearError()
    {
        var prediction = Variable("\"a\"", "label", requiresGrad: true);
        var operation = new DeterministicEvaluatorOperation(null!, _client);

        var error = await Assert.ThrowsAsync<AfnioException>(async () => await ForwardAsync(operation, $$"""
            {"prediction": "{{prediction}}", "target": "a", "eval_fn": {{Callable("text")}}, "eval_fn_purpose": "exact match"}
            """));

        Assert.Equal("invalid_callable_result", error.Code);
        Assert.Equal("eval_fn returned \"not a number\"; it must return a number or a boolean.", error.Message);
    }

    [Theory]
    [InlineData("eval_fn")]
    [InlineData("reduction")]
    [InlineData("success")]
    public void ClientCallables_WithoutAClient_AreRefusedAtBinding(string field)
    {
        var prediction = Variable("\"a\"", "label", requiresGrad: true);
        var operation = new DeterministicEvaluatorOperation(null!);
        var evalFn = field == "eval_fn" ? Callable("x") : "\"exact\"";
        var extra = field == "eval_fn" ? string.Empty : $", \"{field}\": {Callable("x")}";
        using var doc = JsonDocument.Parse($$"""
            {"prediction": "{{prediction}}", "target": "a", "eval_fn": {{evalFn}}, "eval_fn_purpose": "exact match"{{extra}}}
            """);

        var error = Assert.Throws<AfnioException>(() => operation.Bind(doc.RootElement));

        Assert.Equal("callable_unavailable", error.Code);
        Assert.Equal(field, error.Param);
    }
}
