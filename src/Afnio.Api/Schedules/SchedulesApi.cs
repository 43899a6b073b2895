using System.Text.Json;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Runs;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Schedules;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Schedules;

/// <summary>
/// Schedules: "every night at 02:00 Europe/Rome, train this program on the latest data". The table
/// is the source of truth; Hangfire's recurring jobs mirror it (see <see cref="ScheduleMirror"/>).
/// </summary>
public static class SchedulesApi
{
    /// <summary>Schedules one project may have.</summary>
    public const int MaxSchedules = 100;

    private const int RecentFirings = 10;

    public static RouteGroupBuilder MapSchedules(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/schedules").WithTags("Schedules");
        group.MapPost("/", CreateSchedule).WithName("createSchedule")
            .WithDescription("Creates a schedule. The run template is checked now exactly as POST /v1/runs checks it; each firing takes the dataset's latest version.");
        group.MapGet("/", ListSchedules).WithName("listSchedules");
        group.MapGet("/{id}", GetSchedule).WithName("retrieveSchedule");
        group.MapPatch("/{id}", UpdateSchedule).WithName("updateSchedule")
            .WithDescription("Changes the schedule (enable, disable, cron, template). Planned times before the change are not fired.");
        group.MapDelete("/{id}", DeleteSchedule).WithName("deleteSchedule");
        group.MapPost("/{id}/trigger", TriggerSchedule).WithName("triggerSchedule").ProducesProblem(StatusCodes.Status409Conflict)
            .WithDescription("Fires the schedule now, through the same path as a planned firing: 202 with the firing and its run, or 409 when it is skipped.");
        group.MapGet("/{id}/firings", ListFirings).WithName("listScheduleFirings")
            .WithDescription("Every planned time handled (fired or skipped, with why), newest first.");
        return v1;
    }

    public static async Task<Created<ScheduleResponse>> CreateSchedule(
        CreateScheduleRequest request, AfnioDbContext db, ProjectContext project, ScheduleMirror mirror,
        IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, TimeProvider clock, CancellationToken ct)
    {
        var name = RunsApi.Text(request.Name ?? throw ApiException.BadRequest("missing_field", "'name' is required.", "name"), 180, "name");
        var description = request.Description is null ? null : RunsApi.Text(request.Description, 2000, "description");
        var cron = request.Cron ?? throw ApiException.BadRequest("missing_field", "'cron' is required, e.g. \"0 2 * * *\" for 02:00 every day.", "cron");
        var timeZone = request.Timezone ?? "UTC";
        var now = clock.GetUtcNow();
        CheckCron(cron, timeZone, now);
        var template = await CheckTemplateAsync(request.RunTemplate, db, project, json.Value.SerializerOptions, now, ct);
        if (await db.Schedules.CountAsync(s => s.ProjectId == project.ProjectId, ct) >= MaxSchedules)
        {
            throw ApiException.BadRequest("too_many_schedules", $"A project may have at most {MaxSchedules} schedules.");
        }

        var schedule = new Schedule
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = project.ProjectId,
            Name = name,
            Description = description,
            Cron = ScheduleCron.Normalize(cron),
            TimeZone = timeZone,
            RunTemplate = template,
            Enabled = request.Enabled ?? true,
            AllowOverlap = request.AllowOverlap ?? false,
            CreatedAt = now,
            UpdatedAt = now,
        };
        db.Schedules.Add(schedule);
        await db.SaveChangesAsync(ct);
        mirror.Sync(schedule.Id, schedule);
        var response = await ToResponseAsync(db, schedule, now, ct);
        return TypedResults.Created($"/v1/schedules/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<ScheduleResponse>>> ListSchedules(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var (rows, limit) = await db.Schedules.AsNoTracking().Where(s => s.ProjectId == project.ProjectId).FetchPageAsync(PrefixedId.Schedule, page, ct);
        return TypedResults.Ok(Paging.ToList(await ToResponsesAsync(db, rows, clock.GetUtcNow(), ct), limit, s => s.Id));
    }

