using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Sdk.Rpc;
using Afnio.Api.Variables;
using Afnio.Data.Variables;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Sdk.Methods;

/// <summary>
/// Variables over the afnio protocol (semantics §1.6): creation, the field changes the client
/// notifies, gradient appends and introspection, through the v1 handlers and the same rules.
/// </summary>
public static class VariableMethods
{
    public const string Created = "Variable created successfully.";

    /// <summary>The fields <c>update_variable</c> takes, as the client names them.</summary>
    public static IReadOnlyList<string> Fields { get; } = ["data", "role", "requires_grad", "is_leaf", "_output_nr", "_grad", "_retain_grad"];

    public static async Task<JsonNode?> CreateVariableAsync(SdkCall call)
    {
        var isParameter = (call.Optional("obj_type") as JsonValue)?.ToString() switch
        {
            null or SdkRefs.VariableTag => false,
            SdkRefs.ParameterTag => true,
            var other => throw RpcException.InvalidParams(
                $"Unsupported object type '{other}' for Variable or Parameter creation: use '__variable__' or '__parameter__'.", "obj_type", "invalid_obj_type"),
        };
        var request = new CreateVariableRequest
        {
            Data = call.Params.TryGetPropertyValue("data", out var data) ? JsonSerializer.SerializeToElement(data) : default,
            Role = call.Optional("role") is { } role ? Text(role, "role") : string.Empty,
            RequiresGrad = call.OptionalBool("requires_grad") ?? false,
            IsParameter = isParameter,
        };
        var created = (await VariablesApi.CreateVariable(request, call.Db, call.Project, call.Get<IOptions<OperationLimits>>(), call.Get<TimeProvider>(), call.Cancellation)).Value!;
        call.Session.KnownVariables.Add(SdkRefs.GuidOf(PrefixedId.Variable, created.Id));
        return new JsonObject { ["variable_id"] = created.Id, ["message"] = Created };
    }

    /// <summary>
    /// Applies one field change and echoes <c>{variable_id, field, value}</c> exactly as received: the
    /// client compares all three. Repeating a change is harmless (<c>v.data = x</c> sends it twice).
    /// </summary>
    public static async Task<JsonNode?> UpdateVariableAsync(SdkCall call)
    {
        var idNode = call.Required("variable_id");
        var id = SdkRefs.VariableId(idNode, "variable_id");
        var field = call.RequiredString("field");
        var value = call.Required("value", allowNull: true);
        var variableId = PrefixedId.Format(PrefixedId.Variable, id);
        await call.EnsureVariablesAsync([id], "variable_id");
        switch (field)
        {
            case "data":
                await VariablesApi.UpdateVariable(variableId, new UpdateVariableRequest { Data = JsonSerializer.SerializeToElement(value) },
                    call.Db, call.Project, call.Get<IOptions<OperationLimits>>(), call.Cancellation);
                break;
            case "role":
                await VariablesApi.UpdateVariable(variableId, new UpdateVariableRequest { Role = Text(value, "value") }, call.Db, call.Project, call.Get<IOptions<OperationLimits>>(), call.Cancellation);
                break;
            case "requires_grad":
                await VariablesApi.UpdateVariable(variableId, new UpdateVariableRequest { RequiresGrad = Bool(value) }, call.Db, call.Project, call.Get<IOptions<OperationLimits>>(), call.Cancellation);
                break;
            case "is_leaf":
                var variable = await VariablesApi.FindAsync(call.Db, call.Project, variableId, "variable_id", call.Cancellation);
                if (variable.IsLeaf != Bool(value))
                {
                    throw RpcException.InvalidParams(
                        $"is_leaf follows from requires_grad and grad_fn: this variable's is_leaf is {(variable.IsLeaf ? "True" : "False")}.", "value", "read_only_field");
                }

                break;
            case "_output_nr":
                var outputNr = value is JsonValue n && n.GetValueKind() == JsonValueKind.Number && n.TryGetValue<int>(out var nr) && nr >= 0
                    ? nr
                    : throw RpcException.InvalidParams($"`output_nr` can only be an int greater or equal to 0, but {value?.ToJsonString() ?? "None"} is not.", "value", "invalid_value");
                await call.Db.Variables.Where(v => v.Id == id && v.ProjectId == call.Project.ProjectId)
                    .ExecuteUpdateAsync(s => s.SetProperty(v => v.OutputNr, outputNr), call.Cancellation);
                break;
            case "_grad":
                await SetGradAsync(call, id, variableId, value);
                break;
            case "_retain_grad":
                if (Bool(value))
                {
                    await VariablesApi.RetainGrad(variableId, call.Db, call.Project, call.Cancellation);
                }
                else
                {
                    await call.Db.Variables.Where(v => v.Id == id && v.ProjectId == call.Project.ProjectId)
                        .ExecuteUpdateAsync(s => s.SetProperty(v => v.RetainGrad, false), call.Cancellation);
                }

                break;
            case "grad_fn" or "_grad_fn":
                throw RpcException.InvalidParams(
                    "Setting `grad_fn` is only allowed on the server by the autodiff engine: an operation sets it when it makes the variable.", "field", "read_only_field");
            default:
                throw RpcException.InvalidParams(
                    $"update_variable does not take the field '{field}'. It takes: {string.Join(", ", Fields)}.", "field", "unknown_field");
        }

        return new JsonObject { ["variable_id"] = idNode?.DeepClone(), ["field"] = field, ["value"] = value?.DeepClone() };
    }

