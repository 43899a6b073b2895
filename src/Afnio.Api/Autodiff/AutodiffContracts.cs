using System.Text.Json;
using System.Text.Json.Serialization;
using Afnio.Api.Variables;

namespace Afnio.Api.Autodiff;

/// <summary>One entry of <c>next_functions</c>: where a gradient goes, or null for an input that takes none.</summary>
/// <param name="NodeId">The receiving node, or null.</param>
/// <param name="OutputNr">Which output of the receiving node the gradient is for.</param>
public sealed record NodeEdgeResponse(string? NodeId, int OutputNr);

/// <summary>A node of the backward graph.</summary>
/// <param name="Id">The node id.</param>
/// <param name="Name">E.g. AddBackward0, SplitBackward0, or AccumulateGrad for a leaf.</param>
/// <param name="NextFunctions">Edges in argument order.</param>
/// <param name="Released">True once a backward pass without retain_graph freed the saved context.</param>
/// <param name="VariableId">For AccumulateGrad: the leaf whose gradient list it appends to (null if it was deleted).</param>
/// <param name="SavedContext">What the node's backward uses (opaque, for inspection); null once released.</param>
/// <param name="CreatedAt">Unix seconds.</param>
public sealed record NodeResponse(
    [property: JsonPropertyOrder(-2)] string Id,
    string Name,
    IReadOnlyList<NodeEdgeResponse> NextFunctions,
    bool Released,
    string? VariableId,
    JsonElement? SavedContext,
    long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "node";
}

/// <summary>What a function call produced.</summary>
/// <param name="Outputs">The output variables, in output_nr order.</param>
/// <param name="Node">Their shared grad_fn node; null when nothing was recorded (grad disabled, or no input requires grad).</param>
public sealed record FunctionResponse(IReadOnlyList<VariableResponse> Outputs, NodeResponse? Node)
{
    [JsonPropertyOrder(-1)]
    public string Object => "function_result";
}

/// <summary>An edge of a graph listing: a gradient flows from <c>from_node_id</c> to <c>to_node_id</c>.</summary>
/// <param name="FromNodeId">The node that sends the gradient.</param>
/// <param name="ToNodeId">The node that receives it.</param>
/// <param name="OutputNr">Which output of the receiving node it is for.</param>
/// <param name="Position">The edge's index in the sender's next_functions.</param>
public sealed record GraphEdgeResponse(string FromNodeId, string ToNodeId, int OutputNr, int Position);

/// <summary>Every node and edge behind a variable.</summary>
/// <param name="VariableId">The variable.</param>
/// <param name="RootNodeId">Its grad_fn, or for a leaf that requires grad its AccumulateGrad node; null when there is none.</param>
/// <param name="Nodes">The nodes, root first, then in the order a walk reaches them.</param>
/// <param name="Edges">Every edge between them (edges to null are only in each node's next_functions).</param>
public sealed record GraphResponse(string VariableId, string? RootNodeId, IReadOnlyList<NodeResponse> Nodes, IReadOnlyList<GraphEdgeResponse> Edges)
{
    [JsonPropertyOrder(-1)]
    public string Object => "graph";
}

/// <summary>Starts a backward pass.</summary>
public sealed record BackwardRequest
{
    /// <summary>The roots: variables that require grad and have a grad_fn.</summary>
    public required IReadOnlyList<string> Variables { get; init; }

    /// <summary>
    /// One gradient variable per root (its data and role are the starting gradient), or null
    /// entries: a scalar or evaluator root then starts from "". List roots need one.
    /// </summary>
    public IReadOnlyList<string?>? GradVariables { get; init; }

    /// <summary>Keep the graph's saved context for another pass. Defaults to create_graph.</summary>
    public bool? RetainGraph { get; init; }

    /// <summary>Accepted for compatibility; gradients are never recorded in the graph (they have no grad_fn).</summary>
    public bool CreateGraph { get; init; }

    /// <summary>Leaves to restrict accumulation to; every entry must be a leaf.</summary>
    public IReadOnlyList<string>? Inputs { get; init; }
}
