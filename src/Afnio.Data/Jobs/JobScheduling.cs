using Afnio.Domain.Common;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Afnio.Data.Jobs;

/// <summary>Creates job rows and hands them to Hangfire; the one place that knows which method runs which job type.</summary>
public static class JobScheduling
{
    /// <summary>Stores a new queued job of the caller's project with its <c>job.created</c> event, then enqueues it.</summary>
    /// <exception cref="JobLockedException">An unfinished job holds <paramref name="lockKey"/>.</exception>
    public static async Task<Job> CreateAsync(
        AfnioDbContext db, IBackgroundJobClient hangfire, Guid? projectId, string type, string? arguments, DateTimeOffset now, CancellationToken ct,
        string? lockKey = null)
    {
        var job = await AddAsync(db, projectId, type, arguments, now, ct, lockKey);
        // A crash before this line leaves a queued job without a Hangfire id; the worker's recovery enqueues it.
        await EnqueueAsync(db, hangfire, job, ct);
        return job;
    }

    /// <summary>
    /// Stores a new queued job with its <c>job.created</c> event, without enqueueing it: in the
    /// caller's transaction if one is open (call <see cref="EnqueueAsync"/> after it commits).
    /// </summary>
    /// <exception cref="JobLockedException">An unfinished job holds <paramref name="lockKey"/>.</exception>
    public static async Task<Job> AddAsync(
        AfnioDbContext db, Guid? projectId, string type, string? arguments, DateTimeOffset now, CancellationToken ct, string? lockKey = null)
    {
        var job = new Job { Id = PrefixedId.NewGuid(), ProjectId = projectId, Type = type, Arguments = arguments, LockKey = lockKey, CreatedAt = now };
        // Inside the caller's transaction when there is one (the job then commits with the caller's writes).
        var own = db.Database.CurrentTransaction is null ? await db.Database.BeginTransactionAsync(ct) : null;
        await using (own)
        {
            // No need to wait for the disk here: EnqueueAsync ends with a synchronous commit, and the
            // log is flushed in order, so once it returns this row is durable too.
            await AsynchronousCommitAsync(db, ct);
            db.Jobs.Add(job);
            try
            {
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation, ConstraintName: JobConfiguration.LockKeyIndex })
            {
                db.Entry(job).State = EntityState.Detached;
                throw new JobLockedException(lockKey!, e);
            }

            await db.AppendEventAsync(job.Id, JobEventTypes.Created, new { status = "queued" }, now, ct);
            if (own is not null)
            {
                await own.CommitAsync(ct);
            }
        }

        return job;
    }

    /// <summary>
    /// Hands <paramref name="job"/> to Hangfire (again) and records the Hangfire id; inside a request
    /// transaction, once it has committed (a worker must never be handed a job it cannot see yet).
    /// </summary>
    public static Task EnqueueAsync(AfnioDbContext db, IBackgroundJobClient hangfire, Job job, CancellationToken ct) =>
        db.AfterCommitAsync(token => EnqueueNowAsync(db, hangfire, job, token), ct);

    private static async Task EnqueueNowAsync(AfnioDbContext db, IBackgroundJobClient hangfire, Job job, CancellationToken ct)
    {
        var hangfireId = Enqueue(hangfire, job.Type, job.Id);
        // The one commit on this path that waits for the disk: it makes the job row and the
        // Hangfire enqueue before it durable (the log is flushed in order). A worker may already be
        // running the job by now; the enqueue itself did not wait.
        await db.Jobs.Where(j => j.Id == job.Id).ExecuteUpdateAsync(s => s.SetProperty(j => j.HangfireJobId, hangfireId), ct);
        job.HangfireJobId = hangfireId;
    }

    /// <summary>Lets the current transaction commit without waiting for its log to reach the disk.</summary>
    public static Task<int> AsynchronousCommitAsync(AfnioDbContext db, CancellationToken ct) =>
        db.Database.ExecuteSqlRawAsync("SET LOCAL synchronous_commit TO OFF", ct);

    private static string Enqueue(IBackgroundJobClient hangfire, string type, Guid jobId) => type switch
    {
        OptimizerStepJobArguments.JobType => hangfire.Enqueue<IOptimizerJobs>(AfnioDataSetup.Queues[1], j => j.RunStepAsync(jobId, CancellationToken.None)),
        BackwardJobArguments.JobType => hangfire.Enqueue<IBackwardJobs>(AfnioDataSetup.Queues[1], j => j.RunAsync(jobId, CancellationToken.None)),
        TrainingJobArguments.FitJobType => hangfire.Enqueue<ITrainingJobs>(AfnioDataSetup.Queues[1], j => j.FitAsync(jobId, CancellationToken.None)),
        TrainingJobArguments.TestJobType => hangfire.Enqueue<ITrainingJobs>(AfnioDataSetup.Queues[1], j => j.TestAsync(jobId, CancellationToken.None)),
        IHousekeepingJobs.JobType => hangfire.Enqueue<IHousekeepingJobs>(AfnioDataSetup.Queues[0], j => j.RunAsync(jobId, CancellationToken.None)),
        _ => throw new InvalidOperationException($"No job method runs jobs of type '{type}'."),
    };
}

/// <summary>Thrown when a job cannot be created because an unfinished job holds the same lock key.</summary>
public sealed class JobLockedException(string lockKey, Exception inner)
    : Exception($"An unfinished job already holds '{lockKey}'.", inner)
{
    public string LockKey { get; } = lockKey;
}
