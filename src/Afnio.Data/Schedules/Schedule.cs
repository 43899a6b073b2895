using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Schedules;

/// <summary>
/// A training run started on a cron schedule. This table is the source of truth; Hangfire's
/// recurring job <c>schedule:{id}</c> only mirrors it and is re-synced on start-up.
/// </summary>
public sealed class Schedule : IHasId
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Name { get; set; }
    public string? Description { get; set; }

    /// <summary>Five fields (minute resolution) or six (with seconds first), as Cronos parses them.</summary>
    public required string Cron { get; set; }

    /// <summary>The IANA time zone the cron expression is read in.</summary>
    public required string TimeZone { get; set; }

    /// <summary>The body of <c>POST /v1/runs</c> each firing sends, as JSON (the dataset's version left out: the latest is used).</summary>
    public required string RunTemplate { get; set; }

    public required bool Enabled { get; set; }

    /// <summary>Fire even while the previous run is still active.</summary>
    public required bool AllowOverlap { get; set; }

    /// <summary>The last planned time handled (fired or skipped); firings only handle later ones.</summary>
    public DateTimeOffset? LastPlannedAt { get; set; }

    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>
/// One planned time of a schedule and what became of it. Its key makes a planned time fire at most
/// once, however many deliveries, misfires or racing workers try.
/// </summary>
public sealed class ScheduleFiring : IHasId
{
    public const string Cron = "cron";
    public const string Manual = "manual";
    public const string Fired = "fired";
    public const string Skipped = "skipped";

    public required Guid Id { get; init; }
    public required Guid ScheduleId { get; init; }
    public required Guid ProjectId { get; init; }
    public required DateTimeOffset PlannedAt { get; init; }

    /// <summary><see cref="Cron"/> or <see cref="Manual"/> (<c>POST …/trigger</c>).</summary>
    public required string Trigger { get; init; }

    /// <summary><see cref="Fired"/> or <see cref="Skipped"/>.</summary>
    public required string Outcome { get; init; }

    public Guid? RunId { get; init; }

    /// <summary>Why it was skipped: a stable code and a message.</summary>
    public string? ReasonCode { get; init; }
    public string? Reason { get; init; }

    /// <summary>Earlier planned times that were missed (the service was down) and folded into this one.</summary>
    public int Missed { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class ScheduleConfiguration : IEntityTypeConfiguration<Schedule>
{
    public void Configure(EntityTypeBuilder<Schedule> builder)
    {
        builder.ToTable("schedules");
        builder.HasKey(s => s.Id);
        builder.Property(s => s.Name).HasMaxLength(180);
        builder.Property(s => s.Description).HasMaxLength(2000);
        builder.Property(s => s.Cron).HasMaxLength(200);
        builder.Property(s => s.TimeZone).HasMaxLength(100);
        builder.Property(s => s.RunTemplate).HasColumnType("jsonb");
        builder.HasIndex(s => new { s.ProjectId, s.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(s => s.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class ScheduleFiringConfiguration : IEntityTypeConfiguration<ScheduleFiring>
{
    public void Configure(EntityTypeBuilder<ScheduleFiring> builder)
    {
        builder.ToTable("schedule_firings");
        builder.HasKey(f => f.Id);
        builder.Property(f => f.Trigger).HasMaxLength(16);
        builder.Property(f => f.Outcome).HasMaxLength(16);
        builder.Property(f => f.ReasonCode).HasMaxLength(100);
        builder.Property(f => f.Reason).HasMaxLength(4000);
        builder.HasIndex(f => new { f.ScheduleId, f.Trigger, f.PlannedAt }).IsUnique();
        builder.HasIndex(f => new { f.ScheduleId, f.Id });
        builder.HasIndex(f => f.RunId);
        builder.HasOne<Schedule>().WithMany().HasForeignKey(f => f.ScheduleId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<Runs.Run>().WithMany().HasForeignKey(f => f.RunId).OnDelete(DeleteBehavior.SetNull);
    }
}
