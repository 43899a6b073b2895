using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff;

/// <summary>An argument of an operation call: a variable (by id) or a plain JSON value.</summary>
public abstract record Argument
{
    /// <summary>A variable argument; it gets an edge in the graph.</summary>
    /// <param name="Id">The variable id.</param>
    public sealed record Var(Guid Id) : Argument;

    /// <summary>A plain value (string, number, …); it gets no edge.</summary>
    /// <param name="Value">The JSON value.</param>
    public sealed record Literal(JsonElement Value) : Argument;
}

/// <summary>A bound call: the variables in edge order (lists flattened in order) and the op's own arguments.</summary>
/// <param name="Variables">Every variable argument, in argument order; one edge each.</param>
/// <param name="Arguments">The op-specific arguments.</param>
public sealed record OpCall(IReadOnlyList<Guid> Variables, object Arguments);

/// <summary>One output of a forward pass.</summary>
/// <param name="Data">The output data.</param>
/// <param name="Role">The output role.</param>
public sealed record OutputValue(VariableData Data, string Role);

/// <summary>What a forward pass produced, and what its backward will need.</summary>
/// <param name="Outputs">The outputs, in output_nr order.</param>
/// <param name="SavedContext">Stored with the node; handed to backward.</param>
public sealed record ForwardResult(IReadOnlyList<OutputValue> Outputs, JsonObject SavedContext);

/// <summary>What a node's backward receives.</summary>
/// <param name="NodeId">The node being run; operations that call models name their calls after it.</param>
/// <param name="SavedContext">The context saved at forward time.</param>
/// <param name="OutputGradients">One gradient per output (merged over paths; <c>""</c> when none arrived).</param>
/// <param name="EdgeNeedsGradient">Per edge: whether the input behind it takes a gradient.</param>
public sealed record BackwardContext(
    Guid NodeId, JsonObject SavedContext, IReadOnlyList<GradientValue> OutputGradients, IReadOnlyList<bool> EdgeNeedsGradient);

/// <summary>
/// An autodiff function: parses its arguments, computes outputs, and computes input gradients from
/// output gradients. Each operation is one class; the engine knows nothing of any of them.
/// </summary>
public interface IOperation
{
    /// <summary>The API name, e.g. <c>add</c>.</summary>
    string Name { get; }

    /// <summary>The backward node name, e.g. <c>AddBackward0</c>.</summary>
    string BackwardName { get; }

    /// <summary>
    /// True for evaluators: a backward pass may start from their outputs without a gradient
    /// (an implicit <c>""</c>), even when the output is a list.
    /// </summary>
    bool IsEvaluator => false;

    /// <summary>Validates the request arguments and names the variables they use.</summary>
    OpCall Bind(JsonElement arguments);

    /// <summary>Runs the forward pass over the resolved variables.</summary>
    ValueTask<ForwardResult> ForwardAsync(OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken);

    /// <summary>One gradient per edge (null where the input takes none).</summary>
    ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken);
}
