using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Runs;

/// <summary>
/// A run: a named optimization whose metrics are kept by step. A client-driven run is created and
/// fed by the user's own loop (afnio's <c>tellurio.init</c> and <c>run.log</c>); its status is
/// <c>running</c> until the client marks it <c>completed</c>, <c>crashed</c> or <c>failed</c>.
/// </summary>
public sealed class Run : IHasId
{
    public const string Running = "running";
    public const string Completed = "completed";
    public const string Crashed = "crashed";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    public const string StoppedBudget = "stopped_budget";

    /// <summary>The statuses a client may set, as afnio names them (lower case).</summary>
    public static IReadOnlyList<string> Statuses { get; } = [Running, Completed, Crashed, Failed];

    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Name { get; init; }
    public string? Description { get; set; }
    public required string Status { get; set; }
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>For a server-driven run: the program it trains (null for a client-driven run).</summary>
    public Guid? ProgramId { get; init; }

    /// <summary>For a server-driven run: the job doing the work now (the fit job, then any test pass).</summary>
    public Guid? JobId { get; set; }

    /// <summary>For a server-driven run: its resolved settings (<c>TrainingRunConfig</c>) as JSON.</summary>
    public string? Config { get; init; }

    /// <summary>How the run ended: best checkpoint, promotion, usage, stop reason; JSON, written as it finishes.</summary>
    public string? Summary { get; set; }

    /// <summary>The user whose key created the run through the afnio protocol, if one did.</summary>
    public Guid? UserId { get; set; }

    public bool IsServerDriven => ProgramId is not null;
}

/// <summary>One logged value of a run's metric at a step.</summary>
public sealed class RunMetric : IHasId
{
    public required Guid Id { get; init; }
    public required Guid RunId { get; init; }
    public required string Name { get; init; }
    public required long Step { get; init; }
    public required double Value { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class RunConfiguration : IEntityTypeConfiguration<Run>
{
    public void Configure(EntityTypeBuilder<Run> builder)
    {
        builder.HasKey(r => r.Id);
        builder.Property(r => r.Name).HasMaxLength(200);
        builder.Property(r => r.Description).HasMaxLength(2000);
        builder.Property(r => r.Status).HasMaxLength(32);
        builder.Property(r => r.Config).HasColumnType("jsonb");
        builder.Property(r => r.Summary).HasColumnType("jsonb");
        builder.Ignore(r => r.IsServerDriven);
        // Names are unique in a project: a taken name gets a numeric suffix.
        builder.HasIndex(r => new { r.ProjectId, r.Name }).IsUnique();
        builder.HasIndex(r => new { r.ProjectId, r.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(r => r.ProjectId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<Accounts.User>().WithMany().HasForeignKey(r => r.UserId).OnDelete(DeleteBehavior.SetNull);
    }
}

public sealed class RunMetricConfiguration : IEntityTypeConfiguration<RunMetric>
{
    public void Configure(EntityTypeBuilder<RunMetric> builder)
    {
        builder.HasKey(m => m.Id);
        builder.Property(m => m.Name).HasMaxLength(200);
        builder.HasIndex(m => new { m.RunId, m.Name, m.Step });
        builder.HasIndex(m => new { m.RunId, m.Id });
        builder.HasOne<Run>().WithMany().HasForeignKey(m => m.RunId).OnDelete(DeleteBehavior.Cascade);
    }
}
