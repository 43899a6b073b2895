using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Webhooks;
using Afnio.Worker.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Afnio.Worker.Housekeeping;

/// <summary>What one housekeeping run removed.</summary>
public sealed record HousekeepingResult(int PurgedIdempotencyRecords, int PurgedEvents);

/// <summary>
/// Purges expired idempotency records, and events older than the retention (with their deliveries and
/// attempts) once none of their deliveries is pending. Safe to run twice: a second run finds nothing to purge.
/// </summary>
public sealed partial class HousekeepingJobs(
    AfnioDbContext db, JobRecorder jobs, TimeProvider clock, IOptions<WebhookOptions> webhooks, ILogger<HousekeepingJobs> log)
    : IHousekeepingJobs
{
    public const string JobType = IHousekeepingJobs.JobType;

    public async Task RunAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var owner = JobRecorder.NewLeaseOwner();
        if (await jobs.TryClaimAsync(jobId, owner, cancellationToken) is null)
        {
            return;
        }

        try
        {
            var now = clock.GetUtcNow();
            var purged = await db.IdempotencyRecords.Where(r => r.ExpiresAt < now).ExecuteDeleteAsync(cancellationToken);
            var before = now.AddDays(-Math.Max(1, webhooks.Value.EventRetentionDays));
            var events = await db.Events.Where(e => e.CreatedAt < before
                    && !db.WebhookDeliveries.Any(d => d.EventId == e.Id && d.Status == WebhookDelivery.Pending))
                .ExecuteDeleteAsync(cancellationToken);
            await using var tx = await db.Database.BeginTransactionAsync(cancellationToken);
            await jobs.SucceedAsync(jobId, owner, new HousekeepingResult(purged, events), cancellationToken);
            await tx.CommitAsync(cancellationToken);
            LogPurged(log, jobId, purged, events);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await jobs.ReleaseAsync(jobId, owner);
            throw;
        }
        catch (Exception e)
        {
            await jobs.FailAsync(jobId, owner, "housekeeping_failed", e.Message);
            throw;
        }
    }

    public async Task RunScheduledAsync(CancellationToken cancellationToken)
    {
        var job = await JobScheduling.AddAsync(db, null, JobType, null, clock.GetUtcNow(), cancellationToken);
        await RunAsync(job.Id, cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Housekeeping {JobId} purged {Count} expired idempotency records and {Events} old events")]
    private static partial void LogPurged(ILogger logger, Guid jobId, int count, int events);
}
