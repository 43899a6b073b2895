using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>
/// The server-to-client methods. Each handler follows its Python counterpart statement by statement,
/// because the order of lookups decides which error (and which text) the real client sends back, and the
/// <c>except</c> clauses decide how that text is wrapped. All of them run under <c>_gate</c>.
/// </summary>
public sealed partial class SdkClient
{
    private const string GradFnWithoutGrad =
        "Cannot set `grad_fn` on a variable that does not require gradients. To enable gradient tracking for this variable, "
        + "call `.requires_grad_()` before setting `grad_fn`. Only variables with `requires_grad=True` can have a gradient "
        + "function (`grad_fn`).";

    private const string SetGradOnNonLeaf =
        "Attempted to set .grad for a non-leaf Variable without retain_grad enabled. Non-leaf Variables do not have their "
        + "gradients retained by default in autodiff. To retain gradients for this Variable, call ``.retain_grad()`` before "
        + "performing the backward pass.";

    private const string AppendGradOnNonLeaf =
        "Attempted to append to .grad for a non-leaf Variable without retain_grad enabled. Non-leaf Variables do not have "
        + "their gradients retained by default in autodiff. To retain gradients for this Variable, call ``.retain_grad()`` "
        + "before performing the backward pass.";

    private const string GetGradOnNonLeaf =
        "Attempted to access .grad for a non-leaf Variable without retain_grad enabled. Non-leaf Variables do not have their "
        + "gradients retained by default in autodiff. To retain gradients for this Variable, call ``.retain_grad()`` before "
        + "performing the backward pass.";

    // Variables whose grad_fn node was not known yet, keyed as the Python dict is (None included).
    private readonly Dictionary<string, List<SimVariable>> _parkedGradFn = [];

    private Func<JsonNode?, JsonNode?>? HandlerFor(string method) => method switch
    {
        "heartbeat" => OnHeartbeat,
        "create_variable" => OnCreateVariable,
        "update_variable" => OnUpdateVariable,
        "append_grad" => OnAppendGrad,
        "create_node" => OnCreateNode,
        "create_edge" => OnCreateEdge,
        "update_model" => OnUpdateModel,
        "run_callable" => OnRunCallable,
        "clear_backward" => p => OnClearPending(p, grad: true),
        "clear_step" => p => OnClearPending(p, grad: false),
        _ => null,
    };

    private static JsonObject Ok() => new() { ["message"] = "Ok" };

    private JsonNode? OnHeartbeat(JsonNode? p)
    {
        var id = Get(p, "id");
        if (PyJson.Truthy(id))
        {
            PyJson.EnsureHashable(id);
            if (PyJson.IsStr(id, out var key) && _pending.TryGetValue(key, out var call))
            {
                CheckHeartbeatGap(key, call.Method, "heartbeat");
                _heartbeats[key] = Stopwatch.GetTimestamp();
            }
            else
            {
                Note($"heartbeat for {PyJson.Repr(id)}, which is not in flight (the Python client ignores it)");
            }
        }

        return null;
    }

    private JsonObject OnCreateVariable(JsonNode? p)
    {
        try
        {
            var variableId = Sub(p, "variable_id");
            var objType = Sub(p, "obj_type");
            var data = Sub(p, "data");
            var role = Sub(p, "role");
            var requiresGrad = Sub(p, "requires_grad");
            var retainGrad = Sub(p, "_retain_grad");
            var grad = Sub(p, "_grad");
            var outputNr = Sub(p, "_output_nr");
            var gradFn = Sub(p, "_grad_fn");
            var isLeaf = Sub(p, "is_leaf");

            bool isParameter;
            if (PyJson.IsStr(objType, "__parameter__"))
            {
                isParameter = true;
            }
            else if (PyJson.IsStr(objType, "__variable__"))
            {
                isParameter = false;
            }
            else
            {
                throw new PyError("TypeError", $"Unsupported object type '{PyJson.PyStr(objType)}' for Variable or Parameter creation.");
            }

            var v = NewVariable(data, role, requiresGrad);
            v.IsParameter = isParameter;
            v.RetainGrad = PyJson.Truthy(retainGrad);
            var grads = Iter(grad).Select(Deserialize).ToList();
            v.Grad = grads.All(g => g is SimVariable)
                ? [.. grads.Cast<SimVariable>()]
                : throw new PyError("TypeError", "`.grad` expects a list of Variables for the gradient to accumulate, but got list.");
            v.OutputNr = OutputNr(outputNr);
            var node = GetNode(gradFn);
            if (v.RequiresGrad)
            {
                // Unlike a run_function record, an unknown node here is not parked: grad_fn simply stays None.
                v.GradFnNodeId = node?.Id;
                v.IsLeaf = node is null;
            }

            v.PendingGradFnId = null;
            v.IsLeaf = PyJson.Truthy(isLeaf);
            Register(v, variableId);
            return Ok();
        }
        catch (PyError e) when (e.Is("KeyError"))
        {
            throw PyError.Key("Missing key: " + e.Message);
        }
        catch (PyError e) when (e.Is("RuntimeError"))
        {
            throw new PyError("RuntimeError", "Failed to create variable: " + e.Message);
        }
    }

