using Afnio.Data;
using Afnio.Data.Events;
using Afnio.Data.Webhooks;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Afnio.Worker.Webhooks;

/// <summary>
/// Hands due webhook deliveries to Hangfire. It wakes on the outbox's notification (sent when an
/// event commits), at the next planned retry, or at the fallback poll, and claims due deliveries
/// within per-project and per-endpoint limits on what is in flight, taking turns on an advisory lock so
/// several Worker processes share them without doubles or exceeding a limit (decision 015). A
/// delivery handed over but not attempted (its job lost in a crash) is handed over again later.
/// </summary>
public sealed partial class WebhookDispatcher(
    IDbContextFactory<AfnioDbContext> contexts, IBackgroundJobClient hangfire, IConfiguration configuration, TimeProvider clock,
    IOptions<WebhookOptions> options, ILogger<WebhookDispatcher> log) : BackgroundService
{
    private const int BatchSize = 200;

    /// <summary>The transaction-level advisory lock dispatchers take turns on ("AfnioWH").</summary>
    private const long DispatchLock = 0x41666E696F5748;
    private static readonly TimeSpan MinimumWait = TimeSpan.FromMilliseconds(50);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var poll = TimeSpan.FromSeconds(Math.Max(0.05, options.Value.PollIntervalSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var listener = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(configuration.GetPostgresConnectionString())
                {
                    ApplicationName = "afnio-webhooks",
                    KeepAlive = 30,
                }.ConnectionString);
                await listener.OpenAsync(stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {EventOutbox.Channel}", listener))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                while (!stoppingToken.IsCancellationRequested)
                {
                    var wait = await DispatchDueAsync(stoppingToken);
                    if (wait > TimeSpan.Zero)
                    {
                        await listener.WaitAsync(wait < poll ? wait : poll, stoppingToken);
                    }
                }
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                LogFailed(log, e);
                await Task.Delay(TimeSpan.FromSeconds(1), clock, stoppingToken);
            }
        }
    }

    /// <summary>Enqueues every due delivery there is a slot for; returns how long until the next one is due (zero when more are waiting now).</summary>
    private async Task<TimeSpan> DispatchDueAsync(CancellationToken ct)
    {
        var settings = options.Value;
        var now = clock.GetUtcNow();
        var stale = now - TimeSpan.FromSeconds(settings.RedispatchAfterSeconds);
        var perProject = Math.Max(1, settings.MaxInFlightPerProject);
        var perEndpoint = Math.Max(1, settings.MaxInFlightPerEndpoint);
        await using var db = await contexts.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // The limits count what every Worker has in flight, so dispatchers take turns: a second one
        // waits here, then sees the first one's dispatches (they are short transactions).
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({DispatchLock})", ct);
        // In flight: handed to Hangfire recently, or leased by an attempt. Due ones with a free slot on
        // their endpoint and their project are taken round-robin across projects: every project's
        // oldest first, then every project's second, so a project with a backlog never delays another.
        var due = await db.Database.SqlQuery<Guid>($"""
            WITH pending AS (
                SELECT id, project_id, endpoint_id, next_attempt_at,
                    (dispatched_at IS NOT NULL AND dispatched_at >= {stale}) OR (lease_expires_at IS NOT NULL AND lease_expires_at >= {now}) AS in_flight
                FROM webhook_deliveries
                WHERE status = 'pending' AND (next_attempt_at <= {now} OR dispatched_at IS NOT NULL OR lease_expires_at IS NOT NULL)),
            busy_endpoints AS (SELECT endpoint_id, count(*) AS n FROM pending WHERE in_flight GROUP BY endpoint_id),
            busy_projects AS (SELECT project_id, count(*) AS n FROM pending WHERE in_flight GROUP BY project_id),
            by_endpoint AS (
                SELECT c.id, c.project_id, c.next_attempt_at,
                    COALESCE(e.n, 0) + row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at, c.id) AS endpoint_slot
                FROM pending c LEFT JOIN busy_endpoints e ON e.endpoint_id = c.endpoint_id
                WHERE NOT c.in_flight AND c.next_attempt_at <= {now}),
            by_project AS (
                SELECT b.id, b.next_attempt_at,
                    COALESCE(p.n, 0) + row_number() OVER (PARTITION BY b.project_id ORDER BY b.next_attempt_at, b.id) AS project_slot
                FROM by_endpoint b LEFT JOIN busy_projects p ON p.project_id = b.project_id
                WHERE b.endpoint_slot <= {perEndpoint})
            UPDATE webhook_deliveries d SET dispatched_at = {now}
            FROM (SELECT id FROM by_project WHERE project_slot <= {perProject}
                  ORDER BY project_slot, next_attempt_at, id LIMIT {BatchSize}) pick
            WHERE d.id = pick.id AND d.status = 'pending'
            RETURNING d.id AS "Value"
            """).ToListAsync(ct);
        await tx.CommitAsync(ct);
        foreach (var id in due)
        {
            hangfire.Enqueue<IWebhookJobs>(IWebhookJobs.Queue, j => j.DeliverAsync(id, CancellationToken.None));
        }

        if (due.Count == BatchSize)
        {
            return TimeSpan.Zero;
        }

        // Due deliveries left waiting for a slot are woken by the notification of the attempt that frees it.
        var next = await db.WebhookDeliveries
            .Where(d => d.Status == WebhookDelivery.Pending && d.NextAttemptAt > now && d.DispatchedAt == null
                && (d.LeaseExpiresAt == null || d.LeaseExpiresAt < now))
            .MinAsync(d => d.NextAttemptAt, ct);
        return next is { } at ? Max(at - clock.GetUtcNow(), MinimumWait) : TimeSpan.MaxValue;
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    [LoggerMessage(Level = LogLevel.Warning, Message = "The webhook dispatcher lost its database connection; retrying")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
