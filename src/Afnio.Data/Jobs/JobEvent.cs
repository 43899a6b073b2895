using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Jobs;

/// <summary>
/// Something that happened to a job. <see cref="Seq"/> is taken from the job row while it is locked
/// by the same transaction, so a job's events commit in sequence order with no gaps: a reader that
/// follows <c>seq &gt; last</c> never skips one.
/// </summary>
public sealed class JobEvent : IHasId
{
    public required Guid Id { get; init; }
    public required Guid JobId { get; init; }
    public required long Seq { get; init; }
    public required string Type { get; init; }
    public required string Data { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class JobEventConfiguration : IEntityTypeConfiguration<JobEvent>
{
    public void Configure(EntityTypeBuilder<JobEvent> builder)
    {
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Type).HasMaxLength(64);
        builder.Property(e => e.Data).HasColumnType("jsonb");
        builder.HasIndex(e => new { e.JobId, e.Seq }).IsUnique();
        builder.HasOne<Job>().WithMany().HasForeignKey(e => e.JobId).OnDelete(DeleteBehavior.Cascade);
    }
}

/// <summary>The event types a job reports.</summary>
public static class JobEventTypes
{
    public const string Created = "job.created";
    public const string Started = "job.started";
    public const string Progress = "job.progress";
    public const string Cancelling = "job.cancelling";
    public const string Succeeded = "job.succeeded";
    public const string Failed = "job.failed";
    public const string Cancelled = "job.cancelled";

    /// <summary>True for the event that ends a job's stream.</summary>
    public static bool IsTerminal(string type) => type is Succeeded or Failed or Cancelled;
}