    private JsonObject OnUpdateVariable(JsonNode? p)
    {
        try
        {
            var variableId = Sub(p, "variable_id");
            var field = Sub(p, "field");
            var value = Sub(p, "value");
            UpdateLocalVariableField(variableId, field, value);
            return Ok();
        }
        catch (PyError e) when (e.Is("KeyError"))
        {
            throw PyError.Key("Missing key: " + e.Message);
        }
        catch (PyError e) when (e.Is("RuntimeError"))
        {
            throw new PyError("RuntimeError", $"Failed to update variable with ID {PyJson.Repr(Get(p, "variable_id"))}: {e.Message}");
        }
    }

    private void UpdateLocalVariableField(JsonNode? variableId, JsonNode? field, JsonNode? value)
    {
        var v = GetVariable(variableId);
        try
        {
            if (PyJson.IsStr(field, "_grad"))
            {
                var grads = PyJson.Truthy(value) ? Iter(value).Select(VariableFromKwargs).ToList() : [];
                var target = v ?? throw NoAttribute("grad");
                if (!(target.IsLeaf || target.RetainGrad))
                {
                    throw new PyError("RuntimeError", SetGradOnNonLeaf);
                }

                target.Grad = grads;
            }
            else if (PyJson.IsStr(field, "_output_nr"))
            {
                var target = v ?? throw NoAttribute("output_nr");
                target.OutputNr = OutputNr(value);
            }
            else if (PyJson.IsStr(field, "_grad_fn"))
            {
                var node = GetNode(value) ?? throw new PyError("ValueError",
                    $"Node with id '{PyJson.PyStr(value)}' not found in registry when updating _grad_fn for variable '{PyJson.PyStr(variableId)}'.");
                var target = v ?? throw NoAttribute("_grad_fn");
                // A direct attribute write: neither is_leaf nor requires_grad is looked at.
                target.GradFnNodeId = node.Id;
            }
            else
            {
                if (!PyJson.IsStr(field, out var name))
                {
                    throw new PyError("TypeError", $"attribute name must be string, not '{PyJson.TypeName(field)}'");
                }

                SetAttribute(v ?? throw NoAttribute(name), name, value);
            }
        }
        catch (PyError e) when (e.Is("RuntimeError"))
        {
            throw new PyError("RuntimeError", $"Failed to update field '{PyJson.PyStr(field)}' for variable with ID '{PyJson.PyStr(variableId)}'.");
        }
    }

    /// <summary><c>setattr(var, name, value)</c>: properties validate, everything else is stored as given.</summary>
    private void SetAttribute(SimVariable v, string name, JsonNode? value)
    {
        switch (name)
        {
            case "data":
            case "_data":
                v.Data = PyJson.Clone(value);
                return;
            case "grad":
                if (value is not JsonArray { Count: 0 })
                {
                    throw new PyError("TypeError", $"`.grad` expects a list of Variables for the gradient to accumulate, but got {PyJson.TypeName(value)}.");
                }

                if (!(v.IsLeaf || v.RetainGrad))
                {
                    throw new PyError("RuntimeError", SetGradOnNonLeaf);
                }

                v.Grad = [];
                return;
            case "output_nr":
                v.OutputNr = OutputNr(value);
                return;
            case "grad_fn":
                throw new PyError("AttributeError", "Direct assignment to `grad_fn` is not allowed. Use Function.apply() to construct Variables with a grad_fn.");
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
            case "_pending_grad":
                v.PendingGrad = PyJson.Truthy(value);
                break;
            case "_pending_data":
                v.PendingData = PyJson.Truthy(value);
                break;
            case "_pending_grad_fn_id":
                v.PendingGradFnId = value is null ? null : PyJson.PyStr(value);
                break;
            case "variable_id":
                Note($"update_variable changed variable_id of {v.Id} to {PyJson.Repr(value)}; the Python registry keeps the old key");
                v.Id = PyJson.PyStr(value);
                break;
            default:
                break;
        }

        v.Attributes[name] = PyJson.Clone(value);
    }

