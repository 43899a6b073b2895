namespace Afnio.Data.Jobs;

/// <summary>
/// Periodic maintenance. Hangfire persists calls to this interface by method name and argument
/// values: renaming a method or changing its parameters breaks jobs already in the queue.
/// </summary>
public interface IHousekeepingJobs
{
    /// <summary>The job type housekeeping rows carry.</summary>
    const string JobType = "housekeeping";

    /// <summary>Runs the housekeeping job row <paramref name="jobId"/>; a no-op when it already finished.</summary>
    Task RunAsync(Guid jobId, CancellationToken cancellationToken);

    /// <summary>The recurring entry point: records a new system job and runs it.</summary>
    Task RunScheduledAsync(CancellationToken cancellationToken);
}
