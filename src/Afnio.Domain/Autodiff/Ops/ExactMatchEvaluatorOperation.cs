using System.Text.Json;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary>
/// <c>exact_match_evaluator(prediction, target, reduction="sum", reduction_fn_purpose="summation",
/// success=None)</c>: the deterministic evaluator with the catalogue's <c>exact</c> function (Python
/// <c>==</c>) and the purpose <c>exact match</c>.
/// </summary>
/// <param name="models">The backward model is reached through these.</param>
/// <param name="callables">Runs the client's reduction and success functions; null where there is no client (REST).</param>
public sealed class ExactMatchEvaluatorOperation(ILanguageModels models, Evaluation.IClientCallables? callables = null) : IOperation
{
    /// <inheritdoc />
    public string Name => "exact_match_evaluator";

    /// <inheritdoc />
    public string BackwardName => "ExactMatchEvaluatorBackward0";

    /// <inheritdoc />
    public bool IsEvaluator => true;

    /// <inheritdoc />
    public OpCall Bind(JsonElement arguments) => Evaluators.Bind(arguments, exactMatch: true, callables);

    /// <inheritdoc />
    public ValueTask<ForwardResult> ForwardAsync(
        OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken) =>
        Evaluators.ForwardAsync((EvaluatorArguments)bound.Arguments, variables, callables, cancellationToken);

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken) =>
        Evaluators.BackwardAsync(models, context, cancellationToken);
}
