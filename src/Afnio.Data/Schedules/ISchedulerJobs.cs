namespace Afnio.Data.Schedules;

/// <summary>
/// Schedule firings. Hangfire persists calls to this interface by method name and argument values:
/// renaming a method or changing its parameters breaks recurring jobs already stored.
/// </summary>
public interface ISchedulerJobs
{
    /// <summary>The Hangfire queue of firings, served by the API processes, which own the run-creation path.</summary>
    const string Queue = "schedules";

    /// <summary>The recurring job id mirroring a schedule.</summary>
    static string RecurringJobId(Guid scheduleId) => $"schedule:{scheduleId:N}";

    /// <summary>Fires schedule <paramref name="scheduleId"/> for its latest planned time that has not been handled; a no-op otherwise.</summary>
    Task FireAsync(Guid scheduleId, CancellationToken cancellationToken);
}