    /// <summary><c>append_grad</c>: appends a gradient the client made; answers the gradient's own id.</summary>
    public static async Task<JsonNode?> AppendGradAsync(SdkCall call)
    {
        var idNode = call.Required("variable_id");
        var id = SdkRefs.VariableId(idNode, "variable_id");
        var gradient = SdkRefs.Variable(call.Required("gradient"), "gradient");
        await call.EnsureVariablesAsync([id, gradient], "variable_id");
        await VariablesApi.AppendGrad(PrefixedId.Format(PrefixedId.Variable, id), new AppendGradRequest(PrefixedId.Format(PrefixedId.Variable, gradient)),
            call.Db, call.Project, call.Cancellation);
        return new JsonObject { ["variable_id"] = idNode?.DeepClone(), ["gradient_id"] = PrefixedId.Format(PrefixedId.Variable, gradient) };
    }

    /// <summary><c>get_variable</c>: the stored state, with both the client's field names and the public ones.</summary>
    public static async Task<JsonNode?> GetVariableAsync(SdkCall call)
    {
        var id = SdkRefs.VariableId(call.Required("variable_id"), "variable_id");
        await call.EnsureVariablesAsync([id], "variable_id");
        var variable = (await VariablesApi.GetVariable(PrefixedId.Format(PrefixedId.Variable, id), call.Db, call.Project, call.Cancellation)).Value!;
        var grad = await GradRefsAsync(call, id);
        var record = SdkRefs.Record(variable, grad);
        record["obj_type"] = variable.IsParameter ? SdkRefs.ParameterTag : SdkRefs.VariableTag;
        record["output_nr"] = variable.OutputNr;
        record["grad_fn"] = variable.GradFn;
        record["grad"] = grad.DeepClone();
        return record;
    }

    /// <summary>The variable's gradient list as references, in order.</summary>
    public static async Task<JsonArray> GradRefsAsync(SdkCall call, Guid id) =>
        [.. (await call.Db.VariableGradients.AsNoTracking().Where(g => g.VariableId == id).OrderBy(g => g.Seq)
                .Join(call.Db.Variables, g => g.GradientId, v => v.Id, (g, v) => new { v.Id, v.IsParameter })
                .ToListAsync(call.Cancellation))
            .Select(g => (JsonNode)SdkRefs.VariableRef(g.Id, g.IsParameter))];

    // v.grad = [...]: the whole list replaced, under the rules of writing a gradient list.
    private static async Task SetGradAsync(SdkCall call, Guid id, string variableId, JsonNode? value)
    {
        if (value is not JsonArray list)
        {
            throw RpcException.InvalidParams($"`.grad` expects a list of Variables for the gradient to accumulate, but got {value?.GetValueKind().ToString() ?? "None"}.",
                "value", "invalid_type");
        }

        var gradients = list.Select((g, i) => SdkRefs.Variable(g, $"value[{i}]")).ToList();
        await call.EnsureVariablesAsync(gradients, "value");
        var variable = await VariablesApi.FindAsync(call.Db, call.Project, variableId, "variable_id", call.Cancellation);
        VariableRules.EnsureGradAccessible(variable.IsLeaf, variable.RetainGrad, GradAccess.Set);
        await using var tx = await call.Db.Database.BeginTransactionAsync(call.Cancellation);
        await call.Db.VariableGradients.Where(g => g.VariableId == id).ExecuteDeleteAsync(call.Cancellation);
        call.Db.VariableGradients.AddRange(gradients.Select(g => new VariableGradient { VariableId = id, GradientId = g }));
        await call.Db.SaveChangesAsync(call.Cancellation);
        await tx.CommitAsync(call.Cancellation);
    }

    private static bool Bool(JsonNode? value) =>
        value is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False
            ? v.GetValue<bool>()
            : throw RpcException.InvalidParams("'value' must be True or False.", "value", "invalid_type");

    private static string Text(JsonNode? value, string param) =>
        value is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw RpcException.InvalidParams($"'{param}' must be a string.", param, "invalid_type");
}
