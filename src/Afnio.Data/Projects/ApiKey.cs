using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Projects;

/// <summary>A project API key. Only the SHA-256 hash of the secret is stored.</summary>
public sealed class ApiKey
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Name { get; init; }

    /// <summary>Lower-case hex SHA-256 of the whole key text (<c>afn_…</c>).</summary>
    public required string SecretHash { get; init; }

    /// <summary>The last four characters, so users can tell keys apart.</summary>
    public required string Hint { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? RevokedAt { get; set; }
}

public sealed class ApiKeyConfiguration : IEntityTypeConfiguration<ApiKey>
{
    public void Configure(EntityTypeBuilder<ApiKey> builder)
    {
        builder.HasKey(k => k.Id);
        builder.Property(k => k.Name).HasMaxLength(200);
        builder.Property(k => k.SecretHash).HasMaxLength(64);
        builder.Property(k => k.Hint).HasMaxLength(8);
        builder.HasIndex(k => k.SecretHash).IsUnique();
        builder.HasIndex(k => new { k.ProjectId, k.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(k => k.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}
