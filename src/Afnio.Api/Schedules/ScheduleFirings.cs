using System.Text.Json;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Runs;
using Afnio.Data;
using Afnio.Data.Events;
using Afnio.Data.Jobs;
using Afnio.Data.Schedules;
using Afnio.Domain.Common;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Schedules;

/// <summary>What a firing did: the firing row, and the run and job when it fired.</summary>
public sealed record FiringResult(ScheduleFiring Firing, Data.Runs.Run? Run, Job? Job);

/// <summary>
/// Fires schedules. A firing locks the schedule's row, works out the planned time, and either creates
/// the run through <see cref="RunsApi.AddServerRunAsync"/> (the path of <c>POST /v1/runs</c>) or records
/// why it skipped; the firing row, the run, its job and the <c>schedule.fired</c>/<c>schedule.skipped</c>
/// event commit together. The row lock and the unique (schedule, trigger, planned time) key make a
/// planned time fire at most once, however many deliveries, misfires or racing processes try.
/// </summary>
public sealed partial class ScheduleFirings(
    AfnioDbContext db, TimeProvider clock, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json,
    ILogger<ScheduleFirings> log) : ISchedulerJobs
{
    /// <inheritdoc />
    public async Task FireAsync(Guid scheduleId, CancellationToken cancellationToken)
    {
        if (await FireAsync(scheduleId, ScheduleFiring.Cron, cancellationToken) is { } result)
        {
            LogFired(log, scheduleId, result.Firing.PlannedAt, result.Firing.Outcome, result.Firing.ReasonCode);
        }
    }

    /// <summary>
    /// Fires <paramref name="scheduleId"/>: for <see cref="ScheduleFiring.Cron"/>, at its latest planned
    /// time not yet handled (null when there is none); for <see cref="ScheduleFiring.Manual"/>, now.
    /// </summary>
    public async Task<FiringResult?> FireAsync(Guid scheduleId, string trigger, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        FiringResult result;
        await using (var tx = await db.Database.BeginTransactionAsync(ct))
        {
            var schedule = await db.Schedules.FromSql($"SELECT * FROM schedules WHERE id = {scheduleId} FOR UPDATE").AsNoTracking().SingleOrDefaultAsync(ct);
            if (schedule is null || (trigger == ScheduleFiring.Cron && !schedule.Enabled))
            {
                return null;
            }

            var (planned, missed) = trigger == ScheduleFiring.Manual
                ? (now, 0)
                : ScheduleCron.Of(schedule).LatestDue(schedule.LastPlannedAt ?? schedule.CreatedAt, now);
            if (planned is not { } at || await db.ScheduleFirings.AnyAsync(f => f.ScheduleId == scheduleId && f.Trigger == trigger && f.PlannedAt == at, ct))
            {
                return null;
            }

            result = await FireAtAsync(schedule, at, trigger, missed, now, ct);
            db.ScheduleFirings.Add(result.Firing);
            await db.SaveChangesAsync(ct);
            if (trigger == ScheduleFiring.Cron)
            {
                await db.Schedules.Where(s => s.Id == scheduleId).ExecuteUpdateAsync(s => s.SetProperty(x => x.LastPlannedAt, at), ct);
            }

            await db.PublishAsync(schedule.ProjectId, result.Run is null ? EventTypes.ScheduleSkipped : EventTypes.ScheduleFired, new
            {
                id = PrefixedId.Format(PrefixedId.Schedule, scheduleId),
                firing_id = PrefixedId.Format(PrefixedId.ScheduleFiring, result.Firing.Id),
                planned_at = at.ToUnixTimeSeconds(),
                trigger,
                run_id = PrefixedId.Format(PrefixedId.Run, result.Run?.Id),
                reason_code = result.Firing.ReasonCode,
            }, now, ct);
            await tx.CommitAsync(ct);
        }

        return result;
    }

    /// <summary>The schedule's stored run template, as the request <c>POST /v1/runs</c> binds.</summary>
    public CreateRunRequest Template(Schedule schedule) =>
        JsonSerializer.Deserialize<CreateRunRequest>(schedule.RunTemplate, json.Value.SerializerOptions)
            ?? throw new InvalidOperationException($"Schedule {schedule.Id} has an empty run template.");

    private async Task<FiringResult> FireAtAsync(Schedule schedule, DateTimeOffset planned, string trigger, int missed, DateTimeOffset now, CancellationToken ct)
    {
        ScheduleFiring Firing(string outcome, Guid? runId, string? code, string? reason) => new()
        {
            Id = PrefixedId.NewGuid(),
            ScheduleId = schedule.Id,
            ProjectId = schedule.ProjectId,
            PlannedAt = planned,
            Trigger = trigger,
            Outcome = outcome,
            RunId = runId,
            ReasonCode = code,
            Reason = reason,
            Missed = missed,
            CreatedAt = now,
        };

        if (!schedule.AllowOverlap && await ActiveRunAsync(schedule.Id, ct) is { } active)
        {
            return new(Firing(ScheduleFiring.Skipped, null, "previous_run_active",
                $"The previous run {PrefixedId.Format(PrefixedId.Run, active)} is still active, and the schedule does not allow overlap."), null, null);
        }

        var template = Template(schedule);
        var local = TimeZoneInfo.ConvertTime(planned, ScheduleCron.Of(schedule).Zone);
        var request = template with { Name = template.Name ?? DefaultRunName(schedule.Name, local) };
        // Nothing is written before the request is fully checked, so a refused template leaves the transaction clean.
        try
        {
            var (run, job) = await RunsApi.AddServerRunAsync(request, db, new ProjectContext(schedule.ProjectId, Guid.Empty), now, ct);
            return new(Firing(ScheduleFiring.Fired, run.Id, null, null), run, job);
        }
        catch (Exception e) when (e is ApiException or AfnioException)
        {
            db.ChangeTracker.Clear();
            var code = e is ApiException api ? api.Code : ((AfnioException)e).Code;
            return new(Firing(ScheduleFiring.Skipped, null, code, $"The run template was refused: {e.Message}"), null, null);
        }
    }

    /// <summary>The name of a run a schedule starts when its template names none: the schedule's name and the local planned time.</summary>
    public static string DefaultRunName(string scheduleName, DateTimeOffset localPlanned)
    {
        var suffix = $" {localPlanned:yyyy-MM-dd HH:mm}";
        return (scheduleName.Length + suffix.Length > 180 ? scheduleName[..(180 - suffix.Length)] : scheduleName) + suffix;
    }

    /// <summary>The schedule's run whose job has not finished, if any.</summary>
    public Task<Guid?> ActiveRunAsync(Guid scheduleId, CancellationToken ct) =>
        (from f in db.ScheduleFirings
         where f.ScheduleId == scheduleId && f.RunId != null
         join r in db.Runs on f.RunId equals r.Id
         join j in db.Jobs on r.JobId equals j.Id
         where j.Status == JobStatus.Queued || j.Status == JobStatus.Running || j.Status == JobStatus.Cancelling
         select (Guid?)r.Id).FirstOrDefaultAsync(ct);

    [LoggerMessage(Level = LogLevel.Information, Message = "Schedule {ScheduleId} at {PlannedAt}: {Outcome} {Reason}")]
    private static partial void LogFired(ILogger logger, Guid scheduleId, DateTimeOffset plannedAt, string outcome, string? reason);
}
