using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Events;

/// <summary>
/// A project event (the outbox): written in the transaction of the change it reports, listed by
/// <c>GET /v1/events</c> and delivered to webhook endpoints. <see cref="Payload"/> is the exact JSON
/// text every delivery sends and signs.
/// </summary>
public sealed class OutboxEvent : IHasId
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Type { get; init; }
    public required string Payload { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

public sealed class OutboxEventConfiguration : IEntityTypeConfiguration<OutboxEvent>
{
    public void Configure(EntityTypeBuilder<OutboxEvent> builder)
    {
        builder.ToTable("events");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Type).HasMaxLength(64);
        builder.HasIndex(e => new { e.ProjectId, e.Id });
        builder.HasIndex(e => new { e.ProjectId, e.Type, e.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(e => e.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}
