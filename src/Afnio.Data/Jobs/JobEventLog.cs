using System.Text.Json;
using Afnio.Data.Events;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.Jobs;

/// <summary>
/// Appends job events. Call inside the transaction that made the change the event reports. Each
/// append also notifies <see cref="JobNotifications.Channel"/>, delivered on commit, which wakes the
/// job's event streams and long polls.
/// </summary>
public static class JobEventLog
{
    /// <summary>Event data is shown to API users as stored: snake_case.</summary>
    public static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Numbers the event from the job row (locking it until commit) and stores it.</summary>
    public static async Task AppendEventAsync(
        this AfnioDbContext db, Guid jobId, string type, object data, DateTimeOffset now, CancellationToken ct)
    {
        var json = JsonSerializer.Serialize(data, Json);
        await db.Database.ExecuteSqlAsync($"""
            WITH j AS (UPDATE jobs SET event_count = event_count + 1 WHERE id = {jobId} RETURNING event_count)
            INSERT INTO job_events (id, job_id, seq, type, data, created_at)
            SELECT {PrefixedId.NewGuid()}, {jobId}, j.event_count, {type}, {json}::jsonb, {now} FROM j;
            SELECT pg_notify({JobNotifications.Channel}, {JobNotifications.JobPayload(jobId)});
            """, ct);
        if (JobEventTypes.IsTerminal(type))
        {
            await PublishEndAsync(db, jobId, type, now, ct);
        }
    }

    // A project job's end is also a project event (job.succeeded, job.failed, job.cancelled), in the same transaction.
    private static async Task PublishEndAsync(AfnioDbContext db, Guid jobId, string type, DateTimeOffset now, CancellationToken ct)
    {
        var job = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => new { j.ProjectId, j.Type, j.ErrorCode }).SingleOrDefaultAsync(ct);
        if (job?.ProjectId is { } projectId)
        {
            await db.PublishAsync(projectId, type, new { id = PrefixedId.Format(PrefixedId.Job, jobId), job_type = job.Type, error_code = job.ErrorCode }, now, ct);
        }
    }

    /// <summary>Appends several events in order with one statement, numbered after the job's last.</summary>
    public static async Task AppendEventsAsync(
        this AfnioDbContext db, Guid jobId, IReadOnlyList<(string Type, object Data)> events, DateTimeOffset now, CancellationToken ct)
    {
        if (events.Count == 0)
        {
            return;
        }

        var ids = events.Select(_ => PrefixedId.NewGuid()).ToArray();
        var types = events.Select(e => e.Type).ToArray();
        var data = events.Select(e => JsonSerializer.Serialize(e.Data, Json)).ToArray();
        await db.Database.ExecuteSqlAsync($"""
            WITH j AS (UPDATE jobs SET event_count = event_count + {events.Count} WHERE id = {jobId} RETURNING event_count - {events.Count} AS last)
            INSERT INTO job_events (id, job_id, seq, type, data, created_at)
            SELECT t.id, {jobId}, j.last + t.n, t.type, t.data::jsonb, {now}
            FROM j, unnest({ids}::uuid[], {types}::text[], {data}::text[]) WITH ORDINALITY AS t(id, type, data, n);
            SELECT pg_notify({JobNotifications.Channel}, {JobNotifications.JobPayload(jobId)});
            """, ct);
    }
}
