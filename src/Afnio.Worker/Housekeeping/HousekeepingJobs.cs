using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Worker.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Afnio.Worker.Housekeeping;

/// <summary>What one housekeeping run removed.</summary>
public sealed record HousekeepingResult(int PurgedIdempotencyRecords);

/// <summary>Purges expired idempotency records. Safe to run twice: a second run finds nothing to purge.</summary>
public sealed partial class HousekeepingJobs(AfnioDbContext db, JobRecorder jobs, TimeProvider clock, ILogger<HousekeepingJobs> log)
    : IHousekeepingJobs
{
    public const string JobType = "housekeeping";

    public async Task RunAsync(Guid jobId, CancellationToken cancellationToken)
    {
        if (!await jobs.TryStartAsync(jobId, cancellationToken))
        {
            return;
        }

        try
        {
            var now = clock.GetUtcNow();
            var purged = await db.IdempotencyRecords.Where(r => r.ExpiresAt < now).ExecuteDeleteAsync(cancellationToken);
            await jobs.SucceedAsync(jobId, new HousekeepingResult(purged), cancellationToken);
            LogPurged(log, jobId, purged);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await jobs.FailAsync(jobId, "housekeeping_failed", e.Message);
            throw;
        }
    }

    public async Task RunScheduledAsync(CancellationToken cancellationToken)
    {
        var job = JobRecorder.NewSystemJob(JobType, clock.GetUtcNow());
        db.Jobs.Add(job);
        await db.SaveChangesAsync(cancellationToken);
        await RunAsync(job.Id, cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Housekeeping {JobId} purged {Count} expired idempotency records")]
    private static partial void LogPurged(ILogger logger, Guid jobId, int count);
}
