using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Afnio.Worker.Jobs;

/// <summary>What a job's body works with during one delivery.</summary>
/// <param name="Db">A context for the body's own reads and writes.</param>
/// <param name="Recorder">Moves the job through its states.</param>
/// <param name="Job">The job as claimed.</param>
/// <param name="Owner">This delivery's lease owner.</param>
/// <param name="Monitor">Renews the lease, counts progress, notices cancel requests.</param>
public sealed record JobDelivery(AfnioDbContext Db, JobRecorder Recorder, Job Job, string Owner, JobMonitor Monitor);

/// <summary>Thrown when a delivery is about to commit but another delivery holds the job now (or it has ended).</summary>
public sealed class LeaseLostException(Guid jobId)
    : Exception($"The lease on job {jobId:N} is held by another delivery, or the job has ended.");

/// <summary>Fences a job's commits: only the delivery holding the lease of a running job writes.</summary>
public static class JobFence
{
    /// <summary>
    /// Locks the job row inside the current transaction if <paramref name="owner"/> holds a running
    /// (or cancelling) job; otherwise throws <see cref="LeaseLostException"/>. A delivery that lost its
    /// lease, stalled past it, or outlived its job's end can then write nothing.
    /// </summary>
    public static async Task EnsureHeldAsync(AfnioDbContext db, Guid jobId, string owner)
    {
        var held = await db.Database.SqlQuery<int>($"""
            SELECT 1 AS "Value" FROM jobs WHERE id = {jobId} AND lease_owner = {owner} AND status IN ('running', 'cancelling') FOR UPDATE
            """).ToListAsync();
        if (held.Count == 0)
        {
            throw new LeaseLostException(jobId);
        }
    }
}

