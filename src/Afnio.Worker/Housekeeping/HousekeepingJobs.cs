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
    AfnioDbContext db, JobExecution execution, TimeProvider clock, IOptions<WebhookOptions> webhooks, ILogger<HousekeepingJobs> log)
    : IHousekeepingJobs
{
    public const string JobType = IHousekeepingJobs.JobType;

    public Task RunAsync(Guid jobId, CancellationToken cancellationToken) =>
        execution.RunAsync(jobId, "housekeeping_failed", "Housekeeping failed", PurgeAsync, null, cancellationToken);

    private async Task PurgeAsync(JobDelivery delivery, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var purged = await delivery.Db.IdempotencyRecords.Where(r => r.ExpiresAt < now).ExecuteDeleteAsync(ct);
        var before = now.AddDays(-Math.Max(1, webhooks.Value.EventRetentionDays));
        var events = await delivery.Db.Events.Where(e => e.CreatedAt < before
                && !delivery.Db.WebhookDeliveries.Any(d => d.EventId == e.Id && d.Status == WebhookDelivery.Pending))
            .ExecuteDeleteAsync(ct);
        await delivery.Recorder.SucceedAsync(delivery.Job.Id, delivery.Owner, new HousekeepingResult(purged, events), ct);
        LogPurged(log, delivery.Job.Id, purged, events);
    }

    /// <summary>The recurring entry point: records a new system job and runs it here (a dispatcher that claims it first runs it instead).</summary>
    public async Task RunScheduledAsync(CancellationToken cancellationToken)
    {
        var job = await JobScheduling.AddAsync(db, null, JobType, null, clock.GetUtcNow(), cancellationToken);
        await RunAsync(job.Id, cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Housekeeping {JobId} purged {Count} expired idempotency records and {Events} old events")]
    private static partial void LogPurged(ILogger logger, Guid jobId, int count, int events);
}
