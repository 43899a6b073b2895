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

    /// <summary>The payload for a job's change: <c>j:</c> and the job id.</summary>
    public static string JobPayload(Guid jobId) => $"j:{jobId:N}";

    /// <summary>The payload for a revoked key: <c>k:</c>, the key id and its secret's hash (so every process can drop it from its cache).</summary>
    public static string KeyPayload(Guid keyId, string secretHash) => $"k:{keyId:N}:{secretHash}";

    /// <summary>Tells the listeners that a key was revoked (call in, or right after, the transaction that revoked it).</summary>
    public static Task KeyRevokedAsync(AfnioDbContext db, Guid keyId, string secretHash, CancellationToken ct) =>
        db.Database.ExecuteSqlAsync($"SELECT pg_notify({Channel}, {KeyPayload(keyId, secretHash)})", ct);
}
