using Afnio.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Afnio.Worker.Jobs;

/// <summary>
/// Works around a stall in Hangfire.PostgreSql 1.21 long polling: a worker that has already
/// fetched a job can wait, before starting it, for one more <c>new_job</c> notification (its
/// listener ignores cancellation). This looks several times a second for a job fetched but still
/// not started and, when it finds one, sends that notification. The check is one small query on
/// Hangfire's queue table. See docs/decisions/008-hangfire-fetch-watchdog.md.
/// </summary>
public sealed partial class FetchWatchdog(
    IDbContextFactory<AfnioDbContext> contexts, TimeProvider clock, ILogger<FetchWatchdog> log) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private static readonly string StalledQuery = $"""
        SELECT count(*)::int AS "Value" FROM {AfnioDataSetup.HangfireSchema}.jobqueue q
        JOIN {AfnioDataSetup.HangfireSchema}.job j ON j.id = q.jobid
        WHERE q.fetchedat IS NOT NULL AND q.fetchedat < NOW() - INTERVAL '100 milliseconds' AND j.statename = 'Enqueued'
        """;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await using var db = await contexts.CreateDbContextAsync(stoppingToken);
                var stalled = await db.Database.SqlQueryRaw<int>(StalledQuery).SingleAsync(stoppingToken);
                if (stalled > 0)
                {
                    await db.Database.ExecuteSqlRawAsync("NOTIFY new_job", stoppingToken);
                    LogNudged(log, stalled);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogFailed(log, e);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Count} fetched Hangfire jobs had not started; notified the workers")]
    private static partial void LogNudged(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The fetch watchdog could not check the queue")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
