using Afnio.Domain.Common;

namespace Afnio.Domain.Autodiff;

/// <summary>The reference's checks on the arguments of a backward pass.</summary>
public static class BackwardRoots
{
    /// <summary>
    /// Roots must require grad and have a grad_fn. A missing gradient is <c>""</c> for evaluator
    /// roots and for scalar roots; a list root needs an explicit one.
    /// </summary>
    /// <param name="roots">The root variables, in request order.</param>
    /// <param name="gradients">One gradient per root (null entries allowed), or null for none.</param>
    /// <param name="isEvaluatorNode">Whether a node belongs to an evaluator.</param>
    public static IReadOnlyList<RootGradient> Resolve(
        IReadOnlyList<VariableSnapshot> roots, IReadOnlyList<GradientValue?>? gradients, Func<Guid, bool> isEvaluatorNode)
    {
        if (roots.Count == 0)
        {
            throw AfnioException.Invalid("invalid_backward", "variables must name at least one variable.", "variables");
        }

        if (gradients is not null && gradients.Count != roots.Count)
        {
            throw AfnioException.Invalid("invalid_backward",
                $"grad_variables must have one entry per variable: got {gradients.Count} for {roots.Count}.", "grad_variables");
        }

        return [.. roots.Select((root, i) =>
        {
            if (!root.RequiresGrad || root.GradFnId is not { } node)
            {
                throw AfnioException.Invalid("invalid_backward",
                    $"element {i} of variables does not require grad and does not have a grad_fn", "variables");
            }

            var gradient = gradients?[i]
                ?? (isEvaluatorNode(node) || !root.Data.IsList
                    ? GradientValue.Empty()
                    : throw AfnioException.Invalid("invalid_backward",
                        "grad can be implicitly created only for scalar outputs", "grad_variables"));
            return new RootGradient(root.Id, node, root.OutputNr, gradient);
        })];
    }

    /// <summary><c>inputs</c> must all be leaves; accumulation is restricted to them.</summary>
    public static IReadOnlySet<Guid>? Inputs(IReadOnlyList<VariableSnapshot>? inputs)
    {
        if (inputs is null)
        {
            return null;
        }

        if (inputs.Select((v, i) => (v, i)).FirstOrDefault(x => !x.v.IsLeaf) is { v: not null } nonLeaf)
        {
            throw AfnioException.Invalid("invalid_backward",
                $"element {nonLeaf.i} of inputs is not a leaf Variable; inputs must be leaves.", "inputs");
        }

        return inputs.Select(v => v.Id).ToHashSet();
    }
}
