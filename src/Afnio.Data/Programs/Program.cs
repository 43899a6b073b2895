using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Programs;

/// <summary>
/// A stored program (the declarative agent). Its definition never changes; its parameter values do,
/// one immutable <see cref="ProgramVersion"/> at a time. <see cref="CurrentVersion"/> is the
/// production version: the prompt a user's application reads.
/// </summary>
public sealed class AgentProgram : IHasId
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Name { get; init; }
    public string? Description { get; set; }

    /// <summary>The program as JSON (parameters, constants, inputs, targets, steps, output, loss, metrics).</summary>
    public required string Definition { get; init; }

    public int CurrentVersion { get; set; }
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>One version of a program's parameter values, and where it came from.</summary>
public sealed class ProgramVersion
{
    public const string Created = "created";
    public const string Promoted = "promoted";
    public const string Imported = "imported";

    public required Guid ProgramId { get; init; }
    public required int Version { get; init; }

    /// <summary>Parameter values by name, as a JSON object.</summary>
    public required string Parameters { get; init; }

    /// <summary><c>created</c>, <c>promoted</c> (by a run) or <c>imported</c>.</summary>
    public required string Source { get; init; }

    public Guid? RunId { get; init; }
    public Guid? CheckpointId { get; init; }

    /// <summary>The validation metric that earned the promotion, and its value.</summary>
    public string? Metric { get; init; }
    public double? Score { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class AgentProgramConfiguration : IEntityTypeConfiguration<AgentProgram>
{
    public void Configure(EntityTypeBuilder<AgentProgram> builder)
    {
        builder.ToTable("programs");
        builder.HasKey(p => p.Id);
        builder.Property(p => p.Name).HasMaxLength(200);
        builder.Property(p => p.Description).HasMaxLength(2000);
        builder.Property(p => p.Definition).HasColumnType("jsonb");
        builder.HasIndex(p => new { p.ProjectId, p.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(p => p.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class ProgramVersionConfiguration : IEntityTypeConfiguration<ProgramVersion>
{
    public void Configure(EntityTypeBuilder<ProgramVersion> builder)
    {
        builder.HasKey(v => new { v.ProgramId, v.Version });
        builder.Property(v => v.Parameters).HasColumnType("jsonb");
        builder.Property(v => v.Source).HasMaxLength(16);
        builder.Property(v => v.Metric).HasMaxLength(200);
        builder.HasOne<AgentProgram>().WithMany().HasForeignKey(v => v.ProgramId).OnDelete(DeleteBehavior.Cascade);
    }
}
