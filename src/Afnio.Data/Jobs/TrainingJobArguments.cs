using System.Text.Json.Nodes;

namespace Afnio.Data.Jobs;

/// <summary>How a training run orders its training items each epoch.</summary>
/// <param name="Type"><c>sequential</c>, <c>random</c> (a seeded permutation per epoch) or <c>weighted</c> (with replacement).</param>
/// <param name="Weights">For <c>weighted</c>: one weight per training item, in split order (class-balancing weights are resolved by the API).</param>
/// <param name="NumSamples">For <c>weighted</c>: draws per epoch (default: the training split's size).</param>
public sealed record SamplerSettings(string Type, IReadOnlyList<double>? Weights, int? NumSamples);

/// <summary>The TGD optimizer of a training run.</summary>
/// <param name="Momentum">Past iterations each parameter keeps.</param>
/// <param name="Constraints">Rules every new value must respect.</param>
/// <param name="CompletionArgs">Arguments for the optimizer model's calls.</param>
public sealed record RunOptimizerSettings(int Momentum, IReadOnlyList<string> Constraints, JsonObject? CompletionArgs);

/// <summary>
/// A training run, resolved and checked by the API: the program version it starts from, the pinned
/// dataset version with item ids per split, the models, the loop's settings. The worker needs
/// nothing else, and later changes to the dataset or the program do not change a run.
/// </summary>
public sealed record TrainingRunConfig(
    Guid ProgramId,
    int ProgramVersion,
    Guid? FromCheckpointId,
    Guid DatasetId,
    int DatasetVersion,
    IReadOnlyList<Guid> Train,
    IReadOnlyList<Guid> Validation,
    IReadOnlyList<Guid> Test,
    IReadOnlyDictionary<string, Guid> Models,
    RunOptimizerSettings Optimizer,
    JsonObject? BackwardCompletionArgs,
    int Epochs,
    int BatchSize,
    bool DropLast,
    SamplerSettings Sampler,
    int Seed,
    decimal? MaxCostUsd,
    int ValidateEvery,
    bool RunTest,
    bool Promote,
    string SelectMetric);

/// <summary>A training run's job: fit (with validation, optional test and promotion), or a test pass over a finished run.</summary>
public sealed record TrainingJobArguments(Guid RunId)
{
    public const string FitJobType = "training_run";
    public const string TestJobType = "run_test";

    /// <summary>Only one job of a run works at a time.</summary>
    public static string LockKeyFor(Guid runId) => $"run:{runId:N}";
}

/// <summary>
/// Training runs. Hangfire persists calls to this interface by method name and argument values:
/// renaming a method or changing its parameters breaks jobs already in the queue.
/// </summary>
public interface ITrainingJobs
{
    /// <summary>Runs or resumes a run's fit job; a no-op when it has finished or another delivery holds it.</summary>
    Task FitAsync(Guid jobId, CancellationToken cancellationToken);

    /// <summary>Runs or resumes a run's test pass.</summary>
    Task TestAsync(Guid jobId, CancellationToken cancellationToken);
}
