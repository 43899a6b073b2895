using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>
/// What the Python SDK does on the wire for each user action, with the checks it makes on the answers.
/// Failures raise <see cref="SdkException"/> with the SDK's own message texts.
/// </summary>
public sealed partial class SdkClient
{
    private static readonly string[] RecordKeys =
        ["variable_id", "data", "role", "requires_grad", "_retain_grad", "_grad", "_output_nr", "_grad_fn", "is_leaf"];

    private static readonly string[] OpenAiConfigKeys =
        ["api_key", "organization", "project", "base_url", "websocket_base_url", "timeout", "max_retries", "default_headers", "default_query"];

    // _on_variable_change swallows these (property front-ends, bookkeeping and the __dict__ the server rejected).
    private static readonly HashSet<string> NeverSentFields =
        ["output_nr", "grad_fn", "grad", "_initialized", "_pending_grad_fn_id", "_pending_grad", "_pending_data", "__dict__"];

    private BackwardModel? _backwardModel;

    private sealed record BackwardModel(string Provider, string Model, JsonObject ClientArgs, JsonObject CompletionArgs, string ModelId);

    // ---- variables ---------------------------------------------------------------------------------------

    /// <summary><c>Variable(data, role, requires_grad)</c> or <c>Parameter(...)</c>: one create_variable call.</summary>
    public async Task<SimVariable> CreateVariableAsync(JsonNode? data, string role = "", bool requiresGrad = false, bool parameter = false, CancellationToken ct = default)
    {
        var normalized = Py(() => NormalizeData(data));
        var payload = new JsonObject
        {
            ["data"] = PyJson.Clone(normalized),
            ["role"] = role,
            ["requires_grad"] = requiresGrad,
            ["obj_type"] = parameter ? "__parameter__" : "__variable__",
        };
        var response = await CallAsync("create_variable", payload, ct);
        RaiseIfError(response);
        return Locked(() =>
        {
            var id = Get(Get(response, "result", new JsonObject()), "variable_id");
            if (!PyJson.Truthy(id))
            {
                throw new SdkException($"Server did not return a variable_id for payload: {PyJson.Repr(payload)}, response: {PyJson.Repr(response)}");
            }

            var v = new SimVariable { Data = normalized, Role = role, RequiresGrad = requiresGrad, IsParameter = parameter, IsLeaf = true };
            Register(v, id);
            return v;
        });
    }

    /// <summary>
    /// One <c>update_variable</c> notification for <paramref name="field"/> as it goes on the wire. As in Python
    /// the attribute is set locally first, then the server's echo of variable_id, field and value is compared
    /// with Python equality.
    /// </summary>
    public async Task UpdateVariableAsync(SimVariable v, string field, JsonNode? value, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(field);
        if (NeverSentFields.Contains(field))
        {
            throw new ArgumentException($"the Python client never sends update_variable for '{field}'", nameof(field));
        }

        if (field == "_grad_fn")
        {
            throw new SdkException("Setting `grad_fn` is only allowed on the server by the autodiff engine. Do not use `_allow_grad_fn_assignment()` on the client.");
        }

        var wireField = field == "_data" ? "data" : field;
        lock (_gate)
        {
            ApplyLocally(v, wireField, value);
        }

        var payload = new JsonObject { ["variable_id"] = v.Id, ["field"] = wireField, ["value"] = PyJson.Clone(value) };
        var response = await CallAsync("update_variable", payload, ct);
        RaiseIfError(response);
        Py(() =>
        {
            var result = Sub(response, "result");
            if (!PyJson.Equal(Sub(result, "variable_id"), JsonValue.Create(v.Id))
                || !PyJson.Equal(Sub(result, "field"), JsonValue.Create(wireField))
                || !PyJson.Equal(Sub(result, "value"), value))
            {
                throw new SdkException($"Server response mismatch: (received {PyJson.Repr(result)}, but expected variable_id={PyJson.ReprString(v.Id)}, "
                    + $"field={PyJson.ReprString(wireField)}, value={PyJson.Repr(value)})");
            }

            return true;
        });
    }

    private void ApplyLocally(SimVariable v, string field, JsonNode? value)
    {
        switch (field)
        {
            case "data":
                v.Data = PyJson.Clone(value);
                break;
            case "role":
                v.Role = RoleText(value);
                break;
            case "requires_grad":
                v.RequiresGrad = PyJson.Truthy(value);
                break;
            case "is_leaf":
                v.IsLeaf = PyJson.Truthy(value);
                break;
            case "_retain_grad":
                v.RetainGrad = PyJson.Truthy(value);
                break;
            case "_output_nr" when PyJson.TryInt(value, out var n) && n >= 0 && n <= int.MaxValue:
                v.OutputNr = (int)n;
                break;
            case "_grad" when value is JsonArray refs:
                v.Grad = [.. refs.Select(r => r is JsonObject o && o["variable_id"] is { } id && PyJson.IsStr(id, out var key) && _variables.TryGetValue(key, out var g) ? g : null)
                    .OfType<SimVariable>()];
                break;
            default:
                v.Attributes[field] = PyJson.Clone(value);
                break;
        }
    }

