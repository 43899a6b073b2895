using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Accounts;

/// <summary>An organization: a namespace whose members reach its projects. The id is its namespace id.</summary>
public sealed class Organization : IHasId
{
    public required Guid Id { get; init; }
    public required string DisplayName { get; set; }
    public required DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A user's membership of an organization.</summary>
public sealed class OrganizationMember
{
    public required Guid OrganizationId { get; init; }
    public required Guid UserId { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class OrganizationConfiguration : IEntityTypeConfiguration<Organization>
{
    public void Configure(EntityTypeBuilder<Organization> builder)
    {
        builder.HasKey(o => o.Id);
        builder.Property(o => o.DisplayName).HasMaxLength(200);
        builder.HasOne<ProjectNamespace>().WithOne().HasForeignKey<Organization>(o => o.Id).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class OrganizationMemberConfiguration : IEntityTypeConfiguration<OrganizationMember>
{
    public void Configure(EntityTypeBuilder<OrganizationMember> builder)
    {
        builder.HasKey(m => new { m.OrganizationId, m.UserId });
        // Which organizations a user belongs to: every user-key call asks.
        builder.HasIndex(m => m.UserId);
        builder.HasOne<Organization>().WithMany().HasForeignKey(m => m.OrganizationId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<User>().WithMany().HasForeignKey(m => m.UserId).OnDelete(DeleteBehavior.Cascade);
    }
}
