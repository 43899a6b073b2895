using Afnio.Domain.Common;

namespace Afnio.Domain.Autodiff;

/// <summary>What applying a function produced: the outputs and, when it records graph, the new nodes.</summary>
/// <param name="Outputs">Output values, in output_nr order.</param>
/// <param name="RequiresGrad">Whether the outputs require grad (and so have <see cref="Node"/> as grad_fn).</param>
/// <param name="Node">The backward node, or null when nothing is recorded.</param>
/// <param name="NewAccumulateNodes">AccumulateGrad nodes created for leaves that had none yet.</param>
public sealed record AppliedFunction(
    IReadOnlyList<OutputValue> Outputs, bool RequiresGrad, GraphNode? Node, IReadOnlyList<GraphNode> NewAccumulateNodes);

/// <summary><c>Function.apply</c>: runs an operation forward and records its node by the reference's edge rules.</summary>
public static class FunctionApplier
{
    /// <summary>
    /// Runs <paramref name="operation"/> forward. With grad enabled and any input requiring grad, the
    /// outputs get one shared node whose edges follow the argument order: a leaf that requires grad
    /// leads to its AccumulateGrad node (made once per leaf), a non-leaf to its grad_fn at its
    /// output_nr, anything else to <c>(null, 0)</c>.
    /// </summary>
    /// <param name="operation">The operation.</param>
    /// <param name="bound">Its bound arguments.</param>
    /// <param name="variables">Every variable the call names.</param>
    /// <param name="gradEnabled">False is afnio's <c>no_grad</c>: leaf outputs, no graph.</param>
    /// <param name="accumulateNodeOf">The existing AccumulateGrad node of a leaf, if it has one.</param>
    /// <param name="cancellationToken">Cancels the forward pass.</param>
    public static async Task<AppliedFunction> ApplyAsync(
        IOperation operation,
        OpCall bound,
        IReadOnlyDictionary<Guid, VariableSnapshot> variables,
        bool gradEnabled,
        Func<Guid, Guid?> accumulateNodeOf,
        CancellationToken cancellationToken)
    {
        var forward = await operation.ForwardAsync(bound, variables, cancellationToken);
        var requiresGrad = gradEnabled && bound.Variables.Any(id => variables[id].RequiresGrad);
        if (!requiresGrad)
        {
            return new AppliedFunction(forward.Outputs, false, null, []);
        }

        var created = new Dictionary<Guid, GraphNode>();
        var edges = bound.Variables.Select(id =>
        {
            var input = variables[id];
            if (input.RequiresGrad && input.IsLeaf)
            {
                var accumulate = accumulateNodeOf(id) ?? (created.TryGetValue(id, out var made) ? made.Id : (Guid?)null);
                if (accumulate is null)
                {
                    var node = new GraphNode(PrefixedId.NewGuid(), GraphNode.AccumulateGradName, [], null, false, id);
                    created[id] = node;
                    accumulate = node.Id;
                }

                return new GraphEdge(accumulate, 0);
            }

            return input.RequiresGrad ? new GraphEdge(input.GradFnId, input.OutputNr) : new GraphEdge(null, 0);
        }).ToList();

        // Backward gathers one gradient per output, "" for outputs that received none.
        forward.SavedContext["output_count"] = forward.Outputs.Count;
        var functionNode = new GraphNode(PrefixedId.NewGuid(), operation.BackwardName, edges, forward.SavedContext, false);
        return new AppliedFunction(forward.Outputs, true, functionNode, [.. created.Values]);
    }
}