    /// <summary><c>v.data = x</c>: the Python client notifies twice (the inner <c>_data</c> write, then <c>data</c>).</summary>
    public async Task SetDataAsync(SimVariable v, JsonNode? data, CancellationToken ct = default)
    {
        await UpdateVariableAsync(v, "data", data, ct);
        await UpdateVariableAsync(v, "data", data, ct);
    }

    /// <summary><c>v.role = r</c>.</summary>
    public Task SetRoleAsync(SimVariable v, string role, CancellationToken ct = default) => UpdateVariableAsync(v, "role", role, ct);

    /// <summary><c>v.requires_grad_(mode)</c>: requires_grad, then the recomputed is_leaf.</summary>
    public async Task SetRequiresGradAsync(SimVariable v, bool mode = true, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(v);
        await UpdateVariableAsync(v, "requires_grad", mode, ct);
        var gradFn = await GradFnAsync(v, ct);
        await UpdateVariableAsync(v, "is_leaf", !v.RequiresGrad || gradFn is null, ct);
    }

    /// <summary><c>v.retain_grad()</c>.</summary>
    public Task RetainGradAsync(SimVariable v, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(v);
        if (v.IsLeaf)
        {
            throw new SdkException("Cannot call retain_grad on a leaf variable");
        }

        return UpdateVariableAsync(v, "_retain_grad", true, ct);
    }

    /// <summary><c>v.grad = [...]</c>: sent as <c>_grad</c> with a ref per gradient.</summary>
    public Task SetGradAsync(SimVariable v, IEnumerable<SimVariable> gradients, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(gradients);
        if (!(v.IsLeaf || v.RetainGrad))
        {
            throw new SdkException(SetGradOnNonLeaf);
        }

        return UpdateVariableAsync(v, "_grad", new JsonArray([.. gradients.Select(g => (JsonNode)Ref(g))]), ct);
    }

    /// <summary><c>v.output_nr = n</c>: sent under its private name <c>_output_nr</c>.</summary>
    public Task SetOutputNrAsync(SimVariable v, int outputNr, CancellationToken ct = default)
    {
        if (outputNr < 0)
        {
            throw new SdkException($"`output_nr` can only be an int greater or equal to 0, but {outputNr} is of type int", "TypeError");
        }

        return UpdateVariableAsync(v, "_output_nr", outputNr, ct);
    }

    /// <summary><c>v.append_grad(g)</c>: the server must echo variable_id and the gradient's own id.</summary>
    public async Task AppendGradAsync(SimVariable v, SimVariable gradient, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(gradient);
        if (!(v.IsLeaf || v.RetainGrad))
        {
            throw new SdkException(AppendGradOnNonLeaf);
        }

        var serialized = Ref(gradient);
        var payload = new JsonObject { ["variable_id"] = v.Id, ["gradient"] = serialized.DeepClone() };
        var response = await CallAsync("append_grad", payload, ct);
        RaiseIfError(response);
        Py(() =>
        {
            var result = Sub(response, "result");
            if (!PyJson.Equal(Sub(result, "variable_id"), JsonValue.Create(v.Id))
                || !PyJson.Equal(Sub(result, "gradient_id"), JsonValue.Create(gradient.Id)))
            {
                // The unbalanced parenthesis is the Python client's own text.
                throw new SdkException($"Server response mismatch: (received {PyJson.Repr(result)}, but expected variable_id={PyJson.ReprString(v.Id)}, "
                    + $"gradient={PyJson.Repr(serialized)}");
            }

            return true;
        });
        lock (_gate)
        {
            v.Grad.Add(gradient);
        }
    }

    /// <summary>Reading <c>v.data</c>: blocks while an optimizer step is pending for it.</summary>
    public async Task<JsonNode?> DataAsync(SimVariable v, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(v);
        await WaitPendingAsync(v, () => v.PendingData, "_pending_data", ct);
        lock (_gate)
        {
            return PyJson.Clone(v.Data);
        }
    }

    /// <summary>Reading <c>v.grad</c>: blocks while a backward pass is pending for it; a non-leaf without retain_grad raises.</summary>
    public async Task<IReadOnlyList<SimVariable>> GradAsync(SimVariable v, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(v);
        await WaitPendingAsync(v, () => v.PendingGrad, "_pending_grad", ct);
        lock (_gate)
        {
            return v.IsLeaf || v.RetainGrad ? [.. v.Grad] : throw new SdkException(GetGradOnNonLeaf);
        }
    }

    /// <summary>Reading <c>v.grad_fn</c>: blocks until a parked node arrives with <c>create_node</c>.</summary>
    public async Task<SimNode?> GradFnAsync(SimVariable v, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(v);
        await WaitPendingAsync(v, () => v.PendingGradFnId is not null, "_pending_grad_fn_id", ct);
        lock (_gate)
        {
            return v.GradFnNodeId is { } id && _nodes.TryGetValue(id, out var node) ? node : null;
        }
    }

    private async Task WaitPendingAsync(SimVariable v, Func<bool> pending, string attribute, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        while (pending())
        {
            if (Stopwatch.GetElapsedTime(start) > _options.PendingWait)
            {
                throw new SdkException($"Timeout waiting for {attribute} to be cleared for variable_id={(v.Id.Length == 0 ? "None" : v.Id)}");
            }

            await Task.Delay(10, ct);
        }
    }

