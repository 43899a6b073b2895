using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.Jobs;

/// <summary>
/// The LISTEN/NOTIFY channel that wakes event streams and long polls in the API processes: a
/// job's new events (every status change appends one) and revoked keys. Sent inside the writer's
/// transaction, PostgreSQL delivers it on commit, so a woken reader sees the change.
/// </summary>
public static class JobNotifications
{
    public const string Channel = "afnio_jobs";

    /// <summary>
    /// The channel that wakes the Workers' dispatchers: a job was queued, or a lease was given back.
    /// It carries no payload; a woken dispatcher looks at the <c>jobs</c> table.
    /// </summary>
    public const string QueueChannel = "afnio_queue";

    /// <summary>Wakes the dispatchers once the current transaction commits (at once outside one).</summary>
    public static Task WorkQueuedAsync(AfnioDbContext db, CancellationToken ct) =>
        db.Database.ExecuteSqlRawAsync($"SELECT pg_notify('{QueueChannel}', '')", ct);

    /// <summary>The payload for a job's change: <c>j:</c> and the job id.</summary>
    public static string JobPayload(Guid jobId) => $"j:{jobId:N}";

    /// <summary>The payload for a revoked key: <c>k:</c>, the key id and its secret's hash (so every process can drop it from its cache).</summary>
    public static string KeyPayload(Guid keyId, string secretHash) => $"k:{keyId:N}:{secretHash}";

    /// <summary>Tells the listeners that a key was revoked (call in, or right after, the transaction that revoked it).</summary>
    public static Task KeyRevokedAsync(AfnioDbContext db, Guid keyId, string secretHash, CancellationToken ct) =>
        db.Database.ExecuteSqlAsync($"SELECT pg_notify({Channel}, {KeyPayload(keyId, secretHash)})", ct);
}
