using System.Text.Json;
using System.Text.Json.Serialization;
using Afnio.Domain.Variables;

namespace Afnio.Api.Variables;

/// <summary>Creates a variable (a leaf of the graph).</summary>
public sealed record CreateVariableRequest
{
    /// <summary>
    /// A string, integer, float, boolean or null, or a list of only strings or only numbers
    /// (a list mixing ints and floats becomes all floats). Defaults to "".
    /// </summary>
    public JsonElement Data { get; init; }

    /// <summary>What the variable is, in words; used to write feedback and prompts. Defaults to "".</summary>
    public string? Role { get; init; }

    /// <summary>Whether backward passes compute gradients for it. Defaults to true for parameters, false otherwise.</summary>
    public bool? RequiresGrad { get; init; }

    /// <summary>True for a Parameter: what optimizers update.</summary>
    public bool IsParameter { get; init; }
}

/// <summary>Changes some fields of a variable; fields left out stay as they are.</summary>
public sealed record UpdateVariableRequest
{
    /// <summary>New data, under the same rules as on creation.</summary>
    public JsonElement Data { get; init; }

    /// <summary>New role.</summary>
    public string? Role { get; init; }

    /// <summary>New requires_grad; <c>is_leaf</c> follows.</summary>
    public bool? RequiresGrad { get; init; }
}

/// <summary>Appends one gradient to a variable's gradient list.</summary>
/// <param name="VariableId">The gradient: a variable of the same project.</param>
public sealed record AppendGradRequest(string VariableId);

/// <summary>Copies data, role and requires_grad from another variable, in place.</summary>
/// <param name="SourceId">The variable to copy from.</param>
public sealed record CopyVariableRequest(string SourceId);

/// <summary>Makes a new variable with the data cast element by element.</summary>
/// <param name="Dtype">int, float or str; null keeps the data as it is.</param>
public sealed record CastVariableRequest(CastType? Dtype);

public sealed record VariableResponse(
    [property: JsonPropertyOrder(-2)] string Id,
    VariableData Data,
    string Role,
    bool RequiresGrad,
    bool IsParameter,
    bool IsLeaf,
    bool RetainGrad,
    int OutputNr,
    string? GradFn,
    IReadOnlyList<string> Grad,
    long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "variable";
}

public sealed record DeletedResponse([property: JsonPropertyOrder(-2)] string Id, [property: JsonPropertyOrder(-1)] string Object, bool Deleted);