    // ---- functions and backward ---------------------------------------------------------------------------

    /// <summary><c>Function.apply</c>: one run_function; the reply's record(s) become registered variables.</summary>
    /// <param name="functionName">The Function class name, e.g. "Add".</param>
    /// <param name="args">Already serialized arguments (use <see cref="Ref"/>, <see cref="ModelRef"/>, <see cref="RegisterCallable"/>).</param>
    /// <param name="kwargs">Serialized keyword arguments.</param>
    /// <param name="gradEnabled">The caller's grad mode.</param>
    /// <param name="ct">Cancels the wait.</param>
    public async Task<IReadOnlyList<SimVariable>> RunFunctionAsync(
        string functionName, JsonArray args, JsonObject? kwargs = null, bool gradEnabled = true, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        var payload = new JsonObject
        {
            ["function_name"] = functionName,
            ["grad_enabled"] = gradEnabled,
            ["args"] = args.DeepClone(),
            ["kwargs"] = kwargs?.DeepClone() ?? new JsonObject(),
        };
        var response = await CallAsync("run_function", payload, ct);
        RaiseIfError(response);
        return Locked(() =>
        {
            var data = Get(Get(response, "result", new JsonObject()), "data");
            if (!PyJson.Truthy(data))
            {
                throw new SdkException($"Server did not return any data for Function.apply pass: payload={PyJson.Repr(payload)}, response={PyJson.Repr(response)}");
            }

            var outputs = new List<SimVariable>();
            DeserializeFunctionOutput(data, outputs);
            return (IReadOnlyList<SimVariable>)outputs;
        });
    }

    private void DeserializeFunctionOutput(JsonNode? obj, List<SimVariable> outputs)
    {
        if (obj is JsonObject record && record.ContainsKey("variable_id") && record.ContainsKey("data"))
        {
            outputs.Add(FromRecord(record));
            return;
        }

        if (obj is JsonArray list)
        {
            foreach (var item in list)
            {
                if (item is JsonArray)
                {
                    Note("run_function data nests a list in a list; the Python client returns nested tuples, flattened here");
                }

                DeserializeFunctionOutput(item, outputs);
            }

            return;
        }

        Violation($"run_function data holds {PyJson.Snip(PyJson.Dumps(obj))}, which is neither a variable record nor a list of them");
        throw new PyError("TypeError", $"Deserialization only supports Variable or Tuple[Variable], but got: {PyJson.TypeRepr(obj)}");
    }

    /// <summary><c>_deserialize_fn_output</c> for one record, in the order the Python code reads it.</summary>
    private SimVariable FromRecord(JsonObject record)
    {
        var extra = record.Select(kv => kv.Key).Where(k => !RecordKeys.Contains(k)).ToList();
        var missing = RecordKeys.Where(k => !record.ContainsKey(k)).ToList();
        if (extra.Count > 0 || missing.Count > 0)
        {
            Violation($"variable record {PyJson.Snip(PyJson.Dumps(record))} must have exactly the keys {Describe(RecordKeys)}"
                + (missing.Count > 0 ? $"; missing {Describe(missing)} (the Python client raises KeyError)" : "")
                + (extra.Count > 0 ? $"; unexpected {Describe(extra)}" : ""));
        }

        if (record.TryGetPropertyValue("_grad", out var g) && g is not JsonArray { Count: 0 })
        {
            Violation($"variable record {PyJson.Snip(PyJson.Dumps(record))} has _grad {PyJson.Dumps(g)}; it must be an empty list (the Python client raises TypeError)");
        }

        var v = NewVariable(Sub(record, "data"), Sub(record, "role"), Sub(record, "requires_grad"));
        v.RetainGrad = PyJson.Truthy(Sub(record, "_retain_grad"));
        var grad = Sub(record, "_grad");
        if (grad is not JsonArray { Count: 0 })
        {
            throw new PyError("TypeError", $"`.grad` expects a list of Variables for the gradient to accumulate, but got {PyJson.TypeName(grad)}.");
        }

        v.OutputNr = OutputNr(Sub(record, "_output_nr"));
        var gradFn = Sub(record, "_grad_fn");
        var node = GetNode(gradFn);
        if (node is not null)
        {
            if (!v.RequiresGrad)
            {
                throw new PyError("RuntimeError", GradFnWithoutGrad);
            }

            v.GradFnNodeId = node.Id;
            v.IsLeaf = false;
            v.PendingGradFnId = null;
        }
        else
        {
            // Parked, like the Python client does, even for a null grad_fn (under the key None).
            v.PendingGradFnId = gradFn is null ? null : PyJson.PyStr(gradFn);
            var key = PyJson.HashKey(gradFn);
            if (!_parkedGradFn.TryGetValue(key, out var parked))
            {
                _parkedGradFn[key] = parked = [];
            }

            parked.Add(v);
        }

        v.IsLeaf = PyJson.Truthy(Sub(record, "is_leaf"));
        Register(v, record["variable_id"]);
        return v;
    }

