using System.Text.Json;
using Afnio.Data;
using Afnio.Data.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Worker.Jobs;

/// <summary>
/// Moves job rows through their states. A delivery first claims the job's lease; every later
/// transition is conditional on still holding it, so two deliveries of one job never both finish it.
/// </summary>
public sealed class JobRecorder(AfnioDbContext db, TimeProvider clock, IOptions<JobOptions> options)
{
    /// <summary>Identifies this process in <see cref="Job.ExecutedBy"/>.</summary>
    public static string ProcessName { get; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>A lease owner name unique to one delivery of a job.</summary>
    public static string NewLeaseOwner() => $"{ProcessName}/{Guid.NewGuid():N}";

    /// <summary>The error code of a job failed because its deliveries kept dying.</summary>
    public const string DeliveryLimitCode = "job_delivery_limit";

    /// <summary>
    /// Claims a job for <paramref name="owner"/>. Returns null when the job is missing, finished, or
    /// held by another live delivery: that is how a job Hangfire delivers twice becomes a no-op.
    /// </summary>
    public Task<Job?> TryClaimAsync(Guid jobId, string owner, CancellationToken ct) => TryClaimAsync(jobId, owner, null, ct);

    /// <summary>
    /// As <see cref="TryClaimAsync(Guid, string, CancellationToken)"/>; but when the job's last
    /// <see cref="JobOptions.MaxDeliveries"/> deliveries all died, the job is failed with
    /// <see cref="DeliveryLimitCode"/> instead (<paramref name="release"/> runs as in <see cref="FailAsync"/>)
    /// and null is returned: a job that kills its worker is not handed to another one.
    /// </summary>
    public async Task<Job?> TryClaimAsync(Guid jobId, string owner, Func<AfnioDbContext, Task>? release, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var until = now + options.Value.Lease;
        Job job;
        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            // A claim lost in a database crash is claimed again by the next delivery: no need to wait for the disk.
            await JobScheduling.AsynchronousCommitAsync(db, ct);
            // A lease that ran out with its owner still set was never finished nor given back: that
            // delivery died. (Recovery counts it instead when it gets there first; both clear the owner.)
            var claimed = await db.Jobs
                .Where(j => j.Id == jobId
                    && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running || j.Status == JobStatus.Cancelling)
                    && (j.LeaseOwner == null || j.LeaseExpiresAt < now))
                .ExecuteUpdateAsync(s => s
                    .SetProperty(j => j.Status, j => j.Status == JobStatus.Queued ? JobStatus.Running : j.Status)
                    .SetProperty(j => j.StartedAt, j => j.StartedAt ?? now)
                    .SetProperty(j => j.LeaseOwner, owner)
                    .SetProperty(j => j.LeaseExpiresAt, until)
                    .SetProperty(j => j.Attempts, j => j.Attempts + 1)
                    .SetProperty(j => j.LostDeliveries, j => j.LeaseOwner != null ? j.LostDeliveries + 1 : j.LostDeliveries)
                    .SetProperty(j => j.ExecutedBy, ProcessName), ct);
            if (claimed == 0)
            {
                return null;
            }

            job = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId, ct);
            if (!OverDeliveryLimit(job))
            {
                await db.AppendEventAsync(jobId, JobEventTypes.Started, new { attempt = job.Attempts, worker = ProcessName }, now, ct);
            }

