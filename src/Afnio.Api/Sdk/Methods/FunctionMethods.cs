using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Autodiff;
using Afnio.Api.Sdk.Rpc;
using Afnio.Data.LanguageModels;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Autodiff.Evaluation;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Sdk.Methods;

/// <summary>
/// <c>run_function</c>: binds the client's positional and keyword arguments to the function's
/// Python signature (semantics §2.1), calls the same operation <c>POST /v1/functions/{name}</c> runs,
/// then pushes the new nodes and edges (and the model's usage) before the reply, as the client needs.
/// </summary>
public static class FunctionMethods
{
    private sealed record Parameter(string Name, bool Required = true);

    /// <summary>A function as the client names it: its REST operation, Python parameters, and whether it answers a tuple.</summary>
    private sealed record Signature(string Operation, IReadOnlyList<Parameter> Parameters, bool TakesCompletionArgs, bool ReturnsTuple, string? ModelParameter);

    private static readonly Dictionary<string, Signature> Functions = new(StringComparer.Ordinal)
    {
        ["Add"] = new("add", [new("x"), new("y")], false, false, null),
        ["Sum"] = new("sum", [new("x")], false, false, null),
        ["Split"] = new("split", [new("x"), new("sep", false), new("maxsplit", false)], false, true, null),
        ["ChatCompletion"] = new("chat_completion", [new("forward_model_client"), new("messages"), new("inputs", false)], true, false, "forward_model_client"),
        ["DeterministicEvaluator"] = new("deterministic_evaluator",
            [new("prediction"), new("target"), new("eval_fn"), new("eval_fn_purpose"), new("success_fn"), new("reduction_fn"), new("reduction_fn_purpose")],
            false, true, null),
        ["ExactMatchEvaluator"] = new("exact_match_evaluator",
            [new("prediction"), new("target"), new("reduction_fn", false), new("reduction_fn_purpose", false)], false, true, null),
        ["LMJudgeEvaluator"] = new("lm_judge_evaluator",
            [new("forward_model_client"), new("messages"), new("prediction"), new("target", false), new("inputs", false), new("success_fn", false),
                new("reduction_fn", false), new("reduction_fn_purpose", false), new("eval_mode", false)], true, true, "forward_model_client"),
    };

    // The service's names for afnio's parameters, where they differ.
    private static readonly Dictionary<string, string> RestNames = new(StringComparer.Ordinal)
    {
        ["forward_model_client"] = "model_id",
        ["reduction_fn"] = "reduction",
        ["success_fn"] = "success",
    };

    public static async Task<JsonNode?> RunFunctionAsync(SdkCall call)
    {
        var name = call.RequiredString("function_name");
        if (!Functions.TryGetValue(name, out var signature))
        {
            throw RpcException.InvalidParams(
                $"Unknown function: '{name}'. The server runs: {string.Join(", ", Functions.Keys)}.", "function_name", "function_not_found");
        }

        var gradEnabled = call.OptionalBool("grad_enabled") ?? true;
        var args = call.Optional("args") switch
        {
            null => [],
            JsonArray a => a,
            _ => throw RpcException.InvalidParams("'args' must be a list of positional arguments.", "args", "invalid_type"),
        };
        var kwargs = call.Optional("kwargs") switch
        {
            null => [],
            JsonObject k => k,
            _ => throw RpcException.InvalidParams("'kwargs' must be an object of keyword arguments.", "kwargs", "invalid_type"),
        };

        var (bound, completionArgs) = Bind(name, signature, args, kwargs);
        var variables = new List<Guid>();
        var body = new JsonObject();
        foreach (var (parameter, value) in bound)
        {
            body[RestNames.GetValueOrDefault(parameter, parameter)] = SdkRefs.ToRest(value, parameter, variables);
        }

        if (completionArgs.Count > 0)
        {
            body["completion_args"] = SdkRefs.ToRest(completionArgs, "kwargs", variables);
        }

        body["grad_enabled"] = gradEnabled;
        await call.EnsureVariablesAsync(variables, "args");
        Guid? modelId = signature.ModelParameter is { } modelParameter ? SdkRefs.Model(bound[modelParameter], modelParameter) : null;
        if (modelId is { } model)
        {
            await call.EnsureModelAsync(model, signature.ModelParameter!);
        }

        using var models = new UsageReportingModels(call.Get<ModelGateway>().ForProject(call.Project.ProjectId), call);
        var operations = OperationRegistry.Standard(models, new SdkCallables(call),
            call.Get<Microsoft.Extensions.Options.IOptions<Afnio.Api.Infrastructure.AfnioOptions>>().Value.Evaluation.RegexLimits());
        var result = (await FunctionsApi.CallFunction(signature.Operation, JsonSerializer.SerializeToElement(body), operations,
            call.Db, call.Project, call.Get<TimeProvider>(), call.Cancellation)).Value!;

        if (result.Node is { } node)
        {
            await PushNodeAsync(call, node);
        }

        var records = result.Outputs.Select(o => SdkRefs.Record(o)).ToList();
        foreach (var output in result.Outputs)
        {
            call.Session.KnownVariables.Add(SdkRefs.GuidOf(PrefixedId.Variable, output.Id));
        }

        return new JsonObject { ["data"] = signature.ReturnsTuple ? new JsonArray([.. records]) : records[0] };
    }

