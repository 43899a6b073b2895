using System.Text.Json;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary><c>sum(x)</c> over a list of variables: role <c>"&lt;a&gt; and &lt;b&gt; and …"</c>.</summary>
public sealed class SumOperation : IOperation
{
    /// <inheritdoc />
    public string Name => "sum";

    /// <inheritdoc />
    public string BackwardName => "SumBackward0";

    /// <inheritdoc />
    public OpCall Bind(JsonElement arguments)
    {
        Arguments.EnsureObject(arguments, "x");
        var x = Arguments.VariableList(arguments, "x");
        return new OpCall(x, x);
    }

    /// <inheritdoc />
    public ValueTask<ForwardResult> ForwardAsync(
        OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken)
    {
        var inputs = bound.Variables.Select(id => variables[id]).ToList();
        return ValueTask.FromResult(new ForwardResult(
            [new OutputValue(DataOps.Sum([.. inputs.Select(v => v.Data)]), string.Join(" and ", inputs.Select(v => v.Role)))],
            InputRoles.Save(inputs.Select(v => v.Role))));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken) =>
        ValueTask.FromResult(InputRoles.CombinedFeedback(context, context.OutputGradients[0]));
}