            await tx.CommitAsync(ct);
        }

        if (!OverDeliveryLimit(job))
        {
            return job;
        }

        // Held by this delivery now, so the end is recorded once; if this process dies first, the next
        // claim finds one more lost delivery and ends it.
        var max = Math.Max(1, options.Value.MaxDeliveries);
        await FailAsync(jobId, owner, DeliveryLimitCode,
            $"The job was stopped: its last {job.LostDeliveries} deliveries never finished, the worker running it died during each " +
            $"(Afnio__Jobs__MaxDeliveries is {max}). A job that takes its worker down, for example by running out of memory, is not " +
            "delivered again. Check what the job was asked to do (its size, its inputs) and start it again.", release);
        return null;
    }

    // A job a user asked to cancel is cancelled by its next delivery anyway, without running anything.
    private bool OverDeliveryLimit(Job job) =>
        job.LostDeliveries >= Math.Max(1, options.Value.MaxDeliveries) && job.Status != JobStatus.Cancelling;

    /// <summary>
    /// Renews the lease and publishes progress. Returns the job's status, or null when the lease was
    /// lost (another delivery took the job over, or it was finished elsewhere).
    /// </summary>
    public async Task<JobStatus?> HeartbeatAsync(Guid jobId, string owner, int? completed, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var until = now + options.Value.Lease;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // Progress and lease renewals are refreshed every beat; one lost in a database crash costs nothing.
        await JobScheduling.AsynchronousCommitAsync(db, ct);
        var rows = await db.Database.SqlQuery<HeartbeatRow>($"""
            UPDATE jobs SET lease_expires_at = {until},
                lost_deliveries = CASE WHEN {completed} > progress_completed THEN 0 ELSE lost_deliveries END,
                progress_completed = COALESCE({completed}, progress_completed)
            WHERE id = {jobId} AND lease_owner = {owner}
            RETURNING status AS "Status", progress_completed AS "Completed", progress_total AS "Total"
            """).ToListAsync(ct);
        if (rows.Count == 0)
        {
            return null;
        }

        if (completed is not null)
        {
            await db.AppendEventAsync(jobId, JobEventTypes.Progress, new { completed = rows[0].Completed, total = rows[0].Total }, now, ct);
        }

        await tx.CommitAsync(ct);
        return JobStatusNames.Parse(rows[0].Status);
    }

    /// <summary>Sets how many steps the job has in all.</summary>
    public Task SetTotalAsync(Guid jobId, string owner, int total, CancellationToken ct) =>
        db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.ProgressTotal, total), ct);

    /// <summary>
    /// Marks the job succeeded with <paramref name="result"/> if <paramref name="owner"/> still holds it.
    /// Joins the caller's transaction when there is one, so a job's last writes and its success commit together.
    /// </summary>
    public async Task<bool> SucceedAsync<TResult>(Guid jobId, string owner, TResult result, CancellationToken ct)
    {
        var json = JsonSerializer.Serialize(result, JobEventLog.Json);
        var now = clock.GetUtcNow();
        // The job's end and its events (the job's own and the project's) commit together.
        await using var own = db.Database.CurrentTransaction is null ? await db.Database.BeginTransactionAsync(ct) : null;
        var done = await Finish(jobId, owner).ExecuteUpdateAsync(s => s
            .SetProperty(j => j.Status, JobStatus.Succeeded)
            .SetProperty(j => j.Result, json)
            .SetProperty(j => j.ProgressCompleted, j => j.ProgressTotal)
            .SetProperty(j => j.FinishedAt, now)
            .SetProperty(j => j.LeaseOwner, (string?)null)
            .SetProperty(j => j.LeaseExpiresAt, (DateTimeOffset?)null), ct);
        if (done == 1)
        {
            await db.AppendEventAsync(jobId, JobEventTypes.Succeeded, JsonDocument.Parse(json).RootElement, now, ct);
        }

        if (own is not null)
        {
            await own.CommitAsync(ct);
        }

        return done == 1;
    }

    /// <summary>
    /// Marks the job failed with a stable code and a message for the user. <paramref name="ended"/>
    /// runs in the same transaction, only if this delivery still held the job.
    /// </summary>
    public Task FailAsync(Guid jobId, string owner, string code, string message, Func<AfnioDbContext, Task>? ended = null) =>
        EndAsync(jobId, owner, JobStatus.Failed, JobEventTypes.Failed, code, message, ended);

    /// <summary>Marks a job cancelled; the steps it committed stay. <paramref name="ended"/> as in <see cref="FailAsync"/>.</summary>
    public Task CancelledAsync(Guid jobId, string owner, Func<AfnioDbContext, Task>? ended = null) =>
        EndAsync(jobId, owner, JobStatus.Cancelled, JobEventTypes.Cancelled, null, null, ended);

    /// <summary>Gives the lease up at once (on shutdown), so the next delivery can resume without waiting.</summary>
    public Task ReleaseAsync(Guid jobId, string owner)
    {
        var now = clock.GetUtcNow();
        return db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.LeaseExpiresAt, now), CancellationToken.None);
    }

    // Recording how a job ended must not be skipped because the job's own token was cancelled.
    private async Task EndAsync(Guid jobId, string owner, JobStatus status, string eventType, string? code, string? message, Func<AfnioDbContext, Task>? ended)
    {
        var now = clock.GetUtcNow();
        if (message is { Length: > 4000 })
        {
            message = message[..4000];
        }

        await using var tx = await db.Database.BeginTransactionAsync(CancellationToken.None);
        var done = await Finish(jobId, owner).ExecuteUpdateAsync(s => s
            .SetProperty(j => j.Status, status)
            .SetProperty(j => j.ErrorCode, code)
            .SetProperty(j => j.ErrorMessage, message)
            .SetProperty(j => j.FinishedAt, now)
            .SetProperty(j => j.LeaseOwner, (string?)null)
            .SetProperty(j => j.LeaseExpiresAt, (DateTimeOffset?)null), CancellationToken.None);
        if (done == 1)
        {
            object data = code is null ? new { } : new { error = new { code, message } };
            await db.AppendEventAsync(jobId, eventType, data, now, CancellationToken.None);
            if (ended is not null)
            {
                await ended(db);
            }
        }

        await tx.CommitAsync(CancellationToken.None);
    }

    private IQueryable<Job> Finish(Guid jobId, string owner) =>
        db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == owner
            && (j.Status == JobStatus.Running || j.Status == JobStatus.Cancelling));

    private sealed record HeartbeatRow(string Status, int Completed, int Total);
}