    public static async Task<Ok<ScheduleResponse>> GetSchedule(string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct) =>
        TypedResults.Ok(await ToResponseAsync(db, await FindAsync(db, project, id, ct), clock.GetUtcNow(), ct));

    public static async Task<Ok<ScheduleResponse>> UpdateSchedule(
        string id, UpdateScheduleRequest request, AfnioDbContext db, ProjectContext project, ScheduleMirror mirror,
        IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, TimeProvider clock, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        // Under the row's lock: a firing or another PATCH in between must not be overwritten from a stale read.
        var schedule = await FindAsync(db, project, id, ct, forUpdate: true);
        var name = request.Name is null ? schedule.Name : RunsApi.Text(request.Name, 180, "name");
        var description = request.Description is null ? schedule.Description : RunsApi.Text(request.Description, 2000, "description");
        var cron = request.Cron is null ? schedule.Cron : ScheduleCron.Normalize(request.Cron);
        var timeZone = request.Timezone ?? schedule.TimeZone;
        CheckCron(request.Cron ?? schedule.Cron, timeZone, now);
        var template = request.RunTemplate is null ? schedule.RunTemplate : await CheckTemplateAsync(request.RunTemplate, db, project, json.Value.SerializerOptions, now, ct);
        var enabled = request.Enabled ?? schedule.Enabled;
        // Planned times that passed while the schedule was off, or under another cron, are not owed.
        var restart = (enabled && !schedule.Enabled) || cron != schedule.Cron || timeZone != schedule.TimeZone;
        var allowOverlap = request.AllowOverlap ?? schedule.AllowOverlap;
        await db.Schedules.Where(s => s.Id == schedule.Id).ExecuteUpdateAsync(s => s
            .SetProperty(x => x.Name, name)
            .SetProperty(x => x.Description, description)
            .SetProperty(x => x.Cron, cron)
            .SetProperty(x => x.TimeZone, timeZone)
            .SetProperty(x => x.RunTemplate, template)
            .SetProperty(x => x.Enabled, enabled)
            .SetProperty(x => x.AllowOverlap, allowOverlap)
            .SetProperty(x => x.UpdatedAt, now), ct);
        if (restart)
        {
            await db.Schedules.Where(s => s.Id == schedule.Id).ExecuteUpdateAsync(s => s.SetProperty(x => x.LastPlannedAt, now), ct);
        }

        await tx.CommitAsync(ct);
        var updated = await FindAsync(db, project, id, ct);
        mirror.Sync(updated.Id, updated);
        return TypedResults.Ok(await ToResponseAsync(db, updated, now, ct));
    }

    public static async Task<NoContent> DeleteSchedule(string id, AfnioDbContext db, ProjectContext project, ScheduleMirror mirror, CancellationToken ct)
    {
        var schedule = await FindAsync(db, project, id, ct);
        await db.Schedules.Where(s => s.Id == schedule.Id).ExecuteDeleteAsync(ct);
        mirror.Sync(schedule.Id, null);
        return TypedResults.NoContent();
    }

    public static async Task<Accepted<ScheduleFiringResponse>> TriggerSchedule(
        string id, AfnioDbContext db, ProjectContext project, ScheduleFirings firings, CancellationToken ct)
    {
        var schedule = await FindAsync(db, project, id, ct);
        var result = await firings.FireAsync(schedule.Id, ScheduleFiring.Manual, ct)
            ?? throw ApiException.NotFound("schedule", "id");
        if (result.Run is null)
        {
            throw ApiException.Conflict("schedule_skipped", $"The firing was skipped ({result.Firing.ReasonCode}): {result.Firing.Reason}", "id");
        }

        var response = ToResponse(result.Firing, RunsApi.ToResponse(result.Run, result.Job).Status);
        return TypedResults.Accepted($"/v1/runs/{response.RunId}", response);
    }

