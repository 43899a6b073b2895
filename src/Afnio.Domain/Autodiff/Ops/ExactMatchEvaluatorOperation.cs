using System.Text.Json;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary>
/// <c>exact_match_evaluator(prediction, target, reduction="sum", reduction_fn_purpose="summation",
/// success=None)</c>: the deterministic evaluator with the catalogue's <c>exact</c> function (Python
/// <c>==</c>) and the purpose <c>exact match</c>.
/// </summary>
/// <param name="models">The backward model is reached through these.</param>
public sealed class ExactMatchEvaluatorOperation(ILanguageModels models) : IOperation
{
    /// <inheritdoc />
    public string Name => "exact_match_evaluator";

    /// <inheritdoc />
    public string BackwardName => "ExactMatchEvaluatorBackward0";

    /// <inheritdoc />
    public bool IsEvaluator => true;

    /// <inheritdoc />
    public OpCall Bind(JsonElement arguments) => Evaluators.Bind(arguments, exactMatch: true);

    /// <inheritdoc />
    public ValueTask<ForwardResult> ForwardAsync(
        OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Evaluators.Forward((EvaluatorArguments)bound.Arguments, variables));

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken) =>
        Evaluators.BackwardAsync(models, context, cancellationToken);
}
