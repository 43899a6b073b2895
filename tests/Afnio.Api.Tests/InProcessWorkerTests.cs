using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Afnio.Api.Tests;

/// <summary>With Afnio:Worker:InProcess the API hosts the Hangfire server itself (the one-machine default).</summary>
[Collection(WorkerHosts.Name)]
public sealed class InProcessWorkerTests(WorkerApp app) : IClassFixture<WorkerApp>
{
    [Fact]
    public async Task Housekeeping_RunsInsideTheApiProcess_AndPurgesOnlyExpiredRecords()
    {
        using var admin = app.CreateAdminClient();
        var project = await app.CreateProjectAsync();
        foreach (var key in new[] { "old", "fresh" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/variables") { Content = JsonContent.Create(new { data = key }) };
            request.Headers.Add("Idempotency-Key", key);
            (await project.Client.SendAsync(request)).EnsureSuccessStatusCode();
        }

        await using var db = app.CreateDbContext();
        await db.IdempotencyRecords.Where(r => r.Key == "old")
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.ExpiresAt, DateTimeOffset.UtcNow.AddSeconds(-5)));
        // Three events past the 30-day retention, one of them still being delivered, and one recent.
        var projectId = Guid.ParseExact(project.Id["proj_".Length..], "N");
        var endpoint = new Data.Webhooks.WebhookEndpoint
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = projectId,
            Url = "https://93.184.216.34/hook",
            EventTypes = ["*"],
            Enabled = true,
            Secret = "x",
            CreatedAt = DateTimeOffset.UtcNow,
            UpdatedAt = DateTimeOffset.UtcNow,
        };
        db.WebhookEndpoints.Add(endpoint);
        var events = new[] { -40, -35, -31, -1 }.Select(days => new Data.Events.OutboxEvent
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = projectId,
            Type = "job.succeeded",
            Payload = "{}",
            CreatedAt = DateTimeOffset.UtcNow.AddDays(days),
        }).ToList();
        db.Events.AddRange(events);
        db.WebhookDeliveries.AddRange(events.Take(2).Select((e, i) => new Data.Webhooks.WebhookDelivery
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = projectId,
            EventId = e.Id,
            EndpointId = endpoint.Id,
            Status = i == 0 ? Data.Webhooks.WebhookDelivery.Succeeded : Data.Webhooks.WebhookDelivery.Pending,
            NextAttemptAt = i == 0 ? null : DateTimeOffset.UtcNow.AddHours(1),
            CreatedAt = e.CreatedAt,
            UpdatedAt = e.CreatedAt,
        }));
        await db.SaveChangesAsync();

        var job = await admin.PostJsonAsync("/v1/admin/housekeeping", new { });
        var id = job.GetProperty("id").GetString()!;
        var finished = await admin.GetJsonAsync($"/v1/admin/jobs/{id}?wait_seconds=30");

        Assert.Equal("succeeded", finished.GetProperty("status").GetString());
        Assert.Equal(1, finished.GetProperty("result").GetProperty("purged_idempotency_records").GetInt32());
        Assert.Equal(2, finished.GetProperty("result").GetProperty("purged_events").GetInt32());
        Assert.Equal([events[1].Id, events[3].Id], await db.Events.Where(e => e.ProjectId == projectId).OrderBy(e => e.CreatedAt).Select(e => e.Id).ToListAsync());
        Assert.Equal([events[1].Id], await db.WebhookDeliveries.Where(d => d.ProjectId == projectId).Select(d => d.EventId).ToListAsync());
        Assert.NotEqual(JsonValueKind.Null, finished.GetProperty("started_at").ValueKind);
        Assert.NotEqual(JsonValueKind.Null, finished.GetProperty("finished_at").ValueKind);
        Assert.Equal(["fresh"], await db.IdempotencyRecords.Select(r => r.Key).ToListAsync());
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, id, out var guid));
        Assert.EndsWith($":{Environment.ProcessId}", await db.Jobs.Where(j => j.Id == guid).Select(j => j.ExecutedBy).SingleAsync());
    }

    [Fact]
    public async Task RunningAFinishedJobAgain_IsANoOp()
    {
        using var admin = app.CreateAdminClient();
        var id = (await admin.PostJsonAsync("/v1/admin/housekeeping", new { })).GetProperty("id").GetString()!;
        var first = await admin.GetJsonAsync($"/v1/admin/jobs/{id}?wait_seconds=30");
        Assert.Equal("succeeded", first.GetProperty("status").GetString());

        // Hangfire delivers at least once: a second delivery must change nothing.
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, id, out var guid));
        using (var scope = app.Services.CreateScope())
        {
            await scope.ServiceProvider.GetRequiredService<Data.Jobs.IHousekeepingJobs>().RunAsync(guid, CancellationToken.None);
        }

        var second = await admin.GetJsonAsync($"/v1/admin/jobs/{id}");
        Assert.Equal(first.GetProperty("finished_at").GetInt64(), second.GetProperty("finished_at").GetInt64());
        Assert.Equal(first.GetProperty("result").GetRawText(), second.GetProperty("result").GetRawText());
    }

    [Fact]
    public async Task ScheduleNever_RemovesTheRecurringHousekeeping()
    {
        await using var db = app.CreateDbContext();
        var schedules = await db.Database.SqlQuery<string>(
            $"SELECT value AS \"Value\" FROM hangfire.set WHERE key = 'recurring-jobs'").ToListAsync();
        Assert.DoesNotContain("housekeeping", schedules);
    }

    [Fact]
    public async Task SystemJobs_AreAdminOnly()
    {
        using var admin = app.CreateAdminClient();
        var id = (await admin.PostJsonAsync("/v1/admin/housekeeping", new { })).GetProperty("id").GetString()!;
        var project = await app.CreateProjectAsync();

        await (await project.Client.GetAsync($"/v1/admin/jobs/{id}")).AssertProblemAsync(401, "admin_key_required");
        await (await admin.GetAsync("/v1/admin/jobs/job_0000000000007000800000000000000a")).AssertProblemAsync(404, "job_not_found");
        await (await admin.GetAsync($"/v1/admin/jobs/{id}?wait_seconds=61")).AssertProblemAsync(400, "invalid_wait_seconds");
        // Let the job finish, so it cannot purge records another test of this class arranges.
        Assert.Equal("succeeded", (await admin.GetJsonAsync($"/v1/admin/jobs/{id}?wait_seconds=30")).GetProperty("status").GetString());
    }
}
