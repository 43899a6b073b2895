using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Jobs;

/// <summary>
/// A committed step of a job (a backward node, a parameter update, …). It is written in the same
/// transaction as the step's outputs, so its presence means the outputs exist, and the primary key
/// makes a second commit of the same step impossible.
/// </summary>
public sealed class JobStep
{
    public required Guid JobId { get; init; }
    public required string StepKey { get; init; }

    /// <summary>What a resumed job needs from this step, as JSON.</summary>
    public required string Result { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class JobStepConfiguration : IEntityTypeConfiguration<JobStep>
{
    public void Configure(EntityTypeBuilder<JobStep> builder)
    {
        builder.HasKey(s => new { s.JobId, s.StepKey });
        builder.Property(s => s.StepKey).HasMaxLength(64);
        builder.Property(s => s.Result).HasColumnType("jsonb");
        builder.HasOne<Job>().WithMany().HasForeignKey(s => s.JobId).OnDelete(DeleteBehavior.Cascade);
    }
}