    public static async Task<Ok<ListResponse<ScheduleFiringResponse>>> ListFirings(
        string id, [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var schedule = await FindAsync(db, project, id, ct);
        var (rows, limit) = await db.ScheduleFirings.AsNoTracking().Where(f => f.ScheduleId == schedule.Id).FetchPageAsync(PrefixedId.ScheduleFiring, page, ct);
        return TypedResults.Ok(Paging.ToList(await ToResponsesAsync(db, rows, ct), limit, f => f.Id));
    }

    private static void CheckCron(string cron, string timeZone, DateTimeOffset now)
    {
        if (cron.Length > 200)
        {
            throw ApiException.BadRequest("invalid_cron", "'cron' is at most 200 characters.", "cron");
        }

        if (timeZone.Length > 100)
        {
            throw ApiException.BadRequest("invalid_timezone", "'timezone' is at most 100 characters: an IANA time zone such as Europe/Rome.", "timezone");
        }

        var parsed = ScheduleCron.TryParse(cron, timeZone, out var cronError, out var zoneError);
        if (cronError is not null)
        {
            throw ApiException.BadRequest("invalid_cron",
                $"'cron' is not a valid cron expression: {cronError} Use five fields (minute hour day month weekday), six with seconds first, or a macro such as @daily.", "cron");
        }

        if (zoneError is not null)
        {
            throw ApiException.BadRequest("invalid_timezone", zoneError, "timezone");
        }

        if (parsed!.Next(now) is null)
        {
            throw ApiException.BadRequest("invalid_cron", "'cron' never fires again.", "cron");
        }

        if (parsed.ShortestInterval(now) is { } interval && interval < ScheduleCron.MinimumInterval)
        {
            throw ApiException.BadRequest("schedule_too_frequent",
                $"'cron' fires every {interval.TotalSeconds:0} s; schedules start training runs, at most once a minute.", "cron");
        }
    }

    /// <summary>
    /// Checks the template as <c>POST /v1/runs</c> would, by making the run in a transaction that is
    /// rolled back; problems name their place under <c>run_template.</c>. Returns the template to store.
    /// </summary>
    private static async Task<string> CheckTemplateAsync(
        CreateRunRequest? template, AfnioDbContext db, ProjectContext project, JsonSerializerOptions json, DateTimeOffset now, CancellationToken ct)
    {
        if (template is null)
        {
            throw ApiException.BadRequest("missing_field", "'run_template' is required: the body of POST /v1/runs each firing sends.", "run_template");
        }

        if (template.ProgramId is null)
        {
            throw ApiException.BadRequest("missing_field", "'run_template.program_id' is required: a schedule starts server-driven training runs.", "run_template.program_id");
        }

        if (template.Dataset?.Version is not null || template.Dataset?.Split?.Version is not null)
        {
            throw ApiException.BadRequest("invalid_run_template",
                "A schedule trains on the latest version of its dataset at each firing: leave out 'version'.", "run_template.dataset.version");
        }

        if (template.Dataset?.Splits is not null)
        {
            throw ApiException.BadRequest("invalid_run_template",
                "Item ids pin one version of the dataset: give a schedule 'dataset.split' (how to split the latest version) instead.", "run_template.dataset.splits");
        }

        // Inside the caller's transaction (PATCH) a savepoint is rolled back; otherwise a transaction of its own.
        var outer = db.Database.CurrentTransaction;
        var own = outer is null ? await db.BeginOrJoinTransactionAsync(ct) : null;
        await using (own)
        {
            if (outer is not null)
            {
                await outer.CreateSavepointAsync("run_template_check", ct);
            }

            try
            {
                await RunsApi.AddServerRunAsync(template, db, project, now, ct);
            }
            catch (ApiException e)
            {
                throw new ApiException(e.Status, e.Code, e.Message, Under(e.Param));
            }
            catch (AfnioException e)
            {
                throw new AfnioException(e.Kind, e.Code, e.Message, Under(e.Param));
            }
            finally
            {
                if (own is not null)
                {
                    await own.RollbackAsync(CancellationToken.None);
                }
                else
                {
                    await outer!.RollbackToSavepointAsync("run_template_check", CancellationToken.None);
                }

                db.ChangeTracker.Clear();
            }
        }

        return JsonSerializer.Serialize(template, json);
    }

    private static string Under(string? param) => param is null ? "run_template" : $"run_template.{param}";

    private static async Task<Schedule> FindAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct, bool forUpdate = false)
    {
        if (!PrefixedId.TryParse(PrefixedId.Schedule, id, out var guid))
        {
            throw ApiException.NotFound("schedule", "id");
        }

        var query = forUpdate
            ? db.Schedules.FromSql($"SELECT * FROM schedules WHERE id = {guid} FOR UPDATE")
            : db.Schedules;
        return await query.AsNoTracking().SingleOrDefaultAsync(s => s.Id == guid && s.ProjectId == project.ProjectId, ct)
            ?? throw ApiException.NotFound("schedule", "id");
    }

