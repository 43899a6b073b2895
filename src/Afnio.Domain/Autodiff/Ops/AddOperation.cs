using System.Text.Json;
using System.Text.Json.Nodes;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary><c>add(x, y)</c>: role <c>"&lt;x&gt; and &lt;y&gt;"</c>; each input that requires grad gets the combined feedback.</summary>
public sealed class AddOperation : IOperation
{
    private sealed record Args(Guid X, Guid Y);

    /// <inheritdoc />
    public string Name => "add";

    /// <inheritdoc />
    public string BackwardName => "AddBackward0";

    /// <inheritdoc />
    public OpCall Bind(JsonElement arguments)
    {
        Arguments.EnsureObject(arguments, "x", "y");
        var args = new Args(Arguments.Variable(arguments, "x"), Arguments.Variable(arguments, "y"));
        return new OpCall([args.X, args.Y], args);
    }

    /// <inheritdoc />
    public ValueTask<ForwardResult> ForwardAsync(
        OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken)
    {
        var args = (Args)bound.Arguments;
        var (x, y) = (variables[args.X], variables[args.Y]);
        return ValueTask.FromResult(new ForwardResult(
            [new OutputValue(DataOps.Add(x.Data, y.Data), $"{x.Role} and {y.Role}")],
            InputRoles.Save([x.Role, y.Role])));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken) =>
        ValueTask.FromResult(InputRoles.CombinedFeedback(context, context.OutputGradients[0]));
}

/// <summary>The saved context of Add and Sum: the input roles, in edge order.</summary>
internal static class InputRoles
{
    public static JsonObject Save(IEnumerable<string> roles) => new() { ["input_roles"] = new JsonArray([.. roles.Select(r => JsonValue.Create(r))]) };

    public static IReadOnlyList<GradientValue?> CombinedFeedback(BackwardContext context, GradientValue output)
    {
        var roles = context.SavedContext["input_roles"]!.AsArray().Select(r => r!.GetValue<string>()).ToList();
        return [.. roles.Select((role, i) => context.EdgeNeedsGradient[i] ? Feedback.Combined(role, output) : null)];
    }
}
