using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Accounts;

/// <summary>A person with user-level API keys. The id is the user's namespace id; the slug lives there.</summary>
public sealed class User : IHasId
{
    public required Guid Id { get; init; }
    public required string Username { get; init; }
    public required string Email { get; set; }
    public required DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A user-level API key. Only the SHA-256 hash of the secret is stored, as for project keys.</summary>
public sealed class UserApiKey : IHasId
{
    public required Guid Id { get; init; }
    public required Guid UserId { get; init; }
    public required string Name { get; init; }

    /// <summary>Lower-case hex SHA-256 of the whole key text (<c>afu_…</c>).</summary>
    public required string SecretHash { get; init; }

    /// <summary>The last four characters, so users can tell keys apart.</summary>
    public required string Hint { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? RevokedAt { get; set; }
}

public sealed class UserConfiguration : IEntityTypeConfiguration<User>
{
    public void Configure(EntityTypeBuilder<User> builder)
    {
        builder.HasKey(u => u.Id);
        builder.Property(u => u.Username).HasMaxLength(150);
        builder.Property(u => u.Email).HasMaxLength(254);
        builder.HasIndex(u => u.Username).IsUnique();
        // Deleting the namespace deletes the user, its keys and its memberships.
        builder.HasOne<ProjectNamespace>().WithOne().HasForeignKey<User>(u => u.Id).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class UserApiKeyConfiguration : IEntityTypeConfiguration<UserApiKey>
{
    public void Configure(EntityTypeBuilder<UserApiKey> builder)
    {
        builder.HasKey(k => k.Id);
        builder.Property(k => k.Name).HasMaxLength(200);
        builder.Property(k => k.SecretHash).HasMaxLength(64);
        builder.Property(k => k.Hint).HasMaxLength(8);
        builder.HasIndex(k => k.SecretHash).IsUnique();
        builder.HasIndex(k => new { k.UserId, k.Id });
        builder.HasOne<User>().WithMany().HasForeignKey(k => k.UserId).OnDelete(DeleteBehavior.Cascade);
    }
}
