using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Afnio.Api.Schedules;
using Afnio.Api.Tests.Infrastructure;
using Afnio.Data.Schedules;
using Afnio.Domain.Common;
using Hangfire;
using Hangfire.Storage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Afnio.Api.Tests;

/// <summary>
/// Schedules firing for real: Hangfire's recurring jobs mirror the table, a near-future cron fires
/// the Facility training through the POST /v1/runs path, and a planned time never fires twice.
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed class ScheduleTests : IClassFixture<WebhookWorkerApp>
{
    private static readonly TimeZoneInfo Rome = TimeZoneInfo.FindSystemTimeZoneById("Europe/Rome");
    private readonly WebhookWorkerApp _app;

    public ScheduleTests(WebhookWorkerApp app)
    {
        _app = app;
        app.Fake.Default = FacilityTraining.Reply;
    }

    [Fact]
    public async Task ANightlySchedule_FiresTheFacilityTraining_AndTheReceiverGetsASignedProgramPromoted()
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var path = $"promoted-{Guid.NewGuid():N}";
        var endpoint = await project.Client.PostJsonAsync("/v1/webhook_endpoints",
            new { url = _app.Receiver.Url(path), events = new[] { "program.promoted", "schedule.fired", "run.succeeded" } });
        var secret = endpoint.GetProperty("secret").GetString()!;
        // "Every night" at a time a few seconds from now, in Rome: a six-field cron, seconds first.
        var planned = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 4);
        var local = TimeZoneInfo.ConvertTime(planned, Rome);

        var schedule = await project.Client.PostJsonAsync("/v1/schedules", new
        {
            name = "nightly facility",
            cron = $"{local.Second} {local.Minute} {local.Hour} * * *",
            timezone = "Europe/Rome",
            run_template = Template(program, dataset, model),
        });

        var id = schedule.GetProperty("id").GetString()!;
        Assert.Equal(planned.ToUnixTimeSeconds(), schedule.GetProperty("next_run_at").GetInt64());
        var received = await _app.Receiver.WaitForAsync(path, 3, seconds: 120);
        Assert.All(received, r => Assert.True(WebhookReceiver.Verify(secret, r), "every delivery must verify with the endpoint's secret"));
        var events = received.Select(r => JsonDocument.Parse(r.Body).RootElement).ToDictionary(e => e.GetProperty("type").GetString()!);
        Assert.Equal(["program.promoted", "run.succeeded", "schedule.fired"], events.Keys.Order());
        var fired = events["schedule.fired"].GetProperty("data");
        Assert.Equal(id, fired.GetProperty("id").GetString());
        Assert.Equal(planned.ToUnixTimeSeconds(), fired.GetProperty("planned_at").GetInt64());
        Assert.Equal("cron", fired.GetProperty("trigger").GetString());
        var runId = fired.GetProperty("run_id").GetString()!;
        var promoted = events["program.promoted"].GetProperty("data");
        Assert.Equal((program, 2, runId), (promoted.GetProperty("id").GetString(), promoted.GetProperty("version").GetInt32(), promoted.GetProperty("run_id").GetString()));
        Assert.Equal(runId, events["run.succeeded"].GetProperty("data").GetProperty("id").GetString());

        var production = await project.Client.GetJsonAsync($"/v1/programs/{program}");
        Assert.Equal(2, production.GetProperty("version").GetInt32());
        // One epoch is two batches of 33, so two optimizer steps, each adding the hint.
        Assert.Equal($"{FacilityTraining.InitialPrompt} {FacilityTraining.Hint} {FacilityTraining.Hint}", production.GetProperty("parameters").GetProperty("sentiment_task").GetProperty("value").GetString());
        var run = await project.Client.GetJsonAsync($"/v1/runs/{runId}");
        Assert.Equal($"nightly facility {local:yyyy-MM-dd HH:mm}", run.GetProperty("name").GetString());
        Assert.Equal("completed", run.GetProperty("status").GetString());
        var after = await project.Client.GetJsonAsync($"/v1/schedules/{id}");
        var firing = Assert.Single(after.GetProperty("recent_firings").EnumerateArray());
        Assert.Equal(("fired", "cron", runId, "completed"), (firing.GetProperty("outcome").GetString(), firing.GetProperty("trigger").GetString(),
            firing.GetProperty("run_id").GetString(), firing.GetProperty("run_status").GetString()));
        // Tomorrow at the same local time (a day is 23 or 25 hours when the clocks change).
        Assert.InRange(after.GetProperty("next_run_at").GetInt64() - planned.ToUnixTimeSeconds(), 23 * 3600, 25 * 3600);
    }

    [Fact]
    public async Task DuplicateAndRacingDeliveries_FireOnePlannedTimeOnce_FoldingInMissedTimes()
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var schedule = await project.Client.PostJsonAsync("/v1/schedules", new
        {
            name = "hourly",
            cron = "0 * * * *",
            timezone = "UTC",
            run_template = Template(program, dataset, model),
        });
        var id = IdOf(schedule);
        // The service was down for three planned times: the last one it handled was three hours ago.
        var now = DateTimeOffset.UtcNow;
        var expected = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, 0, 0, TimeSpan.Zero);
        await using (var db = _app.CreateDbContext())
        {
            await db.Schedules.Where(s => s.Id == id).ExecuteUpdateAsync(s => s.SetProperty(x => x.LastPlannedAt, expected.AddHours(-3)));
        }

        // Twelve deliveries of the firing at once, each in its own scope with its own connection: as
        // Hangfire delivering it again and again to several processes would.
        using var start = new SemaphoreSlim(0);
        var racers = Enumerable.Range(0, 12).Select(async _ =>
        {
            await using var scope = _app.Services.CreateAsyncScope();
            var firings = scope.ServiceProvider.GetRequiredService<ScheduleFirings>();
            await start.WaitAsync();
            return await firings.FireAsync(id, ScheduleFiring.Cron, CancellationToken.None);
        }).ToList();
        start.Release(racers.Count);
        var results = await Task.WhenAll(racers);

        var fired = Assert.Single(results, r => r is not null)!;
        Assert.Equal(expected, fired.Firing.PlannedAt);
        Assert.Equal(2, fired.Firing.Missed);
        await using (var db = _app.CreateDbContext())
        {
            Assert.Equal(1, await db.ScheduleFirings.CountAsync(f => f.ScheduleId == id));
            Assert.Equal(1, await db.Runs.CountAsync(r => r.ProjectId == fired.Run!.ProjectId));
            Assert.Equal(expected, (await db.Schedules.SingleAsync(s => s.Id == id)).LastPlannedAt);
        }

        // A late duplicate of the same delivery finds nothing left to fire.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            Assert.Null(await scope.ServiceProvider.GetRequiredService<ScheduleFirings>().FireAsync(id, ScheduleFiring.Cron, CancellationToken.None));
        }

        var firings = (await project.Client.GetJsonAsync($"/v1/schedules/{schedule.GetProperty("id").GetString()}/firings")).GetProperty("data");
        Assert.Equal(2, Assert.Single(firings.EnumerateArray()).GetProperty("missed").GetInt32());
        Assert.Single((await project.Client.GetJsonAsync("/v1/events?type=schedule.fired")).GetProperty("data").EnumerateArray());
        await project.Client.PostAsync($"/v1/runs/{PrefixedId.Format(PrefixedId.Run, fired.Run!.Id)}/cancel", null);
    }

    [Fact]
    public async Task AFiringWhilePreviousRunIsActive_IsSkipped_AndRecordsWhy_UnlessOverlapIsAllowed()
    {
        var project = await _app.CreateProjectAsync();
        _app.Fake.Default = r => FacilityTraining.Reply(r) with { Delay = TimeSpan.FromMilliseconds(200) };
        try
        {
            var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
            // The longest name a schedule may have: its runs' names still fit, with the planned time.
            var name = new string('w', 180);
            var schedule = await project.Client.PostJsonAsync("/v1/schedules", new
            {
                name,
                cron = "0 3 * * 1",
                timezone = "Europe/Rome",
                run_template = Template(program, dataset, model),
            });
            var id = schedule.GetProperty("id").GetString()!;

            var first = await TriggerAsync(project, id);
            Assert.Equal(("fired", "manual"), (first.GetProperty("outcome").GetString(), first.GetProperty("trigger").GetString()));
            var runName = (await project.Client.GetJsonAsync($"/v1/runs/{first.GetProperty("run_id").GetString()}")).GetProperty("name").GetString()!;
            var local = TimeZoneInfo.ConvertTime(DateTimeOffset.FromUnixTimeSeconds(first.GetProperty("planned_at").GetInt64()), Rome);
            Assert.Equal($"{name[..163]} {local:yyyy-MM-dd HH:mm}", runName);
            using (var skipped = await project.Client.PostAsync($"/v1/schedules/{id}/trigger", null))
            {
                var problem = await skipped.AssertProblemAsync(409, "schedule_skipped");
                Assert.Contains(first.GetProperty("run_id").GetString()!, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            }

            var firings = (await project.Client.GetJsonAsync($"/v1/schedules/{id}/firings")).GetProperty("data").EnumerateArray().ToList();
            Assert.Equal(["skipped", "fired"], firings.Select(f => f.GetProperty("outcome").GetString()));
            Assert.Equal("previous_run_active", firings[0].GetProperty("reason_code").GetString());
            var skippedEvent = Assert.Single((await project.Client.GetJsonAsync("/v1/events?type=schedule.skipped")).GetProperty("data").EnumerateArray());
            Assert.Equal("previous_run_active", skippedEvent.GetProperty("data").GetProperty("reason_code").GetString());
            Assert.Single((await project.Client.GetJsonAsync("/v1/runs")).GetProperty("data").EnumerateArray());

            using (var patch = await project.Client.PatchAsJsonAsync($"/v1/schedules/{id}", new { allow_overlap = true }))
            {
                Assert.True((await HttpJson.EnsureSuccessAsync(patch)).GetProperty("allow_overlap").GetBoolean());
            }

            var overlapping = await TriggerAsync(project, id);
            Assert.NotEqual(first.GetProperty("run_id").GetString(), overlapping.GetProperty("run_id").GetString());
            Assert.Equal(2, (await project.Client.GetJsonAsync("/v1/runs")).GetProperty("data").GetArrayLength());
            foreach (var run in new[] { first, overlapping })
            {
                await project.Client.PostAsync($"/v1/runs/{run.GetProperty("run_id").GetString()}/cancel", null);
            }
        }
        finally
        {
            _app.Fake.Default = FacilityTraining.Reply;
        }
    }

    [Fact]
    public async Task AFiringWhoseTemplateNoLongerHolds_IsSkipped_WithTheReason()
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var schedule = await project.Client.PostJsonAsync("/v1/schedules", new { name = "daily", cron = "@daily", run_template = Template(program, dataset, model) });
        var id = schedule.GetProperty("id").GetString()!;
        Assert.Equal("UTC", schedule.GetProperty("timezone").GetString());
        using (var deleted = await project.Client.DeleteAsync($"/v1/programs/{program}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var trigger = await project.Client.PostAsync($"/v1/schedules/{id}/trigger", null);

        await trigger.AssertProblemAsync(409, "schedule_skipped");
        var firing = Assert.Single((await project.Client.GetJsonAsync($"/v1/schedules/{id}/firings")).GetProperty("data").EnumerateArray());
        Assert.Equal(("skipped", "program_not_found"), (firing.GetProperty("outcome").GetString(), firing.GetProperty("reason_code").GetString()));
        Assert.StartsWith("The run template was refused: No program with that id", firing.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Empty((await project.Client.GetJsonAsync("/v1/runs")).GetProperty("data").EnumerateArray());
        Assert.Single((await project.Client.GetJsonAsync("/v1/events?type=schedule.skipped")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task HangfireRecurringJobs_MirrorTheTable_AndTheReconcilerRepairsThem()
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var schedule = await project.Client.PostJsonAsync("/v1/schedules", new
        {
            name = "nightly",
            cron = "0 2 * * *",
            timezone = "Europe/Rome",
            run_template = Template(program, dataset, model),
        });
        var id = schedule.GetProperty("id").GetString()!;
        var jobId = ISchedulerJobs.RecurringJobId(IdOf(schedule));
        var mirrored = Assert.Single(RecurringJobs(), j => j.Id == jobId);
        Assert.Equal(("0 2 * * *", "Europe/Rome", ISchedulerJobs.Queue), (mirrored.Cron, mirrored.TimeZoneId, mirrored.Job.Queue));

        await PatchAsync(project, id, new { enabled = false });
        Assert.DoesNotContain(RecurringJobs(), j => j.Id == jobId);
        await PatchAsync(project, id, new { enabled = true, cron = "30 1 * * *" });
        Assert.Equal("30 1 * * *", Assert.Single(RecurringJobs(), j => j.Id == jobId).Cron);

        // Behind the table's back: the schedule's job is lost and an orphan appears.
        var manager = _app.Services.GetRequiredService<IRecurringJobManager>();
        manager.RemoveIfExists(jobId);
        var orphan = ISchedulerJobs.RecurringJobId(Guid.NewGuid());
        manager.AddOrUpdate<ISchedulerJobs>(orphan, ISchedulerJobs.Queue, j => j.FireAsync(Guid.NewGuid(), CancellationToken.None), "0 4 * * *");
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var changed = await scope.ServiceProvider.GetRequiredService<ScheduleMirror>()
                .ReconcileAsync(scope.ServiceProvider.GetRequiredService<Data.AfnioDbContext>(), CancellationToken.None);
            Assert.True(changed >= 2, $"{changed} recurring jobs changed");
        }

        Assert.Equal("30 1 * * *", Assert.Single(RecurringJobs(), j => j.Id == jobId).Cron);
        Assert.DoesNotContain(RecurringJobs(), j => j.Id == orphan);

        using var deleted = await project.Client.DeleteAsync($"/v1/schedules/{id}");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.DoesNotContain(RecurringJobs(), j => j.Id == jobId);
    }

    private static object Template(string program, string dataset, string model) => new
    {
        program_id = program,
        dataset = new { id = dataset, split = new { method = "sizes", sizes = new[] { 66, 66, 68 }, seed = 0 } },
        models = new { forward = model, backward = model, optimizer = model },
        epochs = 1,
        batch_size = 33,
        promote = true,
    };

    private static Guid IdOf(JsonElement schedule) =>
        PrefixedId.TryParse(PrefixedId.Schedule, schedule.GetProperty("id").GetString(), out var id) ? id : throw new InvalidOperationException("not a schedule id");

    private List<RecurringJobDto> RecurringJobs()
    {
        using var connection = _app.Services.GetRequiredService<JobStorage>().GetConnection();
        return connection.GetRecurringJobs();
    }

    private static async Task<JsonElement> TriggerAsync(TestProject project, string id)
    {
        using var response = await project.Client.PostAsync($"/v1/schedules/{id}/trigger", null);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return await HttpJson.EnsureSuccessAsync(response);
    }

    private static async Task PatchAsync(TestProject project, string id, object body)
    {
        using var response = await project.Client.PatchAsJsonAsync($"/v1/schedules/{id}", body);
        await HttpJson.EnsureSuccessAsync(response);
    }
}
