namespace Afnio.Data.Runs;

/// <summary>What a run's promotion decided, and why.</summary>
/// <param name="Promoted">True when the best parameters became a new program version.</param>
/// <param name="ProgramVersion">The new version, when promoted.</param>
/// <param name="Reason">Why, in words.</param>
public sealed record PromotionOutcome(bool Promoted, int? ProgramVersion, string Reason);

/// <summary>A run's language-model usage.</summary>
/// <param name="Calls">Paid calls (journaled, succeeded), across every piece of the run.</param>
/// <param name="CostUsd">Their cost.</param>
/// <param name="Batches">Training batches committed.</param>
/// <param name="MaxCallsPerBatch">The most calls one training batch made.</param>
/// <param name="MeanCallsPerBatch">Calls per training batch on average.</param>
/// <param name="CallBoundPerBatch">The bound B + 2P + 1 (B samples per batch, P parameters).</param>
public sealed record RunUsage(int Calls, decimal CostUsd, int Batches, int MaxCallsPerBatch, double MeanCallsPerBatch, int CallBoundPerBatch);

/// <summary>How a server-driven run ended; the run keeps it and its job returns it.</summary>
/// <param name="Status"><c>completed</c> or <c>stopped_budget</c>.</param>
/// <param name="StopReason">Why the run stopped early, when it did.</param>
/// <param name="Epochs">Epochs completed.</param>
/// <param name="SelectMetric">The validation metric that picks the best checkpoint (higher is better).</param>
/// <param name="BestCheckpointId">The best validated checkpoint (the baseline when no epoch beat it).</param>
/// <param name="BestEpoch">Its epoch (0: the production version before training).</param>
/// <param name="BestScore">Its validation score.</param>
/// <param name="BaselineScore">The production version's validation score before training.</param>
/// <param name="Promotion">The promotion decision, when promotion was asked for.</param>
/// <param name="Test">Test metrics, when a test pass ran.</param>
/// <param name="Usage">Calls and cost.</param>
public sealed record RunSummary(
    string Status,
    string? StopReason,
    int Epochs,
    string SelectMetric,
    string? BestCheckpointId,
    int? BestEpoch,
    double? BestScore,
    double? BaselineScore,
    PromotionOutcome? Promotion,
    IReadOnlyDictionary<string, double>? Test,
    RunUsage Usage);
