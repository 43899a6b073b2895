using Afnio.Data;
using Afnio.Data.Jobs;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Afnio.Worker.Jobs;

/// <summary>
/// Hands orphaned jobs to Hangfire again: running jobs whose worker died (the lease ran out
/// without renewal), and queued jobs whose enqueue never happened. Each orphan is taken with a
/// conditional update, so with several workers exactly one re-enqueues it; the job itself then
/// resumes from its committed steps.
/// </summary>
public sealed partial class JobRecovery(
    IDbContextFactory<AfnioDbContext> contexts,
    IBackgroundJobClient hangfire,
    IOptions<JobOptions> options,
    TimeProvider clock,
    ILogger<JobRecovery> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.RecoveryIntervalSeconds), clock);
        do
        {
            try
            {
                await RecoverAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogRecoveryFailed(log, e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>Re-enqueues every orphaned job; returns how many.</summary>
    public async Task<int> RecoverAsync(CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var now = clock.GetUtcNow();
        var until = now + options.Value.Lease;
        var lostEnqueue = now - options.Value.Lease;
        // Taking an orphan clears its owner (so the next delivery may claim it) and pushes its expiry
        // out (so no other worker takes it too); if this enqueue is lost, it expires and is found again.
        // An owner still set means its delivery died: counted once, here or by the claim that takes over.
        var orphans = await db.Jobs.FromSql($"""
            UPDATE jobs SET lease_owner = NULL, lease_expires_at = {until},
                lost_deliveries = lost_deliveries + CASE WHEN lease_owner IS NOT NULL THEN 1 ELSE 0 END
            WHERE (status IN ('running', 'cancelling') AND lease_expires_at < {now})
               OR (status = 'queued' AND hangfire_job_id IS NULL AND created_at < {lostEnqueue}
                   AND (lease_expires_at IS NULL OR lease_expires_at < {now}))
            RETURNING *
            """).AsNoTracking().ToListAsync(ct);
        foreach (var job in orphans)
        {
            await JobScheduling.EnqueueAsync(db, hangfire, job, ct);
            LogRecovered(log, job.Id, job.Type, job.Status);
        }

        return orphans.Count;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Recovered orphaned job {JobId} ({Type}, {Status}): enqueued again")]
    private static partial void LogRecovered(ILogger logger, Guid jobId, string type, JobStatus status);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job recovery failed; retrying at the next interval")]
    private static partial void LogRecoveryFailed(ILogger logger, Exception exception);
}
