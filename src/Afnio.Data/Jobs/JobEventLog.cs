using System.Text.Json;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.Jobs;

/// <summary>Appends job events. Call inside the transaction that made the change the event reports.</summary>
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
            SELECT {PrefixedId.NewGuid()}, {jobId}, j.event_count, {type}, {json}::jsonb, {now} FROM j
            """, ct);
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
            FROM j, unnest({ids}::uuid[], {types}::text[], {data}::text[]) WITH ORDINALITY AS t(id, type, data, n)
            """, ct);
    }
}
