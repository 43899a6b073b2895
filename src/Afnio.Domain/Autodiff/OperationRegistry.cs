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
    public OperationRegistry(IEnumerable<IOperation> operations, OperationLimits? limits = null)
    {
        Limits = limits ?? OperationLimits.Default;
        var list = operations.ToList();
        _byName = list.ToDictionary(o => o.Name, StringComparer.Ordinal);
        _byNodeName = list.ToDictionary(o => o.BackwardName, StringComparer.Ordinal);
    }

    /// <summary>The sizes calls of these operations may reach.</summary>
    public OperationLimits Limits { get; }

    /// <summary>The built-in operations that need no language model.</summary>
    public static OperationRegistry Basic(OperationLimits? limits = null)
    {
        limits ??= OperationLimits.Default;
        return new([new AddOperation(), new SumOperation(), new SplitOperation(limits)], limits);
    }

    /// <summary>Every built-in operation, the ones that call language models included.</summary>
    /// <param name="models">The models the calls go to, scoped to one project (and job).</param>
    /// <param name="callables">Runs the afnio client's own functions (evaluators' eval_fn, reduction_fn, success_fn); null without a client.</param>
    /// <param name="limits">The sizes a call may reach; the defaults when null.</param>
    public static OperationRegistry Standard(
        ILanguageModels models, Evaluation.IClientCallables? callables = null, OperationLimits? limits = null)
    {
        limits ??= OperationLimits.Default;
        return new(
        [
            new AddOperation(), new SumOperation(), new SplitOperation(limits),
            new ExactMatchEvaluatorOperation(models, callables),
            new DeterministicEvaluatorOperation(models, callables, limits.RegexLimits()),
            new ChatCompletionOperation(models, limits), new LmJudgeEvaluatorOperation(models, callables, limits),
        ], limits);
    }

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
