using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Pricing;

namespace Afnio.Worker.Training;

/// <summary>Thrown when the next call could take a run past its budget.</summary>
public sealed class BudgetExhaustedException(decimal spent, decimal budget)
    : Exception($"Spent ${spent:0.######} of ${budget:0.######}; the next call could go past the budget.");

/// <summary>
/// A run's spending: what was spent before the current piece of work, what it has spent since,
/// and the dearest call so far. Before each call it refuses when that call, at the dearest price
/// seen, could take the run past <c>max_cost_usd</c>.
/// </summary>
public sealed class RunBudget(decimal? max, PriceTable prices)
{
    private readonly Lock _gate = new();
    private decimal _spent;
    private decimal _dearestCall;

    /// <summary>Spent so far.</summary>
    public decimal Spent
    {
        get
        {
            lock (_gate)
            {
                return _spent;
            }
        }
    }

    /// <summary>Starts from what the run had spent at its last checkpoint, and the dearest call the journal holds.</summary>
    public void Reset(decimal spent, decimal dearestCall)
    {
        lock (_gate)
        {
            (_spent, _dearestCall) = (spent, Math.Max(_dearestCall, dearestCall));
        }
    }

    /// <summary>True when <paramref name="estimate"/> more would go past the budget.</summary>
    public bool WouldExceed(decimal estimate)
    {
        lock (_gate)
        {
            return max is { } limit && _spent + estimate > limit;
        }
    }

    /// <summary>Refuses a call that could go past the budget.</summary>
    public void EnsureRoomForCall()
    {
        lock (_gate)
        {
            if (max is { } limit && _spent + _dearestCall > limit)
            {
                throw new BudgetExhaustedException(_spent, limit);
            }
        }
    }

    /// <summary>
    /// Counts a reply's cost. A reply the journal replays for a resumed unit counts too: the run
    /// starts from its last checkpoint's spending, which did not include that unit.
    /// </summary>
    public void Add(ChatReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var cost = prices.Cost(reply.Model, reply.Usage);
        lock (_gate)
        {
            _spent += cost;
            _dearestCall = Math.Max(_dearestCall, cost);
        }
    }
}

/// <summary>
/// The models as one piece of a run's work sees them: step keys are prefixed with where the call
/// belongs (<c>e2/b1/backward/…</c>), so a resumed batch replays its own journaled calls; calls for
/// the backward model go to the run's backward model; and every call passes the budget first.
/// </summary>
public sealed class RunModels(
    ILanguageModels inner, string prefix, Guid backwardModel, JsonObject? backwardArgs, RunBudget budget, OperationLimits limits) : ILanguageModels
{
    /// <summary>The same models for another piece of work.</summary>
    public RunModels For(string piece) => new(inner, $"{prefix}/{piece}", backwardModel, backwardArgs, budget, limits);

    /// <summary>The operations of a piece of work, calling these models within the configured limits.</summary>
    public OperationRegistry Operations(string piece) => OperationRegistry.Standard(For(piece), limits: limits);

    /// <inheritdoc />
    public async Task<ChatReply> ChatAsync(ChatRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        budget.EnsureRoomForCall();
        var routed = request with
        {
            StepKey = $"{prefix}/{request.StepKey}",
            ModelId = request.ModelId ?? backwardModel,
            CompletionArgs = request.ModelId is null ? backwardArgs?.DeepClone().AsObject() : request.CompletionArgs,
        };
        var reply = await inner.ChatAsync(routed, cancellationToken);
        budget.Add(reply);
        return reply;
    }
}

/// <summary>The key of a run's piece of work.</summary>
public static class RunStepKeys
{
    /// <summary>Validation of the production version before training.</summary>
    public const string Baseline = "baseline";

    /// <summary>The test pass.</summary>
    public const string Test = "test";

    /// <summary>Training batch <paramref name="batch"/> (0-based) of epoch <paramref name="epoch"/> (1-based).</summary>
    public static string Batch(int epoch, int batch) => $"e{epoch}/b{batch}";

    /// <summary>The end of epoch <paramref name="epoch"/>: validation and the epoch's metrics.</summary>
    public static string EpochEnd(int epoch) => $"e{epoch}/end";

    /// <summary>A guard for ids that must be known: the message names what is missing.</summary>
    public static AfnioException Missing(string what, Guid id, string prefixName) =>
        AfnioException.Conflict("run_input_missing", $"The run's {what} {PrefixedId.Format(prefixName, id)} no longer exists.");
}
