using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Accounts;

/// <summary>
/// A slug that owns projects: a user's or an organization's. One table for both kinds keeps slugs
/// unique across users and organizations, as the afnio client's URLs (<c>/api/v0/{namespace}/…</c>)
/// need. A user and an organization share their namespace's id.
/// </summary>
public sealed class ProjectNamespace : IHasId
{
    public const string UserKind = "user";
    public const string OrganizationKind = "organization";

    public required Guid Id { get; init; }
    public required string Slug { get; init; }

    /// <summary><see cref="UserKind"/> or <see cref="OrganizationKind"/>.</summary>
    public required string Kind { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class ProjectNamespaceConfiguration : IEntityTypeConfiguration<ProjectNamespace>
{
    public void Configure(EntityTypeBuilder<ProjectNamespace> builder)
    {
        builder.HasKey(n => n.Id);
        builder.Property(n => n.Slug).HasMaxLength(100);
        builder.Property(n => n.Kind).HasMaxLength(16);
        builder.HasIndex(n => n.Slug).IsUnique();
    }
}
