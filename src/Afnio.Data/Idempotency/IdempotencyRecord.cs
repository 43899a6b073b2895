using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Idempotency;

/// <summary>
/// The stored outcome of a POST sent with an <c>Idempotency-Key</c>, scoped to the caller's key.
/// A row without a <see cref="ResponseStatus"/> is a request still in flight.
/// </summary>
public sealed class IdempotencyRecord
{
    public required string Scope { get; init; }
    public required string Key { get; init; }
    public required string Method { get; init; }
    public required string Path { get; init; }

    /// <summary>Hex SHA-256 of method, path and body: the same key with another request is refused.</summary>
    public required string RequestHash { get; init; }

    public int? ResponseStatus { get; set; }
    public string? ResponseContentType { get; set; }
    public byte[]? ResponseBody { get; set; }
    public string? ResponseLocation { get; set; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset LockedUntil { get; set; }
    public required DateTimeOffset ExpiresAt { get; set; }
}

public sealed class IdempotencyRecordConfiguration : IEntityTypeConfiguration<IdempotencyRecord>
{
    public void Configure(EntityTypeBuilder<IdempotencyRecord> builder)
    {
        builder.HasKey(r => new { r.Scope, r.Key });
        builder.Property(r => r.Scope).HasMaxLength(64);
        builder.Property(r => r.Key).HasMaxLength(255);
        builder.Property(r => r.Method).HasMaxLength(16);
        builder.Property(r => r.Path).HasMaxLength(2048);
        builder.Property(r => r.RequestHash).HasMaxLength(64);
        builder.HasIndex(r => r.ExpiresAt);
    }
}
