using System.Text.Json;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.Events;

/// <summary>The event types a project publishes (to <c>GET /v1/events</c> and webhook endpoints).</summary>
public static class EventTypes
{
    public const string JobSucceeded = "job.succeeded";
    public const string JobFailed = "job.failed";
    public const string JobCancelled = "job.cancelled";
    public const string RunEpochCompleted = "run.epoch_completed";
    public const string RunSucceeded = "run.succeeded";
    public const string RunFailed = "run.failed";
    public const string RunCancelled = "run.cancelled";
    public const string RunStoppedBudget = "run.stopped_budget";
    public const string ProgramPromoted = "program.promoted";
    public const string ScheduleFired = "schedule.fired";
    public const string ScheduleSkipped = "schedule.skipped";
    public const string WebhookEndpointDisabled = "webhook_endpoint.disabled";

    /// <summary>An endpoint subscribed to this receives every type.</summary>
    public const string Any = "*";

    public static readonly IReadOnlyList<string> All =
    [
        JobSucceeded, JobFailed, JobCancelled, RunEpochCompleted, RunSucceeded, RunFailed, RunCancelled, RunStoppedBudget,
        ProgramPromoted, ScheduleFired, ScheduleSkipped, WebhookEndpointDisabled,
    ];
}

/// <summary>
/// Writes project events in the caller's transaction, together with one pending delivery per
/// subscribed endpoint: the event commits with the change it reports, or not at all. A notification
/// on <see cref="Channel"/> (sent by PostgreSQL at commit) wakes the webhook dispatcher.
/// </summary>
public static class EventOutbox
{
    /// <summary>The LISTEN/NOTIFY channel that says new deliveries are due.</summary>
    public const string Channel = "afnio_webhooks";

    /// <summary>Payloads are snake_case JSON, compact: the exact text is what gets signed.</summary>
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>
    /// Records event <paramref name="type"/> of <paramref name="projectId"/> with thin <paramref name="data"/>
    /// (an <c>id</c> and a few fields). Call inside the transaction that makes the change.
    /// </summary>
    public static async Task<Guid> PublishAsync(
        this AfnioDbContext db, Guid projectId, string type, object data, DateTimeOffset now, CancellationToken ct)
    {
        var id = PrefixedId.NewGuid();
        var payload = JsonSerializer.Serialize(new EventPayload(PrefixedId.Format(PrefixedId.Event, id), "event", type, now.ToUnixTimeSeconds(), data), Json);
        var endpoints = await db.WebhookEndpoints.Where(e => e.ProjectId == projectId && e.Enabled
                && (e.EventTypes.Contains(type) || e.EventTypes.Contains(EventTypes.Any)))
            .OrderBy(e => e.Id).Select(e => e.Id).ToArrayAsync(ct);
        var deliveryIds = endpoints.Select(_ => PrefixedId.NewGuid()).ToArray();
        await db.Database.ExecuteSqlAsync($"""
            WITH e AS (
                INSERT INTO events (id, project_id, type, payload, created_at) VALUES ({id}, {projectId}, {type}, {payload}, {now}) RETURNING id)
            INSERT INTO webhook_deliveries (id, project_id, event_id, endpoint_id, status, attempt_count, next_attempt_at, next_trigger, created_at, updated_at)
            SELECT d.id, {projectId}, e.id, d.endpoint_id, 'pending', 0, {now}, 'scheduled', {now}, {now}
            FROM e, unnest({deliveryIds}::uuid[], {endpoints}::uuid[]) AS d(id, endpoint_id)
            """, ct);
        if (endpoints.Length > 0)
        {
            await NotifyAsync(db, ct);
        }

        return id;
    }

    /// <summary>Wakes the dispatchers when the transaction commits (PostgreSQL holds notifications until then).</summary>
    public static Task NotifyAsync(AfnioDbContext db, CancellationToken ct) =>
        db.Database.ExecuteSqlAsync($"SELECT pg_notify({Channel}, '')", ct);

    private sealed record EventPayload(string Id, string Object, string Type, long CreatedAt, object Data);
}