    /// <summary>create_node for the new node and any node its edges reach that the client lacks, then its edges in order.</summary>
    public static async Task PushNodeAsync(SdkCall call, NodeResponse node)
    {
        var known = call.Session.KnownNodes;
        var nodeId = SdkRefs.GuidOf(PrefixedId.Node, node.Id);
        if (known.Add(nodeId))
        {
            await call.PushAsync("create_node", new JsonObject { ["node_id"] = node.Id, ["name"] = node.Name });
        }

        var targets = node.NextFunctions.Select(e => e.NodeId).OfType<string>().Select(id => SdkRefs.GuidOf(PrefixedId.Node, id))
            .Where(id => !known.Contains(id)).Distinct().ToList();
        if (targets.Count > 0)
        {
            var names = await call.Db.Nodes.AsNoTracking().Where(n => n.ProjectId == call.Project.ProjectId && targets.Contains(n.Id))
                .ToDictionaryAsync(n => n.Id, n => n.Name, call.Cancellation);
            foreach (var target in targets)
            {
                known.Add(target);
                await call.PushAsync("create_node", new JsonObject
                {
                    ["node_id"] = PrefixedId.Format(PrefixedId.Node, target),
                    ["name"] = names.GetValueOrDefault(target, Afnio.Domain.Autodiff.GraphNode.AccumulateGradName),
                });
            }
        }

        foreach (var edge in node.NextFunctions)
        {
            await call.PushAsync("create_edge", new JsonObject { ["from_node_id"] = node.Id, ["to_node_id"] = edge.NodeId, ["output_nr"] = edge.OutputNr });
        }
    }

    /// <summary>Python's binding of positional arguments, then keywords; what is left over goes to **completion_args where there is one.</summary>
    private static (Dictionary<string, JsonNode?> Bound, JsonObject CompletionArgs) Bind(string name, Signature signature, JsonArray args, JsonObject kwargs)
    {
        var parameters = signature.Parameters;
        if (args.Count > parameters.Count)
        {
            throw RpcException.InvalidParams(
                $"{name}() takes {parameters.Count} positional arguments but {args.Count} were given.", "args", "invalid_arguments");
        }

        var bound = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            bound[parameters[i].Name] = args[i]?.DeepClone();
        }

        var completionArgs = new JsonObject();
        foreach (var (key, value) in kwargs)
        {
            if (parameters.Any(p => p.Name == key))
            {
                if (!bound.TryAdd(key, value?.DeepClone()))
                {
                    throw RpcException.InvalidParams($"{name}() got multiple values for argument '{key}'.", $"kwargs.{key}", "invalid_arguments");
                }
            }
            else if (signature.TakesCompletionArgs)
            {
                completionArgs[key] = value?.DeepClone();
            }
            else
            {
                throw RpcException.InvalidParams($"{name}() got an unexpected keyword argument '{key}'.", $"kwargs.{key}", "invalid_arguments");
            }
        }

        var missing = parameters.Where(p => p.Required && !bound.ContainsKey(p.Name)).Select(p => $"'{p.Name}'").ToList();
        return missing.Count > 0
            ? throw RpcException.InvalidParams(
                $"{name}() missing {missing.Count} required argument{(missing.Count == 1 ? "" : "s")}: {string.Join(" and ", missing)}.", "args", "invalid_arguments")
            : (bound, completionArgs);
    }

    /// <summary>
    /// The project's models, pushing the model client's running usage (<c>update_model</c>) after every
    /// paid call, as the client expects; pushes are made one at a time, each with the usage read then.
    /// </summary>
    private sealed class UsageReportingModels(ILanguageModels inner, SdkCall call) : ILanguageModels, IDisposable
    {
        private readonly SemaphoreSlim _gate = new(1, 1);

        public async Task<ChatReply> ChatAsync(ChatRequest request, CancellationToken cancellationToken)
        {
            var reply = await inner.ChatAsync(request, cancellationToken);
            if (request.ModelId is { } model)
            {
                await _gate.WaitAsync(cancellationToken);
                try
                {
                    await using var db = await call.Get<IDbContextFactory<Data.AfnioDbContext>>().CreateDbContextAsync(cancellationToken);
                    await ModelMethods.PushUsageAsync(call, model, db: db);
                }
                finally
                {
                    _gate.Release();
                }
            }

            return reply;
        }

        public void Dispose() => _gate.Dispose();
    }

    /// <summary>Runs the client's own evaluation and reduction functions through <c>run_callable</c>, one round trip each.</summary>
    private sealed class SdkCallables(SdkCall call) : IClientCallables
    {
        public async ValueTask<JsonElement> CallAsync(string callableId, IReadOnlyList<JsonNode?> args, CancellationToken cancellationToken)
        {
            JsonObject reply;
            try
            {
                reply = await call.Session.Rpc.CallClientAsync("run_callable", new JsonObject
                {
                    ["callable_id"] = callableId,
                    ["args"] = new JsonArray([.. args.Select(a => a?.DeepClone())]),
                    ["kwargs"] = new JsonObject(),
                }, TimeSpan.FromSeconds(call.Session.Options.CallableTimeoutSeconds), cancellationToken);
            }
            catch (RpcClientException e)
            {
                throw AfnioException.Invalid("callable_failed", $"The client's function failed: {e.Message}");
            }

            return reply["data"] is { } data ? JsonSerializer.SerializeToElement(data) : JsonSerializer.SerializeToElement<object?>(null);
        }
    }
}
