namespace Afnio.Data.Jobs;

/// <summary>A parameter a step rewrites: its gradients when the step was asked for, and the group whose settings apply.</summary>
public sealed record StepParameter(Guid VariableId, int GroupIndex, IReadOnlyList<Guid> GradientIds);

/// <summary>
/// An optimizer step, resolved by the API when it was asked for: which parameters have gradients
/// and which ones. Gradients cleared or appended after that do not change a queued step.
/// </summary>
public sealed record OptimizerStepJobArguments(Guid OptimizerId, IReadOnlyList<StepParameter> Parameters, int ParametersWithoutGradients)
{
    public const string JobType = "optimizer_step";

    /// <summary>Only one step of an optimizer runs at a time.</summary>
    public static string LockKeyFor(Guid optimizerId) => $"optimizer:{optimizerId:N}";
}

/// <summary>
/// Optimizer steps. Hangfire persists calls to this interface by method name and argument values:
/// renaming a method or changing its parameters breaks jobs already in the queue.
/// </summary>
public interface IOptimizerJobs
{
    /// <summary>Runs or resumes the optimizer-step job <paramref name="jobId"/>; a no-op when it has finished or another delivery holds it.</summary>
    Task RunStepAsync(Guid jobId, CancellationToken cancellationToken);
}