/// <summary>A job's committed steps: the rows whose presence means a step's outputs exist.</summary>
public static class JobStepRows
{
    /// <summary>
    /// Inserts step rows (key, result JSON) in the caller's transaction, in one statement. A step
    /// already committed by another delivery throws <see cref="StepAlreadyCommittedException"/>.
    /// </summary>
    public static async Task InsertAsync(AfnioDbContext db, Guid jobId, IReadOnlyList<(string Key, string Result)> steps, DateTimeOffset now)
    {
        try
        {
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO job_steps (job_id, step_key, result, created_at)
                SELECT {jobId}, t.k, t.r::jsonb, {now} FROM unnest({steps.Select(x => x.Key).ToArray()}::text[], {steps.Select(x => x.Result).ToArray()}::text[]) AS t(k, r)
                """);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new StepAlreadyCommittedException($"one of {steps.Count} steps of job {jobId:N}, starting with {steps[0].Key}", e);
        }
    }
}

/// <summary>Thrown when a step of a job was already committed by another delivery of the same job.</summary>
public sealed class StepAlreadyCommittedException(string stepKey, Exception inner)
    : Exception($"The step {stepKey} was committed by another delivery.", inner);

/// <summary>The job the dispatcher claimed for the delivery running in this scope.</summary>
public sealed class ClaimedJob
{
    private Job? _job;

    /// <summary>Hands <paramref name="job"/>, claimed with its lease owner, to the delivery about to run in this scope.</summary>
    public void Set(Job job) => _job = job;

    /// <summary>The claimed job if it is <paramref name="jobId"/> (once), else null: the delivery then claims the job itself.</summary>
    public Job? Take(Guid jobId)
    {
        var job = _job;
        _job = null;
        return job?.Id == jobId ? job : null;
    }
}

/// <summary>
/// Runs one delivery of a durable job: claims its lease unless the dispatcher did (a second delivery
/// of a job someone else holds is a no-op), keeps it alive with a <see cref="JobMonitor"/>, and records how the body ended.
/// The body commits its own steps; on a later delivery it resumes from them.
/// <list type="bullet">
/// <item><description>A cancel request stops the body between steps: the job ends <c>cancelled</c>.</description></item>
/// <item><description>An <see cref="AfnioException"/> fails the job with its code and message.</description></item>
/// <item><description>A lost lease (seen by the monitor or by a commit's fence), or a step another delivery committed, stops quietly: the other delivery finishes.</description></item>
/// <item><description>Shutdown and transient database errors give the lease up and rethrow; the next claim resumes (after a transient error, a second later).</description></item>
/// <item><description>Anything else fails the job with <c>failureCode</c>.</description></item>
/// </list>
/// </summary>
public sealed partial class JobExecution(
    IDbContextFactory<AfnioDbContext> contexts, ClaimedJob claimed, IOptions<JobOptions> options, TimeProvider clock, ILogger<JobExecution> log)
{
    /// <summary>
    /// Runs <paramref name="body"/> for job <paramref name="jobId"/>; <paramref name="release"/> runs whenever the job
    /// ends without succeeding, in the transaction that ends it.
    /// </summary>
    public async Task RunAsync(
        Guid jobId, string failureCode, string failureMessage, Func<JobDelivery, CancellationToken, Task> body,
        Func<AfnioDbContext, Task>? release, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var recorder = new JobRecorder(db, clock, options);
        Job job;
        if (claimed.Take(jobId) is { } dispatched)
        {
            // The dispatcher claimed it already (JobDispatcher).
            if (await recorder.EndIfOverDeliveryLimitAsync(dispatched, dispatched.LeaseOwner!, release))
            {
                return;
            }

            job = dispatched;
        }
        else if (await recorder.TryClaimAsync(jobId, JobRecorder.NewLeaseOwner(), release, cancellationToken) is { } own)
        {
            job = own;
        }
        else
        {
            return;
        }

        var owner = job.LeaseOwner!;

        await using var monitor = new JobMonitor(contexts, jobId, owner, job.ProgressCompleted, clock, options.Value, log);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, monitor.Lost);
        try
        {
            if (job.Status == JobStatus.Cancelling)
            {
                await recorder.CancelledAsync(jobId, owner, release);
                return;
            }

            await body(new JobDelivery(db, recorder, job, owner, monitor), linked.Token);
        }
        catch (OperationCanceledException) when (monitor.CancelRequested.IsCancellationRequested
            && !cancellationToken.IsCancellationRequested && !monitor.Lost.IsCancellationRequested)
        {
            await monitor.FlushAsync(CancellationToken.None);
            await recorder.CancelledAsync(jobId, owner, release);
            LogCancelled(log, job.Type, jobId);
        }
        catch (AfnioException e)
        {
            await recorder.FailAsync(jobId, owner, e.Code, e.Message, release);
        }
        catch (Exception e) when (monitor.Lost.IsCancellationRequested || e is StepAlreadyCommittedException or LeaseLostException)
        {
            LogHandedOver(log, job.Type, jobId);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await recorder.ReleaseAsync(jobId, owner);
            throw;
        }
        catch (Exception e) when (e is NpgsqlException { IsTransient: true } || e.InnerException is NpgsqlException { IsTransient: true })
        {
            await recorder.ReleaseAsync(jobId, owner, TransientRetryDelay);
            throw;
        }
        catch (Exception e)
        {
            LogFailed(log, job.Type, jobId, e);
            await recorder.FailAsync(jobId, owner, failureCode, $"{failureMessage}: {e.Message}", release);
        }
    }

    // How long a job that hit a transient database error waits before a Worker takes it again (the
    // dispatcher's next look at the queue, at the recovery interval, finds it).
    private static readonly TimeSpan TransientRetryDelay = TimeSpan.FromSeconds(1);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} ({Type}) cancelled between steps")]
    private static partial void LogCancelled(ILogger logger, string type, Guid jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} ({Type}) is held by another delivery; this one stops")]
    private static partial void LogHandedOver(ILogger logger, string type, Guid jobId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} ({Type}) failed")]
    private static partial void LogFailed(ILogger logger, string type, Guid jobId, Exception exception);
}
