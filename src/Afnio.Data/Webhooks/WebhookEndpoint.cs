using Afnio.Data.Events;
using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Webhooks;

/// <summary>
/// A URL that receives a project's events, signed per Standard Webhooks. Secrets are stored
/// encrypted (Data Protection) and shown once; during a rotation the previous one signs too.
/// </summary>
public sealed class WebhookEndpoint : IHasId
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Url { get; set; }
    public string? Description { get; set; }

    /// <summary>The event types delivered here; <c>*</c> means all.</summary>
    public required string[] EventTypes { get; set; }

    public required bool Enabled { get; set; }

    /// <summary>Why the service disabled it (<c>gone</c>, <c>failing</c>); null when a user did, or it is enabled.</summary>
    public string? DisabledReason { get; set; }

    public DateTimeOffset? DisabledAt { get; set; }

    /// <summary>The signing secret (<c>whsec_…</c>), encrypted.</summary>
    public required string Secret { get; set; }

    /// <summary>The secret before the last rotation, encrypted; it signs too until <see cref="PreviousSecretExpiresAt"/>.</summary>
    public string? PreviousSecret { get; set; }

    public DateTimeOffset? PreviousSecretExpiresAt { get; set; }

    /// <summary>When the current run of failed attempts began; null after a success.</summary>
    public DateTimeOffset? FailingSince { get; set; }

    /// <summary>Failed attempts since the last success; past a threshold, attempts get the shorter timeout.</summary>
    public int ConsecutiveFailures { get; set; }

    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>
/// One event on its way to one endpoint: pending until an attempt gets a 2xx (succeeded) or the
/// retry schedule runs out (failed). <see cref="DispatchedAt"/> marks it handed to a Hangfire job.
/// </summary>
public sealed class WebhookDelivery : IHasId
{
    public const string Pending = "pending";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";

    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required Guid EventId { get; init; }
    public required Guid EndpointId { get; init; }
    public required string Status { get; set; }
    public int AttemptCount { get; set; }
    public DateTimeOffset? NextAttemptAt { get; set; }

    /// <summary>The trigger of the next attempt: <c>scheduled</c>, or <c>manual</c> after a retry request.</summary>
    public string NextTrigger { get; set; } = WebhookAttempt.Scheduled;

    public DateTimeOffset? DispatchedAt { get; set; }
    public string? LeaseOwner { get; set; }
    public DateTimeOffset? LeaseExpiresAt { get; set; }
    public int? LastStatusCode { get; set; }
    public string? LastError { get; set; }
    public DateTimeOffset? SucceededAt { get; set; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>One HTTP attempt of a delivery, as the attempt log shows it.</summary>
public sealed class WebhookAttempt : IHasId
{
    public const string Scheduled = "scheduled";
    public const string Manual = "manual";
    public const string Sending = "sending";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";

    /// <summary>The worker stopped while this attempt was in flight; the receiver may or may not have it.</summary>
    public const string Interrupted = "interrupted";

    public required Guid Id { get; init; }
    public required Guid DeliveryId { get; init; }
    public required Guid ProjectId { get; init; }
    public required int Number { get; init; }
    public required string Trigger { get; init; }
    public required string Status { get; set; }
    public required string Url { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public int? DurationMs { get; set; }
    public int? ResponseStatus { get; set; }

    /// <summary>The start of the response body (at most 2,048 characters).</summary>
    public string? ResponseBody { get; set; }

    public string? Error { get; set; }
}

public sealed class WebhookEndpointConfiguration : IEntityTypeConfiguration<WebhookEndpoint>
{
    public void Configure(EntityTypeBuilder<WebhookEndpoint> builder)
    {
        builder.ToTable("webhook_endpoints");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Url).HasMaxLength(2048);
        builder.Property(e => e.Description).HasMaxLength(2000);
        builder.Property(e => e.DisabledReason).HasMaxLength(32);
        builder.HasIndex(e => new { e.ProjectId, e.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(e => e.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class WebhookDeliveryConfiguration : IEntityTypeConfiguration<WebhookDelivery>
{
    public void Configure(EntityTypeBuilder<WebhookDelivery> builder)
    {
        builder.ToTable("webhook_deliveries");
        builder.HasKey(d => d.Id);
        builder.Property(d => d.Status).HasMaxLength(16);
        builder.Property(d => d.NextTrigger).HasMaxLength(16);
        builder.Property(d => d.LeaseOwner).HasMaxLength(200);
        builder.Property(d => d.LastError).HasMaxLength(4000);
        builder.HasIndex(d => new { d.EventId, d.EndpointId }).IsUnique();
        builder.HasIndex(d => new { d.EndpointId, d.Id });
        // The dispatcher's scan: only pending deliveries are in this index.
        builder.HasIndex(d => d.NextAttemptAt).HasFilter("status = 'pending'").HasDatabaseName("ix_webhook_deliveries_due");
        builder.HasOne<WebhookEndpoint>().WithMany().HasForeignKey(d => d.EndpointId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<OutboxEvent>().WithMany().HasForeignKey(d => d.EventId).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class WebhookAttemptConfiguration : IEntityTypeConfiguration<WebhookAttempt>
{
    public void Configure(EntityTypeBuilder<WebhookAttempt> builder)
    {
        builder.ToTable("webhook_attempts");
        builder.HasKey(a => a.Id);
        builder.Property(a => a.Trigger).HasMaxLength(16);
        builder.Property(a => a.Status).HasMaxLength(16);
        builder.Property(a => a.Url).HasMaxLength(2048);
        builder.Property(a => a.ResponseBody).HasMaxLength(2048);
        builder.Property(a => a.Error).HasMaxLength(4000);
        builder.HasIndex(a => new { a.DeliveryId, a.Number });
        builder.HasOne<WebhookDelivery>().WithMany().HasForeignKey(a => a.DeliveryId).OnDelete(DeleteBehavior.Cascade);
    }
}
