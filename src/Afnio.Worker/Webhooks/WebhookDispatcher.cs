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
/// with <c>FOR UPDATE SKIP LOCKED</c>, so several Worker processes share them without doubles. A
/// delivery handed over but not attempted (its job lost in a crash) is handed over again later.
/// </summary>
public sealed partial class WebhookDispatcher(
    IDbContextFactory<AfnioDbContext> contexts, IBackgroundJobClient hangfire, IConfiguration configuration, TimeProvider clock,
    IOptions<WebhookOptions> options, ILogger<WebhookDispatcher> log) : BackgroundService
{
    private const int BatchSize = 200;
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

    /// <summary>Enqueues every due delivery; returns how long until the next one is due (zero when more are waiting now).</summary>
    private async Task<TimeSpan> DispatchDueAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var stale = now - TimeSpan.FromSeconds(options.Value.RedispatchAfterSeconds);
        await using var db = await contexts.CreateDbContextAsync(ct);
        var due = await db.Database.SqlQuery<Guid>($"""
            UPDATE webhook_deliveries SET dispatched_at = {now}
            WHERE id IN (
                SELECT id FROM webhook_deliveries
                WHERE status = 'pending' AND next_attempt_at <= {now}
                  AND (dispatched_at IS NULL OR dispatched_at < {stale})
                  AND (lease_expires_at IS NULL OR lease_expires_at < {now})
                ORDER BY next_attempt_at
                LIMIT {BatchSize}
                FOR UPDATE SKIP LOCKED)
            RETURNING id AS "Value"
            """).ToListAsync(ct);
        foreach (var id in due)
        {
            hangfire.Enqueue<IWebhookJobs>(IWebhookJobs.Queue, j => j.DeliverAsync(id, CancellationToken.None));
        }

        if (due.Count == BatchSize)
        {
            return TimeSpan.Zero;
        }

        var next = await db.WebhookDeliveries
            .Where(d => d.Status == WebhookDelivery.Pending && d.DispatchedAt == null && (d.LeaseExpiresAt == null || d.LeaseExpiresAt < now))
            .MinAsync(d => d.NextAttemptAt, ct);
        // Never spin: a row that is due but could not be taken (locked by another dispatcher) is looked at again shortly.
        return next is { } at ? Max(at - clock.GetUtcNow(), MinimumWait) : TimeSpan.MaxValue;
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    [LoggerMessage(Level = LogLevel.Warning, Message = "The webhook dispatcher lost its database connection; retrying")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
