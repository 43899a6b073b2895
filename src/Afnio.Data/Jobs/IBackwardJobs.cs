namespace Afnio.Data.Jobs;

/// <summary>
/// Backward passes. Hangfire persists calls to this interface by method name and argument values:
/// renaming a method or changing its parameters breaks jobs already in the queue.
/// </summary>
public interface IBackwardJobs
{
    /// <summary>Runs or resumes the backward job <paramref name="jobId"/>; a no-op when it has finished or another delivery holds it.</summary>
    Task RunAsync(Guid jobId, CancellationToken cancellationToken);
}
