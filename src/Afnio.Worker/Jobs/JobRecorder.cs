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
    /// Claims one job for <paramref name="owner"/>. Returns null when the job is missing, finished, or
    /// held by another live delivery: a job delivered twice becomes a no-op.
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
            // delivery died. (A dispatcher's claim counts it the same way.)
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

        return await EndIfOverDeliveryLimitAsync(job, owner, release) ? null : job;
    }

    /// <summary>
    /// Claims up to <paramref name="max"/> ready jobs for this process in one statement, in a fair
    /// order across projects: every project's oldest ready job comes before any project's second,
    /// counting the jobs each project already has running, and a project never runs more than
    /// <paramref name="maxPerProject"/> at once (0: no limit) across all Workers. Ready means queued, or
    /// running with a lease that ran out (its delivery died, or gave the job back). Each claimed job gets
    /// its own lease owner and its <c>job.started</c> event; call <see cref="EndIfOverDeliveryLimitAsync"/>
    /// before running one.
    /// </summary>
    public async Task<IReadOnlyList<Job>> ClaimReadyAsync(int max, int maxPerProject, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var until = now + options.Value.Lease;
        var limit = Math.Max(0, maxPerProject);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await JobScheduling.AsynchronousCommitAsync(db, ct);
        // One claim at a time across Workers, so the per-project counts it reads stay true until it commits.
        await db.Database.ExecuteSqlRawAsync($"SELECT pg_advisory_xact_lock({ClaimLock})", ct);
        var claimed = await db.Jobs.FromSql($"""
            WITH live AS (
                SELECT project_id, count(*) AS n FROM jobs
                WHERE status IN ('running', 'cancelling') AND lease_expires_at >= {now}
                GROUP BY project_id),
            ready AS (
                SELECT j.id, j.project_id, j.created_at,
                    row_number() OVER (PARTITION BY j.project_id ORDER BY j.created_at, j.id) AS nth
                FROM jobs j
                WHERE j.status = 'queued' OR (j.status IN ('running', 'cancelling') AND j.lease_expires_at < {now})),
            picked AS (
                SELECT r.id FROM ready r LEFT JOIN live l ON l.project_id IS NOT DISTINCT FROM r.project_id
                WHERE {limit} = 0 OR r.project_id IS NULL OR r.nth + COALESCE(l.n, 0) <= {limit}
                ORDER BY r.nth + COALESCE(l.n, 0), r.created_at, r.id
                LIMIT {max}),
            locked AS (
                SELECT id FROM jobs
                WHERE id IN (SELECT id FROM picked)
                  AND (status = 'queued' OR (status IN ('running', 'cancelling') AND lease_expires_at < {now}))
                FOR UPDATE SKIP LOCKED)
            UPDATE jobs j SET
                status = CASE WHEN j.status = 'queued' THEN 'running' ELSE j.status END,
                started_at = COALESCE(j.started_at, {now}),
                lease_owner = {ProcessName} || '/' || replace(gen_random_uuid()::text, '-', ''),
                lease_expires_at = {until},
                attempts = j.attempts + 1,
                lost_deliveries = CASE WHEN j.lease_owner IS NOT NULL THEN j.lost_deliveries + 1 ELSE j.lost_deliveries END,
                executed_by = {ProcessName}
            FROM locked WHERE j.id = locked.id
            RETURNING j.*
            """).AsNoTracking().ToListAsync(ct);
        foreach (var job in claimed.Where(j => !OverDeliveryLimit(j)))
        {
            await db.AppendEventAsync(job.Id, JobEventTypes.Started, new { attempt = job.Attempts, worker = ProcessName }, now, ct);
        }

        await tx.CommitAsync(ct);
        return [.. claimed.OrderBy(j => j.CreatedAt)];
    }

    // The advisory lock key every Worker's claim takes ("afnio:claim").
    private const long ClaimLock = 0x6166_6e69_6f3a_636c;

    /// <summary>
    /// When the last <see cref="JobOptions.MaxDeliveries"/> deliveries of a job that
    /// <paramref name="owner"/> just claimed all died, fails it with <see cref="DeliveryLimitCode"/>
    /// (<paramref name="release"/> runs as in <see cref="FailAsync"/>) and returns true: a job that
    /// kills its worker is not handed to another one.
    /// </summary>
    public async Task<bool> EndIfOverDeliveryLimitAsync(Job job, string owner, Func<AfnioDbContext, Task>? release)
    {
        if (!OverDeliveryLimit(job))
        {
            return false;
        }

        // Held by this delivery now, so the end is recorded once; if this process dies first, the next
        // claim finds one more lost delivery and ends it.
        var max = Math.Max(1, options.Value.MaxDeliveries);
        await FailAsync(job.Id, owner, DeliveryLimitCode,
            $"The job was stopped: its last {job.LostDeliveries} deliveries never finished, the worker running it died during each " +
            $"(Afnio__Jobs__MaxDeliveries is {max}). A job that takes its worker down, for example by running out of memory, is not " +
            "delivered again. Check what the job was asked to do (its size, its inputs) and start it again.", release);
        return true;
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

    /// <summary>
    /// Gives the lease up, so the next delivery can resume without waiting for it to run out: at once
    /// (on shutdown), or after <paramref name="retryAfter"/> (after a transient database error, so a
    /// database that is down is not hammered with claims).
    /// </summary>
    public async Task ReleaseAsync(Guid jobId, string owner, TimeSpan? retryAfter = null)
    {
        var now = clock.GetUtcNow();
        var free = now + (retryAfter ?? TimeSpan.Zero);
        await using var tx = await db.Database.BeginTransactionAsync(CancellationToken.None);
        var released = await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.LeaseExpiresAt, free), CancellationToken.None);
        if (released > 0 && retryAfter is null)
        {
            // Another Worker may take it over at once.
            await JobNotifications.WorkQueuedAsync(db, CancellationToken.None);
        }

        await tx.CommitAsync(CancellationToken.None);
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
