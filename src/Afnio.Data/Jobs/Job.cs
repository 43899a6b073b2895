using System.Text.Json.Serialization;
using Afnio.Data.Projects;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Jobs;

[JsonConverter(typeof(SnakeCaseEnumConverter<JobStatus>))]
public enum JobStatus
{
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelling,
    Cancelled,
}

/// <summary>
/// A unit of background work as users see it. Hangfire executes jobs; this row is the truth the
/// API shows. System jobs (housekeeping) have no project and are visible to the admin only.
/// </summary>
public sealed class Job : IHasId
{
    public required Guid Id { get; init; }
    public Guid? ProjectId { get; init; }
    public required string Type { get; init; }
    public JobStatus Status { get; set; } = JobStatus.Queued;
    public int ProgressCompleted { get; set; }
    public int ProgressTotal { get; set; }

    /// <summary>What the job was asked to do (its request, resolved), as JSON.</summary>
    public string? Arguments { get; init; }

    /// <summary>
    /// Names what the job works on exclusively (for example one optimizer); two unfinished jobs with
    /// the same key cannot exist, which a unique index enforces.
    /// </summary>
    public string? LockKey { get; init; }

    /// <summary>The job's result as JSON, written once when it succeeds.</summary>
    public string? Result { get; set; }

    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
    public string? HangfireJobId { get; set; }

    /// <summary>Which process ran the job last (<c>host:pid</c>), for operators.</summary>
    public string? ExecutedBy { get; set; }

    /// <summary>The delivery currently running the job; it renews <see cref="LeaseExpiresAt"/> while alive.</summary>
    public string? LeaseOwner { get; set; }
    public DateTimeOffset? LeaseExpiresAt { get; set; }

    /// <summary>How many deliveries have claimed the job (1 unless it was resumed).</summary>
    public int Attempts { get; set; }

    /// <summary>
    /// Deliveries that died since the job last made progress: their lease ran out with the owner still
    /// set (the worker was killed, or stopped renewing). Past a limit, the job is failed instead of delivered again.
    /// </summary>
    public int LostDeliveries { get; set; }

    /// <summary>The sequence number of the job's last event; events are numbered under the job row's lock.</summary>
    public long EventCount { get; set; }

    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }

    public bool IsTerminal => Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;
}

public sealed class JobConfiguration : IEntityTypeConfiguration<Job>
{
    /// <summary>The index that keeps two unfinished jobs from sharing a lock key.</summary>
    public const string LockKeyIndex = "ix_jobs_lock_key_unfinished";

    public void Configure(EntityTypeBuilder<Job> builder)
    {
        builder.HasKey(j => j.Id);
        builder.Property(j => j.Type).HasMaxLength(64);
        builder.Property(j => j.Status).HasConversion(
            s => JobStatusNames.ToName(s), s => JobStatusNames.Parse(s)).HasMaxLength(16);
        builder.Property(j => j.Result).HasColumnType("jsonb");
        builder.Property(j => j.Arguments).HasColumnType("jsonb");
        builder.Property(j => j.LeaseOwner).HasMaxLength(200);
        builder.Property(j => j.ErrorMessage).HasMaxLength(4000);
        builder.Property(j => j.ErrorCode).HasMaxLength(64);
        builder.Property(j => j.HangfireJobId).HasMaxLength(64);
        builder.Property(j => j.ExecutedBy).HasMaxLength(200);
        builder.Ignore(j => j.IsTerminal);
        builder.HasIndex(j => new { j.ProjectId, j.Id });
        builder.HasIndex(j => j.Status);
        builder.HasIndex(j => new { j.ProjectId, j.Type, j.Id });
        builder.Property(j => j.LockKey).HasMaxLength(128);
        builder.HasIndex(j => j.LockKey).IsUnique().HasDatabaseName(LockKeyIndex)
            .HasFilter("lock_key IS NOT NULL AND status IN ('queued', 'running', 'cancelling')");
        builder.HasOne<Project>().WithMany().HasForeignKey(j => j.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}

public static class JobStatusNames
{
    public static string ToName(JobStatus status) => status.ToString().ToLowerInvariant();

    public static JobStatus Parse(string name) => Enum.Parse<JobStatus>(name, ignoreCase: true);
}