    private JsonObject OnAppendGrad(JsonNode? p)
    {
        try
        {
            var variableId = Sub(p, "variable_id");
            var gradientId = Sub(p, "gradient_id");
            var gradient = Sub(p, "gradient");
            var v = GetVariable(variableId);
            SimVariable built;
            try
            {
                built = VariableFromKwargs(gradient);
                var target = v ?? throw NoAttribute("append_grad");
                if (!(target.IsLeaf || target.RetainGrad))
                {
                    throw new PyError("RuntimeError", AppendGradOnNonLeaf);
                }

                target.Grad.Add(built);
            }
            catch (PyError e) when (e.Is("RuntimeError"))
            {
                throw new PyError("RuntimeError", $"Failed to append gradient for variable with ID '{PyJson.PyStr(variableId)}'.");
            }

            Register(built, gradientId);
            return Ok();
        }
        catch (PyError e) when (e.Is("KeyError"))
        {
            throw PyError.Key("Missing key: " + e.Message);
        }
        catch (PyError e) when (e.Is("RuntimeError"))
        {
            throw new PyError("RuntimeError", $"Failed to append gradient for variable with ID {PyJson.Repr(Get(p, "variable_id"))}: {e.Message}");
        }
    }

    private JsonObject OnCreateNode(JsonNode? p)
    {
        try
        {
            var name = Sub(p, "name");
            var nodeId = Sub(p, "node_id");
            var node = new SimNode { Name = PyJson.PyStr(name), Id = nodeId is null ? "" : PyJson.PyStr(nodeId) };
            if (PyJson.Truthy(nodeId))
            {
                PyJson.EnsureHashable(nodeId);
                if (PyJson.IsStr(nodeId, out var key))
                {
                    if (_nodes.ContainsKey(key))
                    {
                        Note($"create_node {key} registered again: the Python client replaces the node and its edges");
                    }

                    _nodes[key] = node;
                }
                else
                {
                    Note($"create_node with a non-string node_id {PyJson.Repr(nodeId)}");
                }
            }

            PyJson.EnsureHashable(nodeId);
            if (_parkedGradFn.Remove(PyJson.HashKey(nodeId), out var parked))
            {
                foreach (var v in parked)
                {
                    v.PendingGradFnId = null;
                    if (!v.RequiresGrad)
                    {
                        throw new PyError("RuntimeError", GradFnWithoutGrad);
                    }

                    v.GradFnNodeId = node.Id;
                    v.IsLeaf = false;
                }
            }

            return Ok();
        }
        catch (PyError e) when (e.Is("KeyError"))
        {
            throw PyError.Key("Missing key: " + e.Message);
        }
    }

    private JsonObject OnCreateEdge(JsonNode? p)
    {
        try
        {
            var fromId = Sub(p, "from_node_id");
            var toId = Sub(p, "to_node_id");
            var from = GetNode(fromId);
            var to = GetNode(toId);
            var outputNr = Sub(p, "output_nr");
            if (from is null)
            {
                throw new PyError("ValueError", $"from_node with id '{PyJson.PyStr(fromId)}' not found in registry.");
            }

            if (toId is not null && to is null)
            {
                throw new PyError("ValueError", $"to_node with id '{PyJson.PyStr(toId)}' not found in registry.");
            }

            if (!PyJson.TryInt(outputNr, out var n) || n < 0 || n > int.MaxValue)
            {
                Note($"create_edge output_nr {PyJson.Repr(outputNr)} is not a small non-negative int (the Python client stores it as given)");
            }

            from.NextFunctions.Add((to, PyJson.TryInt(outputNr, out var nr) && nr >= 0 && nr <= int.MaxValue ? (int)nr : 0));
            return Ok();
        }
        catch (PyError e) when (e.Is("KeyError"))
        {
            throw PyError.Key("Missing key: " + e.Message);
        }
    }

