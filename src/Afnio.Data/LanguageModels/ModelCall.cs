using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.LanguageModels;

/// <summary>
/// The call journal: one row per provider call (after its retries), with what was asked (without
/// secrets), what came back, the tokens, the cost and the time it took. Inside a job, a succeeded row
/// is the proof that a (step, request) was paid for: a resumed step reads its reply from here.
/// </summary>
public sealed class ModelCall
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }

    /// <summary>The model client; null once it was deleted (the journal outlives it).</summary>
    public Guid? ModelId { get; init; }

    public Guid? JobId { get; init; }
    public required string StepKey { get; init; }

    /// <summary>SHA-256 (hex) of the model id and the request body.</summary>
    public required string RequestHash { get; init; }

    public required string Model { get; init; }

    /// <summary>The request body sent (messages and completion arguments; never the key).</summary>
    public required string Request { get; init; }

    public string? Response { get; init; }
    public required string Status { get; init; }
    public string? Error { get; init; }
    public required int Attempts { get; init; }
    public long PromptTokens { get; init; }
    public long CachedTokens { get; init; }
    public long CompletionTokens { get; init; }
    public long ReasoningTokens { get; init; }
    public decimal CostUsd { get; init; }
    public required int LatencyMs { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

/// <summary>The values of <see cref="ModelCall.Status"/>.</summary>
public static class ModelCallStatus
{
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
}

public sealed class ModelCallConfiguration : IEntityTypeConfiguration<ModelCall>
{
    public void Configure(EntityTypeBuilder<ModelCall> builder)
    {
        builder.ToTable("model_calls");
        builder.HasKey(c => c.Id);
        builder.Property(c => c.StepKey).HasMaxLength(200);
        builder.Property(c => c.RequestHash).HasMaxLength(64);
        builder.Property(c => c.Model).HasMaxLength(200);
        builder.Property(c => c.Status).HasMaxLength(16);
        builder.Property(c => c.Request).HasColumnType("jsonb");
        builder.Property(c => c.CostUsd).HasPrecision(20, 10);
        // The replay lookup of a resumed step.
        builder.HasIndex(c => new { c.JobId, c.StepKey, c.RequestHash }).HasFilter("job_id IS NOT NULL");
        builder.HasIndex(c => new { c.ProjectId, c.CreatedAt });
        builder.HasIndex(c => c.ModelId);
        builder.HasOne<Project>().WithMany().HasForeignKey(c => c.ProjectId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<ModelClient>().WithMany().HasForeignKey(c => c.ModelId).OnDelete(DeleteBehavior.SetNull);
        builder.HasOne<Jobs.Job>().WithMany().HasForeignKey(c => c.JobId).OnDelete(DeleteBehavior.SetNull);
    }
}
