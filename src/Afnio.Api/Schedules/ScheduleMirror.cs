using Afnio.Data;
using Afnio.Data.Schedules;
using Hangfire;
using Hangfire.Storage;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Schedules;

/// <summary>
/// Keeps Hangfire's recurring jobs a mirror of the schedules table: <c>schedule:{id}</c> exists,
/// with the schedule's cron and time zone, exactly for the enabled schedules.
/// </summary>
public sealed class ScheduleMirror(IRecurringJobManager recurring, JobStorage storage)
{
    private const string Prefix = "schedule:";

    /// <summary>Brings one schedule's recurring job in line with its row (null: the schedule is gone).</summary>
    public void Sync(Guid scheduleId, Schedule? schedule)
    {
        var id = ISchedulerJobs.RecurringJobId(scheduleId);
        if (schedule is not { Enabled: true })
        {
            recurring.RemoveIfExists(id);
            return;
        }

        var cron = ScheduleCron.Of(schedule);
        recurring.AddOrUpdate<ISchedulerJobs>(id, ISchedulerJobs.Queue, j => j.FireAsync(scheduleId, CancellationToken.None), schedule.Cron,
            new RecurringJobOptions { TimeZone = cron.Zone, MisfireHandling = MisfireHandlingMode.Relaxed });
    }

    /// <summary>Re-syncs every schedule and removes recurring jobs whose schedule is gone; returns how many were changed.</summary>
    public async Task<int> ReconcileAsync(AfnioDbContext db, CancellationToken ct)
    {
        var schedules = await db.Schedules.AsNoTracking().ToDictionaryAsync(s => ISchedulerJobs.RecurringJobId(s.Id), ct);
        List<RecurringJobDto> mirrored;
        using (var connection = storage.GetConnection())
        {
            mirrored = connection.GetRecurringJobs().Where(j => j.Id.StartsWith(Prefix, StringComparison.Ordinal)).ToList();
        }

        var changed = 0;
        foreach (var job in mirrored.Where(j => !schedules.TryGetValue(j.Id, out var s) || !s.Enabled))
        {
            recurring.RemoveIfExists(job.Id);
            changed++;
        }

        var current = mirrored.ToDictionary(j => j.Id);
        foreach (var (id, schedule) in schedules.Where(s => s.Value.Enabled))
        {
            if (current.TryGetValue(id, out var job) && job.Cron == schedule.Cron && job.TimeZoneId == ScheduleCron.Of(schedule).Zone.Id
                && job.Job?.Queue == ISchedulerJobs.Queue && job.Error is null)
            {
                continue;
            }

            Sync(schedule.Id, schedule);
            changed++;
        }

        return changed;
    }
}

/// <summary>Reconciles the recurring jobs with the schedules table on start-up, then every few minutes.</summary>
public sealed partial class ScheduleReconciler(
    IServiceScopeFactory scopes, TimeProvider clock, ILogger<ScheduleReconciler> log) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        do
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<AfnioDbContext>();
                var changed = await scope.ServiceProvider.GetRequiredService<ScheduleMirror>().ReconcileAsync(db, stoppingToken);
                if (changed > 0)
                {
                    LogReconciled(log, changed);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogFailed(log, e);
            }
        }
        while (await DelayAsync(stoppingToken));
    }

    private async Task<bool> DelayAsync(CancellationToken ct)
    {
        try
        {
            await Task.Delay(Interval, clock, ct);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Re-synced {Count} schedule recurring jobs with the schedules table")]
    private static partial void LogReconciled(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not reconcile the schedules' recurring jobs")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
