using Afnio.Domain.Autodiff.Ops;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Autodiff;

/// <summary>Finds operations by API name (forward) and by node name (backward).</summary>
public sealed class OperationRegistry
{
    private readonly Dictionary<string, IOperation> _byName;
    private readonly Dictionary<string, IOperation> _byNodeName;

    /// <summary>A registry of the given operations.</summary>
    public OperationRegistry(IEnumerable<IOperation> operations)
    {
        var list = operations.ToList();
        _byName = list.ToDictionary(o => o.Name, StringComparer.Ordinal);
        _byNodeName = list.ToDictionary(o => o.BackwardName, StringComparer.Ordinal);
    }

    /// <summary>The built-in operations that need no language model.</summary>
    public static OperationRegistry Basic() => new([new AddOperation(), new SumOperation(), new SplitOperation()]);

    /// <summary>Every built-in operation, the ones that call language models included.</summary>
    /// <param name="models">The models the calls go to, scoped to one project (and job).</param>
    /// <param name="callables">Runs the afnio client's own functions (evaluators' eval_fn, reduction_fn, success_fn); null without a client.</param>
    /// <param name="regexLimits">What the deterministic evaluator's <c>regex</c> function may spend per evaluation; null for the default.</param>
    public static OperationRegistry Standard(
        ILanguageModels models, Evaluation.IClientCallables? callables = null, Evaluation.RegexLimits? regexLimits = null) => new(
    [
        new AddOperation(), new SumOperation(), new SplitOperation(),
        new ExactMatchEvaluatorOperation(models, callables),
        new DeterministicEvaluatorOperation(models, callables, regexLimits),
        new ChatCompletionOperation(models), new LmJudgeEvaluatorOperation(models, callables),
    ]);

    /// <summary>The API names, for error messages and documentation.</summary>
    public IEnumerable<string> Names => _byName.Keys;

    /// <summary>The operation called <paramref name="name"/>, or a 404-kind error.</summary>
    public IOperation Get(string name) => _byName.TryGetValue(name, out var op)
        ? op
        : throw AfnioException.NotFound("function_not_found",
            $"Unknown function: '{name}'. Available: {string.Join(", ", _byName.Keys.Order())}.", "name");

    /// <summary>True when the node belongs to an evaluator (AccumulateGrad and unknown names are not).</summary>
    public bool IsEvaluatorNode(string nodeName) => _byNodeName.TryGetValue(nodeName, out var op) && op.IsEvaluator;

    /// <summary>The operation whose backward node is named <paramref name="nodeName"/>.</summary>
    public IOperation ForNode(string nodeName) => _byNodeName.TryGetValue(nodeName, out var op)
        ? op
        : throw new InvalidOperationException($"No operation has backward node '{nodeName}'.");
}
