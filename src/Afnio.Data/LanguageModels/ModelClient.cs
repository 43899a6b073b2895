using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.LanguageModels;

/// <summary>
/// A registered model client (<c>mdl_…</c>): an OpenAI-compatible endpoint, its key (encrypted with
/// ASP.NET Data Protection, never returned), default completion arguments and limits.
/// </summary>
public sealed class ModelClient : IHasId
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Provider { get; init; }
    public string? Name { get; init; }
    public string? BaseUrl { get; init; }

    /// <summary>The provider key, protected by Data Protection; null for endpoints that need none.</summary>
    public string? ProtectedApiKey { get; init; }

    /// <summary>The last four characters of the key, shown so a user can tell keys apart.</summary>
    public string? ApiKeyHint { get; init; }

    public string? Organization { get; init; }

    /// <summary>JSON object laid under every call's completion arguments.</summary>
    public required string DefaultCompletionArgs { get; init; }

    public required int MaxConcurrency { get; init; }
    public int? RequestsPerMinute { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>
    /// When the usage was last cleared (<c>DELETE /v1/models/{id}/usage</c>): the model's usage counts the
    /// journaled calls after it. The journal itself is never cleared.
    /// </summary>
    public DateTimeOffset? UsageClearedAt { get; set; }
}

public sealed class ModelClientConfiguration : IEntityTypeConfiguration<ModelClient>
{
    public void Configure(EntityTypeBuilder<ModelClient> builder)
    {
        builder.ToTable("models");
        builder.HasKey(m => m.Id);
        builder.HasIndex(m => new { m.ProjectId, m.Id });
        builder.Property(m => m.Provider).HasMaxLength(32);
        builder.Property(m => m.Name).HasMaxLength(200);
        builder.Property(m => m.BaseUrl).HasMaxLength(2048);
        builder.Property(m => m.Organization).HasMaxLength(256);
        builder.Property(m => m.ApiKeyHint).HasMaxLength(8);
        builder.Property(m => m.DefaultCompletionArgs).HasColumnType("jsonb");
        builder.HasOne<Project>().WithMany().HasForeignKey(m => m.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}
