using System.Text.Json.Nodes;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff;

/// <summary>What an operation sees of a variable: its id, value and graph position.</summary>
/// <param name="Id">The variable id.</param>
/// <param name="Data">Its data.</param>
/// <param name="Role">Its role.</param>
/// <param name="RequiresGrad">Whether it requires grad.</param>
/// <param name="GradFnId">The node that produced it, if any.</param>
/// <param name="OutputNr">Its index among the outputs of that node.</param>
public sealed record VariableSnapshot(Guid Id, VariableData Data, string Role, bool RequiresGrad, Guid? GradFnId, int OutputNr)
{
    /// <summary><c>is_leaf</c> by the reference's rule.</summary>
    public bool IsLeaf => VariableRules.IsLeaf(RequiresGrad, GradFnId is not null);
}

/// <summary>One entry of a node's <c>next_functions</c>: the node a gradient flows to, or null, and the output index there.</summary>
/// <param name="NodeId">The receiving node; null for an input that does not require grad.</param>
/// <param name="OutputNr">Which output of the receiving node the gradient belongs to.</param>
public sealed record GraphEdge(Guid? NodeId, int OutputNr);

/// <summary>A textual gradient: the feedback text (or data) and its role.</summary>
/// <param name="Data">The gradient's data; usually a string.</param>
/// <param name="Role">Its role, e.g. <c>feedback to system prompt</c>.</param>
public sealed record GradientValue(VariableData Data, string Role)
{
    /// <summary>The identity gradient: an output that received no feedback contributes <c>""</c>.</summary>
    public static GradientValue Empty(string role = "") => new(VariableData.Empty, role);

    /// <summary>True when the data is the empty string.</summary>
    public bool IsEmpty => !Data.IsList && Data.Scalar.Kind == ScalarKind.Str && Data.Scalar.AsStr.Length == 0;

    /// <summary>The data as feedback text: a string as it is, anything else as Python prints it.</summary>
    public string Text => !Data.IsList && Data.Scalar.Kind == ScalarKind.Str ? Data.Scalar.AsStr : Data.ToString();
}

/// <summary>A node of the backward graph.</summary>
/// <param name="Id">The node id.</param>
/// <param name="Name">E.g. <c>AddBackward0</c>, or <c>AccumulateGrad</c> for a leaf.</param>
/// <param name="NextFunctions">Ordered edges, one per variable argument of the operation.</param>
/// <param name="SavedContext">What the node's backward needs; null once released (or for AccumulateGrad).</param>
/// <param name="Released">True once a pass without <c>retain_graph</c> freed the saved context.</param>
/// <param name="VariableId">For AccumulateGrad: the leaf whose gradient list it appends to.</param>
public sealed record GraphNode(
    Guid Id, string Name, IReadOnlyList<GraphEdge> NextFunctions, JsonObject? SavedContext, bool Released, Guid? VariableId = null)
{
    /// <summary>The name of the nodes that append gradients to leaves.</summary>
    public const string AccumulateGradName = "AccumulateGrad";

    /// <summary>True for the AccumulateGrad node of a leaf.</summary>
    public bool IsAccumulateGrad => Name == AccumulateGradName;
}