    private static async Task<ScheduleResponse> ToResponseAsync(AfnioDbContext db, Schedule s, DateTimeOffset now, CancellationToken ct) =>
        (await ToResponsesAsync(db, [s], now, ct))[0];

    // One query for the recent firings of every schedule on the page, one for their runs, one for the runs' jobs.
    private static async Task<List<ScheduleResponse>> ToResponsesAsync(AfnioDbContext db, IReadOnlyList<Schedule> schedules, DateTimeOffset now, CancellationToken ct)
    {
        var ids = schedules.Select(s => s.Id).ToList();
        // The last few of each: firings with fewer than RecentFirings newer ones of the same schedule.
        var recent = await db.ScheduleFirings.AsNoTracking()
            .Where(f => ids.Contains(f.ScheduleId) && db.ScheduleFirings.Count(n => n.ScheduleId == f.ScheduleId && n.Id > f.Id) < RecentFirings)
            .OrderByDescending(f => f.Id).ToListAsync(ct);
        var firings = (await ToResponsesAsync(db, recent, ct)).ToLookup(f => f.ScheduleId);
        return [.. schedules.Select(s =>
        {
            using var template = JsonDocument.Parse(s.RunTemplate);
            var id = PrefixedId.Format(PrefixedId.Schedule, s.Id);
            var next = s.Enabled ? ScheduleCron.Of(s).Next(now) : null;
            return new ScheduleResponse(id, s.Name, s.Description, s.Cron, s.TimeZone, template.RootElement.Clone(), s.Enabled,
                s.AllowOverlap, UnixTime.Of(next), [.. firings[id]], UnixTime.Of(s.CreatedAt), UnixTime.Of(s.UpdatedAt));
        })];
    }

    private static async Task<List<ScheduleFiringResponse>> ToResponsesAsync(AfnioDbContext db, IReadOnlyList<ScheduleFiring> rows, CancellationToken ct)
    {
        var runIds = rows.Select(f => f.RunId).OfType<Guid>().ToList();
        var runs = await db.Runs.AsNoTracking().Where(r => runIds.Contains(r.Id)).ToListAsync(ct);
        var jobIds = runs.Select(r => r.JobId).OfType<Guid>().ToList();
        var jobs = await db.Jobs.AsNoTracking().Where(j => jobIds.Contains(j.Id)).ToDictionaryAsync(j => j.Id, ct);
        var statuses = runs.ToDictionary(r => r.Id, r => RunsApi.ToResponse(r, r.JobId is { } j ? jobs.GetValueOrDefault(j) : null).Status);
        return [.. rows.Select(f => ToResponse(f, f.RunId is { } run ? statuses.GetValueOrDefault(run) : null))];
    }

    private static ScheduleFiringResponse ToResponse(ScheduleFiring f, string? runStatus) => new(
        PrefixedId.Format(PrefixedId.ScheduleFiring, f.Id), PrefixedId.Format(PrefixedId.Schedule, f.ScheduleId), UnixTime.Of(f.PlannedAt), f.Trigger,
        f.Outcome, PrefixedId.Format(PrefixedId.Run, f.RunId), runStatus, f.ReasonCode, f.Reason, f.Missed, UnixTime.Of(f.CreatedAt));
}
