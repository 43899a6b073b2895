using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Afnio.Data.Jobs;

/// <summary>
/// Creates job rows. The <c>jobs</c> table is the queue: a queued row is work, and its commit
/// notifies <see cref="JobNotifications.QueueChannel"/>, which wakes every Worker's dispatcher
/// (docs/decisions/018-jobs-table-as-queue.md).
/// </summary>
public static class JobScheduling
{
    /// <summary>
    /// Stores a new queued job with its <c>job.created</c> event, in the caller's transaction if one is
    /// open (the job then becomes visible, and Workers are woken, when the caller commits).
    /// </summary>
    /// <exception cref="JobLockedException">An unfinished job holds <paramref name="lockKey"/>.</exception>
    public static async Task<Job> AddAsync(
        AfnioDbContext db, Guid? projectId, string type, string? arguments, DateTimeOffset now, CancellationToken ct, string? lockKey = null)
    {
        var job = new Job { Id = PrefixedId.NewGuid(), ProjectId = projectId, Type = type, Arguments = arguments, LockKey = lockKey, CreatedAt = now };
        var own = db.Database.CurrentTransaction is null ? await db.Database.BeginTransactionAsync(ct) : null;
        await using (own)
        {
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
            await JobNotifications.WorkQueuedAsync(db, ct);
            if (own is not null)
            {
                await own.CommitAsync(ct);
            }
        }

        return job;
    }

    /// <summary>Lets the current transaction commit without waiting for its log to reach the disk.</summary>
    public static Task<int> AsynchronousCommitAsync(AfnioDbContext db, CancellationToken ct) =>
        db.Database.ExecuteSqlRawAsync("SET LOCAL synchronous_commit TO OFF", ct);
}

/// <summary>Thrown when a job cannot be created because an unfinished job holds the same lock key.</summary>
public sealed class JobLockedException(string lockKey, Exception inner)
    : Exception($"An unfinished job already holds '{lockKey}'.", inner)
{
    public string LockKey { get; } = lockKey;
}
