using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Afnio.Api.Optimizers;

/// <summary>A custom optimizer message: a chat role and the variables whose texts, joined by a newline, make its content.</summary>
public sealed record OptimizerMessage
{
    /// <summary>The chat role: <c>system</c>, <c>user</c>, <c>assistant</c>, …</summary>
    public string? Role { get; init; }

    /// <summary>Variable ids (<c>var_…</c>).</summary>
    public IReadOnlyList<string>? Content { get; init; }
}

/// <summary>The TGD settings a request may give; what it leaves out comes from the optimizer's defaults.</summary>
public record OptimizerSettingsRequest
{
    /// <summary>The optimizer model client (<c>mdl_…</c>). Required in the defaults.</summary>
    public string? ModelId { get; init; }

    /// <summary>
    /// Custom messages replacing the built-in TGD prompts. Their <c>{name}</c> placeholders are filled from
    /// <c>inputs</c> and from the reserved names <c>variable_role</c>, <c>variable_value</c>, <c>feedback</c>,
    /// <c>past_iterations</c> and <c>constraints</c>. Messages that use no reserved name are followed by the
    /// built-in user prompt for the parameter. Leave out (or null) for the built-in prompts.
    /// </summary>
    public IReadOnlyList<OptimizerMessage>? Messages { get; init; }

    /// <summary>Placeholder values of custom messages: text, or a variable id (<c>var_…</c>) read at each step.</summary>
    public JsonElement Inputs { get; init; }

    /// <summary>Rules every new value must respect: text, or variable ids read at each step.</summary>
    public IReadOnlyList<string>? Constraints { get; init; }

    /// <summary>How many past iterations (value and feedback) each parameter keeps and shows the optimizer model; 0 keeps none.</summary>
    public int? Momentum { get; init; }

    /// <summary>Provider arguments of every optimizer call (e.g. <c>{"model": "gpt-4.1", "temperature": 0}</c>).</summary>
    public JsonElement CompletionArgs { get; init; }
}

/// <summary>A parameter group: parameters and the settings that differ from the defaults.</summary>
public sealed record ParamGroupRequest : OptimizerSettingsRequest
{
    /// <summary>Parameter ids (<c>var_…</c>): leaf variables created with <c>is_parameter: true</c>.</summary>
    public IReadOnlyList<string>? Params { get; init; }
}

/// <summary>Creates an optimizer, as afnio's <c>TGD(params, model_client, …)</c>.</summary>
public sealed record CreateOptimizerRequest : OptimizerSettingsRequest
{
    /// <summary>Only <c>tgd</c> (Textual Gradient Descent).</summary>
    public string? Type { get; init; }

    /// <summary>The parameters, in one group. Give either this or <c>param_groups</c>.</summary>
    public IReadOnlyList<string>? Params { get; init; }

    /// <summary>Parameter groups with their own settings.</summary>
    public IReadOnlyList<ParamGroupRequest>? ParamGroups { get; init; }
}

/// <summary>TGD settings, as stored and applied.</summary>
public record OptimizerSettings(
    string ModelId,
    IReadOnlyList<OptimizerMessageResponse>? Messages,
    JsonObject Inputs,
    IReadOnlyList<string> Constraints,
    int Momentum,
    JsonObject CompletionArgs);

public sealed record OptimizerMessageResponse(string Role, IReadOnlyList<string> Content);

/// <summary>A parameter group with every setting filled in.</summary>
public sealed record ParamGroupResponse(
    [property: JsonPropertyOrder(-1)] IReadOnlyList<string> Params,
    string ModelId,
    IReadOnlyList<OptimizerMessageResponse>? Messages,
    JsonObject Inputs,
    IReadOnlyList<string> Constraints,
    int Momentum,
    JsonObject CompletionArgs);

/// <summary>One past iteration: a variable holding the value before a step, and the gradients it had then.</summary>
public sealed record MomentumEntryResponse(string SnapshotId, IReadOnlyList<string> GradientIds);

/// <summary>A parameter's state: its momentum window, oldest first.</summary>
public sealed record ParamStateResponse(string ParamId, IReadOnlyList<MomentumEntryResponse> MomentumBuffer);

/// <summary>An optimizer: defaults, parameter groups and the state of every parameter stepped so far.</summary>
public sealed record OptimizerResponse(
    [property: JsonPropertyOrder(-2)] string Id,
    string Type,
    OptimizerSettings Defaults,
    IReadOnlyList<ParamGroupResponse> ParamGroups,
    IReadOnlyList<ParamStateResponse> State,
    long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "optimizer";
}

/// <summary>What <c>clear_grad</c> did.</summary>
public sealed record ClearGradResponse(string Message, int Parameters, int GradientsRemoved)
{
    [JsonPropertyOrder(-1)]
    public string Object => "optimizer.clear_grad";
}

/// <summary>A parameter's state in a state dict, keyed by the parameter's index.</summary>
public sealed record StateDictParamState
{
    /// <summary>The momentum window, oldest first.</summary>
    public IReadOnlyList<StateDictMomentumEntry>? MomentumBuffer { get; init; }
}

/// <summary>One past iteration in a state dict.</summary>
public sealed record StateDictMomentumEntry
{
    /// <summary>A variable holding the value before that step (<c>var_…</c>).</summary>
    public string? SnapshotId { get; init; }

    /// <summary>The gradients the parameter had at that step (<c>var_…</c>).</summary>
    public IReadOnlyList<string>? GradientIds { get; init; }
}

/// <summary>A parameter group in a state dict: settings, and parameters as indices numbered across groups.</summary>
public sealed record StateDictGroup : OptimizerSettingsRequest
{
    /// <summary>Indices of the group's parameters, numbered consecutively across groups.</summary>
    public IReadOnlyList<int>? Params { get; init; }
}

/// <summary>
/// An optimizer's state dict, as PyTorch and afnio shape it: <c>state</c> keyed by parameter index,
/// <c>param_groups</c> with parameter indices. Load it with <c>PUT …/state_dict</c>.
/// </summary>
public sealed record StateDictRequest
{
    /// <summary>Ignored: present so a state dict read with <c>GET</c> loads as it is.</summary>
    public string? Object { get; init; }

    /// <summary>Ignored: the optimizer the state dict was read from, which may be another one.</summary>
    public string? OptimizerId { get; init; }

    public IReadOnlyDictionary<string, StateDictParamState>? State { get; init; }

    public IReadOnlyList<StateDictGroup>? ParamGroups { get; init; }
}

/// <summary>A group of a state dict as returned.</summary>
public sealed record StateDictGroupResponse(
    [property: JsonPropertyOrder(-1)] IReadOnlyList<int> Params,
    string ModelId,
    IReadOnlyList<OptimizerMessageResponse>? Messages,
    JsonObject Inputs,
    IReadOnlyList<string> Constraints,
    int Momentum,
    JsonObject CompletionArgs);

/// <summary>A state dict as returned.</summary>
public sealed record StateDictResponse(
    [property: JsonPropertyOrder(-2)] string OptimizerId,
    IReadOnlyDictionary<string, ParamStateDict> State,
    IReadOnlyList<StateDictGroupResponse> ParamGroups)
{
    [JsonPropertyOrder(-1)]
    public string Object => "optimizer.state_dict";
}

public sealed record ParamStateDict(IReadOnlyList<MomentumEntryResponse> MomentumBuffer);
