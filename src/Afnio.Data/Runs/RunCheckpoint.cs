using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Runs;

/// <summary>
/// A training checkpoint: everything needed to go on from this point. A run writes one after every
/// batch (<c>batch</c>), one after each epoch's validation (<c>epoch</c>) and, before training, one
/// for the production parameters it must beat (<c>baseline</c>). Imported checkpoints have no run.
/// </summary>
public sealed class RunCheckpoint : IHasId
{
    public const string BatchKind = "batch";
    public const string EpochKind = "epoch";
    public const string BaselineKind = "baseline";
    public const string ImportedKind = "imported";

    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public Guid? RunId { get; init; }
    public Guid? ProgramId { get; init; }
    public required string Kind { get; init; }

    /// <summary>1-based epoch (0 for the baseline).</summary>
    public required int Epoch { get; init; }

    /// <summary>0-based batch within the epoch; null for epoch, baseline and imported checkpoints.</summary>
    public int? Batch { get; init; }

    /// <summary>The training state (parameters, gradients, momentum) as JSON.</summary>
    public required string State { get; init; }

    /// <summary>Where training stands: sampler, running metric sums, cost and calls so far, as JSON.</summary>
    public required string Progress { get; init; }

    /// <summary>Validation metrics measured at this checkpoint, as JSON; null for batch checkpoints.</summary>
    public string? Validation { get; init; }

    /// <summary>The run's selection metric on the validation split here, when measured.</summary>
    public double? Score { get; init; }

    public required decimal CostUsd { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class RunCheckpointConfiguration : IEntityTypeConfiguration<RunCheckpoint>
{
    public void Configure(EntityTypeBuilder<RunCheckpoint> builder)
    {
        builder.ToTable("run_checkpoints");
        builder.HasKey(c => c.Id);
        builder.Property(c => c.Kind).HasMaxLength(16);
        builder.Property(c => c.State).HasColumnType("jsonb");
        builder.Property(c => c.Progress).HasColumnType("jsonb");
        builder.Property(c => c.Validation).HasColumnType("jsonb");
        builder.Property(c => c.CostUsd).HasPrecision(18, 8);
        builder.HasIndex(c => new { c.RunId, c.Id });
        builder.HasIndex(c => new { c.ProjectId, c.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(c => c.ProjectId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<Run>().WithMany().HasForeignKey(c => c.RunId).OnDelete(DeleteBehavior.Cascade);
        // A checkpoint is a state of its program: it goes when the program goes.
        builder.HasOne<Programs.AgentProgram>().WithMany().HasForeignKey(c => c.ProgramId).OnDelete(DeleteBehavior.Cascade);
    }
}
