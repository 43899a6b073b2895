using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Sdk.Rpc;
using Afnio.Api.Variables;
using Afnio.Domain.Common;

namespace Afnio.Api.Sdk;

/// <summary>
/// The afnio client's references: <c>{"__variable__": true, "variable_id"}</c>,
/// <c>{"__parameter__": true, "variable_id"}</c>, <c>{"__model_client__": true, "model_id"}</c> and
/// <c>{"__callable__": true, "callable_id"}</c>. The ids in them are the service's own public ids
/// (<c>var_…</c>, <c>mdl_…</c>), so what the client holds is what the REST API shows.
/// </summary>
public static class SdkRefs
{
    public const string VariableTag = "__variable__";
    public const string ParameterTag = "__parameter__";
    public const string ModelTag = "__model_client__";
    public const string CallableTag = "__callable__";

    /// <summary>The UUID of a public id the service itself made (<c>var_…</c> of a response).</summary>
    public static Guid GuidOf(string prefix, string publicId) =>
        PrefixedId.TryParse(prefix, publicId, out var id) ? id : throw new InvalidOperationException($"'{publicId}' is not a {prefix}_ id.");

    public static bool IsVariableRef(JsonNode? node) =>
        node is JsonObject o && (Flag(o, VariableTag) || Flag(o, ParameterTag)) && o.ContainsKey("variable_id");

    public static bool IsModelRef(JsonNode? node) => node is JsonObject o && Flag(o, ModelTag) && o.ContainsKey("model_id");

    public static bool IsCallableRef(JsonNode? node) => node is JsonObject o && Flag(o, CallableTag);

    /// <summary>The variable a reference names; anything else is an error naming <paramref name="param"/>.</summary>
    public static Guid Variable(JsonNode? node, string param)
    {
        if (!IsVariableRef(node))
        {
            throw RpcException.InvalidParams(
                $"'{param}' must be a variable reference {{\"{VariableTag}\": true, \"variable_id\": \"…\"}}.", param, "invalid_reference");
        }

        var id = node!["variable_id"];
        return id is JsonValue v && v.GetValueKind() == JsonValueKind.String && PrefixedId.TryParse(PrefixedId.Variable, v.GetValue<string>(), out var guid)
            ? guid
            : throw UnknownVariable(id?.ToJsonString() ?? "null", param);
    }

    /// <summary>The model client a reference names.</summary>
    public static Guid Model(JsonNode? node, string param)
    {
        if (!IsModelRef(node))
        {
            throw RpcException.InvalidParams($"'{param}' must be a model reference {{\"{ModelTag}\": true, \"model_id\": \"…\"}}.", param, "invalid_reference");
        }

        return ModelId(node!["model_id"], param);
    }

    /// <summary>A bare model id, as <c>set_model_singleton</c> and <c>clear_model_usage</c> send it.</summary>
    public static Guid ModelId(JsonNode? id, string param) =>
        id is JsonValue v && v.GetValueKind() == JsonValueKind.String && PrefixedId.TryParse(PrefixedId.Model, v.GetValue<string>(), out var guid)
            ? guid
            : throw new RpcException(RpcCodes.InvalidParams, $"Unknown model_id: {Quote(id)}", "model_not_found", param);

    /// <summary>A bare variable id, as <c>update_variable</c> and <c>append_grad</c> send it.</summary>
    public static Guid VariableId(JsonNode? id, string param) =>
        id is JsonValue v && v.GetValueKind() == JsonValueKind.String && PrefixedId.TryParse(PrefixedId.Variable, v.GetValue<string>(), out var guid)
            ? guid
            : throw UnknownVariable(Quote(id), param);

    /// <summary>A bare optimizer id.</summary>
    public static Guid OptimizerId(JsonNode? id, string param) =>
        id is JsonValue v && v.GetValueKind() == JsonValueKind.String && PrefixedId.TryParse(PrefixedId.Optimizer, v.GetValue<string>(), out var guid)
            ? guid
            : throw new RpcException(RpcCodes.InvalidParams, $"Unknown optimizer_id: {Quote(id)}", "optimizer_not_found", param);

    public static RpcException UnknownVariable(string id, string? param) =>
        new(RpcCodes.InvalidParams, $"Unknown variable_id: {(id.StartsWith('\'') ? id : $"'{id.Trim('"')}'")}", "variable_not_found", param);

    public static JsonObject VariableRef(Guid id, bool isParameter) =>
        new() { [isParameter ? ParameterTag : VariableTag] = true, ["variable_id"] = PrefixedId.Format(PrefixedId.Variable, id) };

    public static JsonObject ModelRef(Guid id) => new() { [ModelTag] = true, ["model_id"] = PrefixedId.Format(PrefixedId.Model, id) };

    /// <summary>
    /// An argument in the form the REST operations take: variable and model references become their
    /// ids, client callables stay references (only the afnio protocol can call them back), lists and
    /// objects are converted item by item.
    /// </summary>
    public static JsonNode? ToRest(JsonNode? node, string param, ICollection<Guid> variables)
    {
        switch (node)
        {
            case null:
                return null;
            case JsonObject o when IsVariableRef(o):
                var id = Variable(o, param);
                variables.Add(id);
                return PrefixedId.Format(PrefixedId.Variable, id);
            case JsonObject o when IsModelRef(o):
                return PrefixedId.Format(PrefixedId.Model, Model(o, param));
            case JsonObject o when IsCallableRef(o):
                return o.DeepClone();
            case JsonObject o:
                var converted = new JsonObject();
                foreach (var (key, value) in o)
                {
                    converted[key] = ToRest(value, $"{param}.{key}", variables);
                }

                return converted;
            case JsonArray a:
                return new JsonArray([.. a.Select((item, i) => ToRest(item, $"{param}[{i}]", variables))]);
            default:
                return node.DeepClone();
        }
    }

    /// <summary>
    /// A variable as the afnio client builds it from a reply or a push: exactly these keys; <c>_grad</c>
    /// holds references the client already has (none for a new output).
    /// </summary>
    public static JsonObject Record(VariableResponse v, JsonArray? grad = null) => new()
    {
        ["variable_id"] = v.Id,
        ["data"] = JsonSerializer.SerializeToNode(v.Data),
        ["role"] = v.Role,
        ["requires_grad"] = v.RequiresGrad,
        ["_retain_grad"] = v.RetainGrad,
        ["_grad"] = grad ?? [],
        ["_output_nr"] = v.OutputNr,
        ["_grad_fn"] = v.GradFn,
        ["is_leaf"] = v.IsLeaf,
    };

    private static bool Flag(JsonObject o, string tag) => o[tag] is JsonValue v && v.GetValueKind() == JsonValueKind.True;

    private static string Quote(JsonNode? id) =>
        id is JsonValue v && v.GetValueKind() == JsonValueKind.String ? $"'{v.GetValue<string>()}'" : id?.ToJsonString() ?? "None";
}
