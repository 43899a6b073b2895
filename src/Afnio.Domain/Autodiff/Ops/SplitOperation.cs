using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary>
/// <c>split(x, sep=None, maxsplit=-1)</c>: part i has role <c>"split part i of &lt;x&gt;"</c>. Backward
/// wraps every output's gradient in <c>&lt;ITEM&gt;</c> tags, in output order, and gives x the combined
/// feedback; <c>sep</c> and <c>maxsplit</c> variables take no gradient.
/// </summary>
/// <param name="limits">Bounds the number of parts.</param>
public sealed class SplitOperation(OperationLimits limits) : IOperation
{
    private sealed record Args(Guid X, Argument? Sep, Argument? MaxSplit);

    /// <inheritdoc />
    public string Name => "split";

    /// <inheritdoc />
    public string BackwardName => "SplitBackward0";

    /// <inheritdoc />
    public OpCall Bind(JsonElement arguments)
    {
        Arguments.EnsureObject(arguments, "x", "sep", "maxsplit");
        var args = new Args(Arguments.Variable(arguments, "x"),
            Arguments.VariableOrLiteral(arguments, "sep"), Arguments.VariableOrLiteral(arguments, "maxsplit"));
        List<Guid> edges = [args.X];
        edges.AddRange(new[] { args.Sep, args.MaxSplit }.OfType<Argument.Var>().Select(v => v.Id));
        return new OpCall(edges, args);
    }

    /// <inheritdoc />
    public ValueTask<ForwardResult> ForwardAsync(
        OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken)
    {
        var args = (Args)bound.Arguments;
        var x = variables[args.X];
        var parts = DataOps.Split(x.Data, Separator(args.Sep, variables), MaxSplit(args.MaxSplit, variables));
        limits.CheckOutputCount(parts.Count, "x");
        return ValueTask.FromResult(new ForwardResult(
            [.. parts.Select((data, i) => new OutputValue(data, $"split part {i} of {x.Role}"))],
            new JsonObject { ["x_role"] = x.Role }));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken)
    {
        var role = context.SavedContext["x_role"]!.GetValue<string>();
        var wrapped = new GradientValue(VariableData.Of(Feedback.Items(context.OutputGradients.Select(g => g.Text))), string.Empty);
        IReadOnlyList<GradientValue?> grads =
            [.. context.EdgeNeedsGradient.Select((needs, i) => i == 0 && needs ? Feedback.Combined(role, wrapped) : null)];
        return ValueTask.FromResult(grads);
    }

    private static string? Separator(Argument? sep, IReadOnlyDictionary<Guid, VariableSnapshot> variables)
    {
        var value = Resolve(sep, variables);
        return value switch
        {
            null => null,
            { Kind: ScalarKind.Null } => null,
            { Kind: ScalarKind.Str } s => s.AsStr,
            _ => throw AfnioException.Invalid("invalid_type", "sep must be a string, null, or a variable holding a string.", "sep"),
        };
    }

    private static int MaxSplit(Argument? maxSplit, IReadOnlyDictionary<Guid, VariableSnapshot> variables)
    {
        var value = Resolve(maxSplit, variables);
        return value switch
        {
            null => -1,
            { Kind: ScalarKind.Int } i when i.AsInt is >= -1 and <= int.MaxValue => (int)i.AsInt,
            _ => throw AfnioException.Invalid("invalid_type",
                "maxsplit must be an integer (-1 for no limit), or a variable holding one.", "maxsplit"),
        };
    }

    private static Scalar? Resolve(Argument? argument, IReadOnlyDictionary<Guid, VariableSnapshot> variables) => argument switch
    {
        null => null,
        Argument.Var v when !variables[v.Id].Data.IsList => variables[v.Id].Data.Scalar,
        Argument.Literal l when l.Value.ValueKind is not (JsonValueKind.Array or JsonValueKind.Object) => VariableData.FromJson(l.Value).Scalar,
        _ => throw AfnioException.Invalid("invalid_type", "sep and maxsplit take a single value, not a list or an object."),
    };
}