    /// <summary><c>v.backward(gradient, retain_graph, create_graph, inputs)</c>: refuses a leaf, then sends a single ref.</summary>
    /// <returns>The ids get_backprop_ids answered.</returns>
    public Task<IReadOnlyList<string>> BackwardAsync(
        SimVariable root, SimVariable? gradient = null, bool? retainGraph = null, bool createGraph = false,
        IEnumerable<SimVariable>? inputs = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (root.IsLeaf)
        {
            throw new SdkException("Variable does not require grad or does not have a grad_fn.");
        }

        return BackwardRawAsync(
            Ref(root),
            gradient is null ? null : Ref(gradient),
            retainGraph,
            createGraph,
            inputs is null ? null : new JsonArray([.. inputs.Select(i => (JsonNode)Ref(i))]),
            ct);
    }

    /// <summary><c>afnio.autodiff.backward([roots], [grads], ...)</c>: lists of refs (None allowed among the gradients).</summary>
    public Task<IReadOnlyList<string>> BackwardAsync(
        IEnumerable<SimVariable> roots, IEnumerable<SimVariable?>? gradVariables = null, bool? retainGraph = null,
        bool createGraph = false, IEnumerable<SimVariable>? inputs = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(roots);
        return BackwardRawAsync(
            new JsonArray([.. roots.Select(r => (JsonNode)Ref(r))]),
            gradVariables is null ? null : new JsonArray([.. gradVariables.Select(g => g is null ? null : (JsonNode)Ref(g))]),
            retainGraph,
            createGraph,
            inputs is null ? null : new JsonArray([.. inputs.Select(i => (JsonNode)Ref(i))]),
            ct);
    }

    /// <summary>
    /// <c>afnio.autodiff.backward</c> with pre-serialized arguments: get_backprop_ids marks the pending
    /// gradients, run_backward must answer exactly "Backward pass executed successfully.", and any failure
    /// clears the pending flags again.
    /// </summary>
    public async Task<IReadOnlyList<string>> BackwardRawAsync(
        JsonNode variables, JsonNode? gradVariables = null, bool? retainGraph = null, bool createGraph = false,
        JsonNode? inputs = null, CancellationToken ct = default)
    {
        var ids = new List<JsonNode?>();
        try
        {
            var idsPayload = new JsonObject { ["variables"] = PyJson.Clone(variables) };
            var idsResponse = await CallAsync("get_backprop_ids", idsPayload, ct);
            RaiseIfError(idsResponse);
            Locked(() =>
            {
                var returned = Get(Get(idsResponse, "result", new JsonObject()), "variable_ids", new JsonArray());
                if (PyJson.Truthy(returned))
                {
                    ids = Iter(returned);
                    foreach (var id in ids)
                    {
                        if (GetVariable(id) is { } v)
                        {
                            v.PendingGrad = true;
                        }
                        else
                        {
                            Note($"get_backprop_ids returned {PyJson.Repr(id)}, which the client does not know (the Python client only logs it)");
                        }
                    }
                }

                return true;
            });

            var payload = new JsonObject
            {
                ["variables"] = PyJson.Clone(variables),
                ["grad_variables"] = PyJson.Clone(gradVariables),
                ["retain_graph"] = retainGraph,
                ["create_graph"] = createGraph,
                ["inputs"] = PyJson.Clone(inputs),
            };
            var response = await CallAsync("run_backward", payload, ct);
            RaiseIfError(response);
            var message = Py(() => Get(Get(response, "result", new JsonObject()), "message"));
            if (!PyJson.IsStr(message, "Backward pass executed successfully."))
            {
                throw new SdkException($"Server did not return any data for backward pass: payload={PyJson.Repr(payload)}, response={PyJson.Repr(response)}");
            }

            return [.. ids.Select(PyJson.PyStr)];
        }
        catch
        {
            lock (_gate)
            {
                foreach (var id in ids)
                {
                    if (id is not (JsonObject or JsonArray) && GetVariable(id) is { } v)
                    {
                        v.PendingGrad = false;
                    }
                }
            }

            throw;
        }
    }

    // ---- models -------------------------------------------------------------------------------------------

    /// <summary>
    /// <c>OpenAI(...)</c> / <c>AsyncOpenAI(...)</c>: create_model with provider "openai", the config the client
    /// builds (its key order, None dropped, max_retries defaulting to 2) and zeroed usage.
    /// </summary>
    public async Task<string> CreateModelAsync(string classType, JsonObject config, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var built = BuildOpenAiConfig(classType, config);
        var payload = new JsonObject
        {
            ["class_type"] = classType,
            ["provider"] = "openai",
            ["config"] = built.DeepClone(),
            ["usage"] = InitialUsage(),
        };
        var response = await CallAsync("create_model", payload, ct);
        RaiseIfError(response);
        return Locked(() =>
        {
            var id = Get(Sub(response, "result"), "model_id");
            if (!PyJson.Truthy(id))
            {
                throw new SdkException($"Server did not return a model_id for payload: {PyJson.Repr(payload)}, response: {PyJson.Repr(response)}");
            }

            var key = PyJson.PyStr(id);
            if (_models.ContainsKey(key))
            {
                Note($"model {key} registered again: the Python client replaces it");
            }

            _models[key] = new SimModel { Id = key, ClassType = classType, Provider = "openai", Config = built, Usage = InitialUsage() };
            return key;
        });
    }