    private JsonObject OnUpdateModel(JsonNode? p)
    {
        try
        {
            var modelId = Sub(p, "model_id");
            var field = Sub(p, "field");
            var value = Sub(p, "value");
            PyJson.EnsureHashable(modelId);
            var model = PyJson.IsStr(modelId, out var key) && _models.TryGetValue(key, out var m) ? m : null;
            if (model is null)
            {
                throw new PyError("RuntimeError", $"Model with id '{PyJson.PyStr(modelId)}' not found in registry.");
            }

            if (!PyJson.IsStr(field, out var name))
            {
                throw new PyError("TypeError", $"attribute name must be string, not '{PyJson.TypeName(field)}'");
            }

            if (name == "_usage")
            {
                model.Usage = PyJson.Clone(value);
            }
            else
            {
                model.Attributes[name] = PyJson.Clone(value);
            }

            return Ok();
        }
        catch (PyError e) when (e.Is("KeyError"))
        {
            throw PyError.Key("Missing key: " + e.Message);
        }
        catch (PyError e) when (e.Is("RuntimeError"))
        {
            throw new PyError("RuntimeError", $"Failed to update model with ID {PyJson.Repr(Get(p, "model_id"))}: {e.Message}");
        }
    }

    private JsonObject OnRunCallable(JsonNode? p)
    {
        try
        {
            var callableId = Sub(p, "callable_id");
            var args = Get(p, "args", new JsonArray());
            var kwargs = Get(p, "kwargs", new JsonObject());
            PyJson.EnsureHashable(callableId);
            var fn = PyJson.IsStr(callableId, out var key) && _callables.TryGetValue(key, out var f)
                ? f
                : throw new PyError("ValueError", $"Callable with ID '{PyJson.PyStr(callableId)}' not found in registry.");
            if (args is not (JsonArray or JsonObject) && !PyJson.IsStr(args, out _))
            {
                throw new PyError("TypeError", $"function() argument after * must be an iterable, not {PyJson.TypeName(args)}");
            }

            if (kwargs is not JsonObject kw)
            {
                throw new PyError("TypeError", $"function() argument after ** must be a mapping, not {PyJson.TypeName(kwargs)}");
            }

            var positional = new JsonArray([.. Iter(args).Select(PyJson.Clone)]);
            JsonNode? result;
            try
            {
                result = fn(positional, (JsonObject)kw.DeepClone());
            }
            catch (PyError)
            {
                throw;
            }
#pragma warning disable CA1031 // Whatever the user's callable throws is what the Python client reports back.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                throw new PyError(ex is ArgumentException ? "ValueError" : "RuntimeError", ex.Message);
            }

            return new JsonObject { ["message"] = "Ok", ["data"] = PyJson.Clone(result) };
        }
        catch (PyError e) when (e.Is("KeyError"))
        {
            throw PyError.Key("Missing key: " + e.Message);
        }
        catch (PyError e) when (e.Is("ValueError"))
        {
            throw new PyError("ValueError", $"Failed to run callable with ID {PyJson.Repr(Get(p, "callable_id"))}: {e.Message}");
        }
        catch (PyError e)
        {
            throw new PyError("RuntimeError", $"Exception during execution of callable with ID {PyJson.Repr(Get(p, "callable_id"))}: {e.Message}");
        }
    }

    private JsonObject OnClearPending(JsonNode? p, bool grad)
    {
        try
        {
            var ids = Sub(p, "variable_ids");
            foreach (var id in Iter(ids))
            {
                var v = GetVariable(id) ?? throw new PyError("RuntimeError", $"Variable with id '{PyJson.PyStr(id)}' not found in registry.");
                if (grad)
                {
                    v.PendingGrad = false;
                }
                else
                {
                    v.PendingData = false;
                }
            }

            return Ok();
        }
        catch (PyError e) when (e.Is("KeyError"))
        {
            throw PyError.Key("Missing key: " + e.Message);
        }
        catch (PyError e) when (e.Is("RuntimeError"))
        {
            // Sic: the Python handler reports params.get('variable_id'), which these params never carry.
            throw new PyError("RuntimeError", $"Failed to update variable with ID {PyJson.Repr(Get(p, "variable_id"))}: {e.Message}");
        }
        catch (PyError e)
        {
            throw new PyError("RuntimeError", $"Exception during execution of backward clearing: {e.Message}");
        }
    }

    // ---- Python building blocks ------------------------------------------------------------------------------

    /// <summary><c>container[key]</c>, failing as Python does on a missing key or a non-dict.</summary>
    private static JsonNode? Sub(JsonNode? container, string key)
    {
        switch (container)
        {
            case JsonObject o:
                return o.TryGetPropertyValue(key, out var v) ? v : throw PyError.Key(key);
            case JsonArray:
                throw new PyError("TypeError", "list indices must be integers or slices, not str");
            case null:
                throw new PyError("TypeError", "'NoneType' object is not subscriptable");
        }

        throw PyJson.KindOf(container) == PyJson.Kind.Str
            ? new PyError("TypeError", "string indices must be integers, not 'str'")
            : new PyError("TypeError", $"'{PyJson.TypeName(container)}' object is not subscriptable");
    }

    /// <summary><c>container.get(key, fallback)</c>.</summary>
    private static JsonNode? Get(JsonNode? container, string key, JsonNode? fallback = null) => container is JsonObject o
        ? (o.TryGetPropertyValue(key, out var v) ? v : fallback)
        : throw new PyError("AttributeError", $"'{PyJson.TypeName(container)}' object has no attribute 'get'");

    /// <summary><c>for x in value</c>: lists by item, dicts by key, strings by character.</summary>
    private static List<JsonNode?> Iter(JsonNode? value)
    {
        switch (value)
        {
            case JsonArray a:
                return [.. a];
            case JsonObject o:
                return [.. o.Select(kv => (JsonNode?)JsonValue.Create(kv.Key))];
        }

        if (PyJson.IsStr(value, out var s))
        {
            var chars = new List<JsonNode?>();
            foreach (var rune in s.EnumerateRunes())
            {
                chars.Add(JsonValue.Create(rune.ToString()));
            }

            return chars;
        }

        throw new PyError("TypeError", $"'{PyJson.TypeName(value)}' object is not iterable");
    }

    private static PyError NoAttribute(string name) => new("AttributeError", $"'NoneType' object has no attribute '{name}'");

    private SimVariable? GetVariable(JsonNode? id)
    {
        PyJson.EnsureHashable(id);
        return PyJson.IsStr(id, out var key) && _variables.TryGetValue(key, out var v) ? v : null;
    }

    private SimNode? GetNode(JsonNode? id)
    {
        PyJson.EnsureHashable(id);
        return PyJson.IsStr(id, out var key) && _nodes.TryGetValue(key, out var n) ? n : null;
    }

    /// <summary>The registry write the Python client does by hand: only a truthy id is registered.</summary>
    private void Register(SimVariable v, JsonNode? id)
    {
        v.Id = id is null ? "" : PyJson.PyStr(id);
        if (!PyJson.Truthy(id))
        {
            return;
        }

        PyJson.EnsureHashable(id);
        if (!PyJson.IsStr(id, out var key))
        {
            Note($"variable registered under a non-string id {PyJson.Repr(id)}");
            return;
        }

        if (_variables.TryGetValue(key, out var existing) && !ReferenceEquals(existing, v))
        {
            Note($"variable {key} registered again: the Python client replaces its object, so earlier references go stale");
        }

        _variables[key] = v;
    }

    /// <summary>The Variable constructor: validates and normalizes data, a fresh leaf without grads.</summary>
    private static SimVariable NewVariable(JsonNode? data, JsonNode? role, JsonNode? requiresGrad) => new()
    {
        Data = NormalizeData(data),
        Role = RoleText(role),
        RequiresGrad = PyJson.Truthy(requiresGrad),
        IsLeaf = true,
    };

    /// <summary><c>Variable(**g)</c>: only data, role and requires_grad are accepted.</summary>
    private static SimVariable VariableFromKwargs(JsonNode? g)
    {
        if (g is not JsonObject o)
        {
            throw new PyError("TypeError", $"afnio._variable.Variable() argument after ** must be a mapping, not {PyJson.TypeName(g)}");
        }

        foreach (var (key, _) in o)
        {
            if (key is not ("data" or "role" or "requires_grad"))
            {
                throw new PyError("TypeError", $"Variable.__init__() got an unexpected keyword argument '{key}'");
            }
        }

        return NewVariable(
            o.TryGetPropertyValue("data", out var data) ? data : JsonValue.Create(""),
            o.TryGetPropertyValue("role", out var role) ? role : JsonValue.Create(""),
            o.TryGetPropertyValue("requires_grad", out var rg) ? rg : JsonValue.Create(false));
    }

    private static string RoleText(JsonNode? role) => PyJson.PyStr(role);

    /// <summary>The Variable constructor's data rule: a str/int/float (bool passes as int) or a homogeneous list; mixed numbers become floats.</summary>
    internal static JsonNode? NormalizeData(JsonNode? data)
    {
        var kind = PyJson.KindOf(data);
        if (kind is PyJson.Kind.Str or PyJson.Kind.Int or PyJson.Kind.Float or PyJson.Kind.Bool)
        {
            return PyJson.Clone(data);
        }

        if (kind != PyJson.Kind.List)
        {
            throw new PyError("TypeError", "`data` must be a single value (str, int, float) or a list/tuple of such values.");
        }

        var items = data!.AsArray();
        var allStrings = items.All(i => PyJson.KindOf(i) == PyJson.Kind.Str);
        var allNumbers = items.All(i => PyJson.KindOf(i) is PyJson.Kind.Int or PyJson.Kind.Float or PyJson.Kind.Bool);
        if (!(allStrings || allNumbers))
        {
            throw new PyError("TypeError", "When `data` is a list, it must be either all strings or all numbers (int, float).");
        }

        if (allNumbers && items.Any(i => PyJson.KindOf(i) is PyJson.Kind.Int or PyJson.Kind.Bool) && items.Any(i => PyJson.KindOf(i) == PyJson.Kind.Float))
        {
            return new JsonArray([.. items.Select(i => (JsonNode?)JsonValue.Create(PyJson.ToFloat(i)))]);
        }

        return PyJson.Clone(data);
    }

    private static int OutputNr(JsonNode? n)
    {
        if (!PyJson.TryInt(n, out var value) || value < 0)
        {
            throw new PyError("TypeError", $"`output_nr` can only be an int greater or equal to 0, but {PyJson.PyStr(n)} is of type {PyJson.TypeName(n)}");
        }

        return value > int.MaxValue ? int.MaxValue : (int)value;
    }

    /// <summary>
    /// <c>_deserialize_output</c>: refs become the registered objects (an unknown one raises ValueError),
    /// lists and dicts are walked, anything else is kept.
    /// </summary>
    private object? Deserialize(JsonNode? obj)
    {
        switch (obj)
        {
            case JsonObject o:
                if (PyJson.Truthy(Get(o, "__variable__")) && o.ContainsKey("variable_id"))
                {
                    return GetVariable(o["variable_id"])
                        ?? throw new PyError("ValueError", $"Variable with variable_id {PyJson.Repr(o["variable_id"])} not found");
                }

                if (PyJson.Truthy(Get(o, "__parameter__")) && o.ContainsKey("variable_id"))
                {
                    return GetVariable(o["variable_id"])
                        ?? throw new PyError("ValueError", $"Parameter with variable_id {PyJson.Repr(o["variable_id"])} not found");
                }

                if (PyJson.Truthy(Get(o, "__model_client__")) && o.ContainsKey("model_id"))
                {
                    var modelId = o["model_id"];
                    PyJson.EnsureHashable(modelId);
                    return PyJson.IsStr(modelId, out var key) && _models.TryGetValue(key, out var m)
                        ? m
                        : throw new PyError("ValueError", $"Model with model_id {PyJson.Repr(modelId)} not found");
                }

                return o.ToDictionary(kv => kv.Key, kv => Deserialize(kv.Value));
            case JsonArray a:
                return a.Select(Deserialize).ToList();
            default:
                return PyJson.Clone(obj);
        }
    }

    private static string Describe(IEnumerable<string> keys)
    {
        var sb = new StringBuilder();
        foreach (var key in keys)
        {
            if (sb.Length > 0)
            {
                sb.Append(", ");
            }

            sb.Append(key);
        }

        return sb.ToString();
    }
}