    private static JsonObject BuildOpenAiConfig(string classType, JsonObject config)
    {
        foreach (var (key, _) in config)
        {
            if (!OpenAiConfigKeys.Contains(key) && key != "http_client")
            {
                throw new SdkException($"{classType}.__init__() got an unexpected keyword argument '{key}'", "TypeError");
            }
        }

        var built = new JsonObject();
        foreach (var key in OpenAiConfigKeys)
        {
            var present = config.TryGetPropertyValue(key, out var value);
            if (key == "max_retries" && !present)
            {
                value = 2;
            }

            // api_key falls back to OPENAI_API_KEY, which the simulator does not read: a falsy key is dropped.
            if (value is null || (key == "api_key" && !PyJson.Truthy(value)))
            {
                continue;
            }

            built[key] = value.DeepClone();
        }

        return built;
    }

    private static JsonObject InitialUsage() => new()
    {
        ["completion_tokens"] = 0,
        ["prompt_tokens"] = 0,
        ["total_tokens"] = 0,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = 0, ["audio_tokens"] = 0 },
        ["completion_tokens_details"] = new JsonObject
        {
            ["reasoning_tokens"] = 0,
            ["audio_tokens"] = 0,
            ["accepted_prediction_tokens"] = 0,
            ["rejected_prediction_tokens"] = 0,
        },
        ["cost"] = new JsonObject { ["amount"] = 0.0, ["currency"] = "USD" },
    };

    /// <summary><c>set_model_singleton</c>: the server must echo model_id and completion_args.</summary>
    public async Task SetBackwardModelAsync(string modelId, string modelName, JsonObject? clientArgs, JsonObject? completionArgs, CancellationToken ct = default)
    {
        var payload = new JsonObject
        {
            ["model_id"] = modelId,
            ["model_name"] = modelName,
            ["client_args"] = PyJson.Clone(clientArgs),
            ["completion_args"] = PyJson.Clone(completionArgs),
        };
        var response = await CallAsync("set_model_singleton", payload, ct);
        RaiseIfError(response);
        Py(() =>
        {
            var result = Sub(response, "result");
            if (!PyJson.Equal(Sub(result, "model_id"), JsonValue.Create(modelId)) || !PyJson.Equal(Sub(result, "completion_args"), completionArgs))
            {
                throw new SdkException($"Server response mismatch: (received {PyJson.Repr(result)}, but expected model_id={PyJson.ReprString(modelId)}, "
                    + $"completion_args={PyJson.Repr(completionArgs)})");
            }

            return true;
        });
    }

    /// <summary>
    /// <c>set_backward_model_client(model_path, client_args, completion_args)</c>: create_model (class OpenAI)
    /// then set_model_singleton, skipped when nothing changed since the last call, as the singleton does.
    /// </summary>
    /// <returns>The backward model's id.</returns>
    public async Task<string> SetBackwardModelClientAsync(
        string modelPath = "openai/gpt-4o", JsonObject? clientArgs = null, JsonObject? completionArgs = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        var slash = modelPath.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            throw new SdkException("`model_path` must be in the format 'provider/model'", "ValueError");
        }

        var provider = modelPath[..slash];
        var model = modelPath[(slash + 1)..];
        var args = (JsonObject?)clientArgs?.DeepClone() ?? [];
        if (provider != "openai")
        {
            throw new SdkException($"Unsupported provider: {provider}.", "ValueError");
        }

        // The Python client fills api_key from OPENAI_API_KEY; the simulator has no environment, so it is None.
        if (!args.ContainsKey("api_key"))
        {
            args["api_key"] = null;
        }

        // The singleton compares the raw completion_args with its stored `completion_args or {}`, so None never matches.
        if (_backwardModel is { } current && current.Provider == provider && current.Model == model
            && PyJson.Equal(current.ClientArgs, args) && PyJson.Equal(current.CompletionArgs, completionArgs))
        {
            return current.ModelId;
        }

        var completion = (JsonObject?)completionArgs?.DeepClone() ?? [];
        var id = await CreateModelAsync("OpenAI", args, ct);
        await SetBackwardModelAsync(id, model, args, completion, ct);
        _backwardModel = new BackwardModel(provider, model, args, completion, id);
        return id;
    }

    /// <summary><c>model.clear_usage()</c>: the server pushes zeroed usage, then answers with the model_id.</summary>
    public async Task ClearModelUsageAsync(string modelId, CancellationToken ct = default)
    {
        var payload = new JsonObject { ["model_id"] = modelId };
        var response = await CallAsync("clear_model_usage", payload, ct);
        RaiseIfError(response);
        var id = Py(() => Get(Sub(response, "result"), "model_id"));
        if (!PyJson.Truthy(id))
        {
            throw new SdkException($"Server did not return a model_id for payload: {PyJson.Repr(payload)}, response: {PyJson.Repr(response)}");
        }
    }

    // ---- optimizers ---------------------------------------------------------------------------------------

    /// <summary>
    /// <c>Optimizer(params, defaults)</c>: create_optimizer. Every ref in the returned defaults, state and
    /// param_groups must resolve to a known variable or model, as <c>_deserialize_output</c> requires.
    /// </summary>
    public async Task<SimOptimizer> CreateOptimizerAsync(JsonArray paramsOrGroups, JsonObject defaults, string optimizerName = "TGD", CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(paramsOrGroups);
        ArgumentNullException.ThrowIfNull(defaults);
        var payload = new JsonObject
        {
            ["optimizer_name"] = optimizerName,
            ["params"] = paramsOrGroups.DeepClone(),
            ["defaults"] = defaults.DeepClone(),
        };
        var response = await CallAsync("create_optimizer", payload, ct);
        RaiseIfError(response);
        return Locked(() =>
        {
            var result = Get(response, "result", new JsonObject());
            var id = Get(result, "optimizer_id");
            var returnedDefaults = Get(result, "defaults");
            var state = Get(result, "state");
            var groups = Get(result, "param_groups");
            if (!PyJson.Truthy(id))
            {
                throw new SdkException($"Server did not return an optimizer_id for payload: {PyJson.Repr(payload)}, response: {PyJson.Repr(response)}");
            }

            Deserialize(returnedDefaults);
            Deserialize(state);
            Deserialize(groups);
            var optimizer = new SimOptimizer
            {
                Id = PyJson.PyStr(id),
                Name = optimizerName,
                Defaults = PyJson.Clone(returnedDefaults),
                State = PyJson.Clone(state),
                ParamGroups = groups is JsonArray list ? [.. list.Select(PyJson.Clone)] : [],
            };
            optimizer.GroupParams = [.. optimizer.ParamGroups.Select(GroupVariables)];
            _optimizers[optimizer.Id] = optimizer;
            return optimizer;
        });
    }

    /// <summary>
    /// <c>TGD(params, model_client, messages=TGD_MESSAGES, inputs, constraints, momentum, **completion_args)</c>:
    /// with the default messages the two placeholder prompt variables are created first, as TGD does.
    /// </summary>
    public async Task<SimOptimizer> CreateTgdAsync(
        IEnumerable<SimVariable> parameters, string? modelId, JsonArray? messages = null, JsonObject? inputs = null,
        JsonArray? constraints = null, int momentum = 0, JsonObject? completionArgs = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var refs = new JsonArray([.. parameters.Select(p => (JsonNode)Ref(p))]);
        if (messages is null)
        {
            var system = await CreateVariableAsync(
                "Placeholder for Textual Gradient Descent optimizer system prompt", "Textual Gradient Descent optimizer system prompt", ct: ct);
            var user = await CreateVariableAsync(
                "Placeholder for Textual Gradient Descent optimizer user prompt", "Textual Gradient Descent optimizer user prompt", ct: ct);
            messages =
            [
                new JsonObject { ["role"] = "system", ["content"] = new JsonArray(Ref(system)) },
                new JsonObject { ["role"] = "user", ["content"] = new JsonArray(Ref(user)) },
            ];
        }

        var defaults = new JsonObject
        {
            ["model_client"] = modelId is null ? null : ModelRef(modelId),
            ["messages"] = messages.DeepClone(),
            ["inputs"] = inputs is { Count: > 0 } ? inputs.DeepClone() : new JsonObject(),
            ["constraints"] = constraints is { Count: > 0 } ? constraints.DeepClone() : new JsonArray(),
            ["momentum"] = momentum,
            ["completion_args"] = completionArgs?.DeepClone() ?? new JsonObject(),
        };
        return await CreateOptimizerAsync(refs, defaults, "TGD", ct);
    }

    private List<SimVariable> GroupVariables(JsonNode? group) =>
        group is JsonObject g && g["params"] is JsonArray ps ? [.. ps.Select(Deserialize).OfType<SimVariable>()] : [];

    /// <summary><c>for group in self.param_groups: for p in group["params"]</c>, failing where Python would.</summary>
    private List<SimVariable> StepParams(SimOptimizer optimizer)
    {
        var result = new List<SimVariable>();
        foreach (var group in optimizer.ParamGroups)
        {
            foreach (var p in Iter(Sub(group, "params")))
            {
                result.Add(Deserialize(p) as SimVariable
                    ?? throw new PyError("AttributeError", $"'{PyJson.TypeName(p)}' object has no attribute '_pending_data'"));
            }
        }

        return result;
    }

    /// <summary>
    /// <c>optimizer.step()</c>: marks every param pending, run_step, waits for each momentum snapshot to be
    /// registered, resolves the returned state, then checks the message; on failure the flags are cleared.
    /// </summary>
    /// <returns>The state as returned.</returns>
    public async Task<JsonNode?> StepAsync(SimOptimizer optimizer, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var parameters = Locked(() =>
        {
            var list = StepParams(optimizer);
            foreach (var p in list)
            {
                p.PendingData = true;
            }

            return list;
        });
        var payload = new JsonObject { ["optimizer_id"] = optimizer.Id };
        try
        {
            var response = await CallAsync("run_step", payload, ct);
            RaiseIfError(response);
            var (message, state, snapshots) = Py(() =>
            {
                var result = Get(response, "result", new JsonObject());
                var state = Get(result, "state", new JsonArray());
                return (Get(result, "message"), state, SnapshotIds(state));
            });
            foreach (var id in snapshots)
            {
                await WaitForVariableAsync(id, ct);
            }

            Locked(() => DeserializeState(state));
            if (!PyJson.IsStr(message, "Optimizer step executed successfully."))
            {
                throw new SdkException($"Server did not return any data for optimization operation: payload={PyJson.Repr(payload)}, response={PyJson.Repr(response)}");
            }

            optimizer.State = PyJson.Clone(state);
            return PyJson.Clone(state);
        }
        catch
        {
            lock (_gate)
            {
                foreach (var p in parameters)
                {
                    p.PendingData = false;
                }
            }

            throw;
        }
    }

    /// <summary>TGD's <c>_extract_variable_ids_from_state</c>: the first element of each momentum_buffer pair.</summary>
    private static List<string> SnapshotIds(JsonNode? state)
    {
        var ids = new List<string>();
        foreach (var entry in Iter(state))
        {
            var buffer = Get(Get(entry, "value", new JsonObject()), "momentum_buffer", new JsonArray());
            foreach (var pair in Iter(buffer))
            {
                if (pair is JsonArray { Count: > 0 } items && items[0] is JsonObject first && first.ContainsKey("variable_id"))
                {
                    PyJson.EnsureHashable(first["variable_id"]);
                    var id = PyJson.PyStr(first["variable_id"]);
                    if (!ids.Contains(id))
                    {
                        ids.Add(id);
                    }
                }
            }
        }

        return ids;
    }

    /// <summary><c>_deserialize_state</c> plus the momentum_buffer tuple conversion that follows it.</summary>
    private bool DeserializeState(JsonNode? state)
    {
        foreach (var item in Iter(state))
        {
            var key = Deserialize(Get(item, "key"));
            var value = Deserialize(Get(item, "value"));
            if (key is Dictionary<string, object?> or List<object?>)
            {
                throw new PyError("TypeError", $"unhashable type: '{(key is List<object?> ? "list" : "dict")}'");
            }

            switch (value)
            {
                case Dictionary<string, object?> d when d.TryGetValue("momentum_buffer", out var buffer):
                    if (buffer is not (List<object?> or Dictionary<string, object?>) && !(buffer is JsonNode n && PyJson.IsStr(n, out _)))
                    {
                        throw new PyError("TypeError", $"'{PythonTypeOf(buffer)}' object is not iterable");
                    }

                    break;
                case Dictionary<string, object?> or List<object?>:
                    break;
                case JsonNode text when PyJson.IsStr(text, out _):
                    break;
                default:
                    throw new PyError("TypeError", $"argument of type '{PythonTypeOf(value)}' is not iterable");
            }
        }

        return true;
    }

    private static string PythonTypeOf(object? value) => value switch
    {
        SimVariable v => v.IsParameter ? "Parameter" : "Variable",
        SimModel m => m.ClassType,
        Dictionary<string, object?> => "dict",
        List<object?> => "list",
        JsonNode n => PyJson.TypeName(n),
        _ => "NoneType",
    };

    private async Task WaitForVariableAsync(string id, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(start) < _options.PendingWait)
        {
            if (_variables.ContainsKey(id))
            {
                return;
            }

            await Task.Delay(10, ct);
        }

        var seconds = _options.PendingWait.TotalSeconds;
        var text = seconds == Math.Floor(seconds) ? ((long)seconds).ToString(System.Globalization.CultureInfo.InvariantCulture) : PyJson.FloatRepr(seconds);
        throw new SdkException($"Variable with id {id} not registered after {text} seconds", "TimeoutError");
    }

    /// <summary><c>optimizer.clear_grad()</c>: the server's message is checked, then every param's grads are emptied locally.</summary>
    public async Task ClearGradAsync(SimOptimizer optimizer, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var payload = new JsonObject { ["optimizer_id"] = optimizer.Id };
        var response = await CallAsync("clear_grad", payload, ct);
        RaiseIfError(response);
        Py(() =>
        {
            var message = Get(Get(response, "result", new JsonObject()), "message");
            if (!PyJson.IsStr(message, "Gradients cleared successfully."))
            {
                throw new SdkException($"Server response mismatch: (received {PyJson.Repr(Sub(response, "result"))}, but expected optimizer_id={PyJson.ReprString(optimizer.Id)})");
            }

            return true;
        });

        foreach (var p in Locked(() => StepParams(optimizer)))
        {
            if ((await GradAsync(p, ct)).Count > 0)
            {
                lock (_gate)
                {
                    p.Grad.Clear();
                }
            }
        }
    }

    /// <summary><c>optimizer.add_param_group(group)</c>: sent with the optimizer's default messages; the returned group must resolve.</summary>
    public async Task<JsonNode?> AddParamGroupAsync(SimOptimizer optimizer, JsonObject paramGroup, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(paramGroup);
        var messages = Py(() => Get(optimizer.Defaults, "messages", new JsonArray()));
        var payload = new JsonObject
        {
            ["optimizer_id"] = optimizer.Id,
            ["messages"] = PyJson.Clone(messages),
            ["param_group"] = paramGroup.DeepClone(),
        };
        var response = await CallAsync("add_param_group", payload, ct);
        RaiseIfError(response);
        return Locked(() =>
        {
            var group = Get(Get(response, "result", new JsonObject()), "param_group");
            if (!PyJson.Truthy(group))
            {
                throw new SdkException($"Server did not return a param_group for payload: {PyJson.Repr(payload)}, response: {PyJson.Repr(response)}");
            }

            Deserialize(group);
            optimizer.ParamGroups.Add(PyJson.Clone(group));
            optimizer.GroupParams.Add(GroupVariables(group));
            return PyJson.Clone(group);
        });
    }

    /// <summary>
    /// The functional <c>tgd(...)</c>: run_optimizer_tgd. Every variable in the returned momentum_buffer_list is
    /// waited for and must resolve; <paramref name="momentumBufferList"/> is replaced in place, as in Python.
    /// </summary>
    /// <returns>The momentum_buffer_list as returned.</returns>
    public async Task<JsonArray> TgdAsync(
        IReadOnlyList<SimVariable> parameters, JsonArray grads, JsonArray momentumBufferList, string? modelId, JsonArray messages,
        JsonObject? inputs = null, JsonArray? constraints = null, int momentum = 0, JsonObject? completionArgs = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(momentumBufferList);
        ArgumentNullException.ThrowIfNull(messages);
        lock (_gate)
        {
            foreach (var p in parameters)
            {
                p.PendingData = true;
            }
        }

        try
        {
            var payload = new JsonObject
            {
                ["params"] = new JsonArray([.. parameters.Select(p => (JsonNode)Ref(p))]),
                ["grads"] = grads.DeepClone(),
                ["momentum_buffer_list"] = momentumBufferList.DeepClone(),
                ["model_client"] = modelId is null ? null : ModelRef(modelId),
                ["messages"] = messages.DeepClone(),
                ["inputs"] = PyJson.Clone(inputs),
                ["constraints"] = PyJson.Clone(constraints),
                ["momentum"] = momentum,
                ["completion_args"] = completionArgs?.DeepClone() ?? new JsonObject(),
            };
            var response = await CallAsync("run_optimizer_tgd", payload, ct);
            RaiseIfError(response);
            var (message, buffers) = Py(() =>
            {
                var result = Get(response, "result", new JsonObject());
                return (Get(result, "message"), Get(result, "momentum_buffer_list", new JsonArray()));
            });
            foreach (var id in AllVariableIds(buffers))
            {
                await WaitForVariableAsync(id, ct);
            }

            Locked(() =>
            {
                Deserialize(buffers);
                foreach (var buffer in Iter(buffers))
                {
                    Iter(buffer);
                }

                return true;
            });
            if (!PyJson.IsStr(message, "Functional TGD optimization step executed successfully."))
            {
                throw new SdkException($"Server did not return any data for functional TGD optimization: payload={PyJson.Repr(payload)}, response={PyJson.Repr(response)}");
            }

            momentumBufferList.Clear();
            foreach (var buffer in Iter(buffers))
            {
                momentumBufferList.Add(PyJson.Clone(buffer));
            }

            return buffers is JsonArray list ? (JsonArray)list.DeepClone() : [];
        }
        catch
        {
            lock (_gate)
            {
                foreach (var p in parameters)
                {
                    p.PendingData = false;
                }
            }

            throw;
        }
    }

    /// <summary><c>_extract_variable_ids</c>: every variable or parameter ref, at any depth, in order.</summary>
    private static List<string> AllVariableIds(JsonNode? obj)
    {
        var ids = new List<string>();
        void Walk(JsonNode? node)
        {
            switch (node)
            {
                case JsonObject o when (PyJson.Truthy(o["__variable__"]) || PyJson.Truthy(o["__parameter__"])) && o.ContainsKey("variable_id"):
                    ids.Add(PyJson.PyStr(o["variable_id"]));
                    break;
                case JsonObject o:
                    foreach (var (_, value) in o)
                    {
                        Walk(value);
                    }

                    break;
                case JsonArray a:
                    foreach (var item in a)
                    {
                        Walk(item);
                    }

                    break;
            }
        }

        Walk(obj);
        return ids;
    }

    // ---- shared -------------------------------------------------------------------------------------------

    /// <summary>
    /// <c>raise RuntimeError(response["error"]["data"].get("exception", response["error"]))</c>: a missing
    /// data raises KeyError('data') instead, exactly the crash the real client has.
    /// </summary>
    private static void RaiseIfError(JsonObject response)
    {
        if (!response.ContainsKey("error"))
        {
            return;
        }

        var error = response["error"];
        JsonNode? exception;
        try
        {
            exception = Get(Sub(error, "data"), "exception", error);
        }
        catch (PyError e)
        {
            throw new SdkException(e.Message, e.PyType) { ErrorResponse = response };
        }

        throw new SdkException(PyJson.PyStr(exception)) { ErrorResponse = response };
    }

    private static T Py<T>(Func<T> body)
    {
        try
        {
            return body();
        }
        catch (PyError e)
        {
            throw e.ToSdk();
        }
    }

    private T Locked<T>(Func<T> body)
    {
        lock (_gate)
        {
            return Py(body);
        }
    }
}
