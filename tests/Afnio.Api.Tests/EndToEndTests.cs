using System.Net.Http.Headers;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>Migrator, API and Worker as separate processes on a fresh database, as the run script starts them.</summary>
public sealed class EndToEndTests
{
    private const string AdminKey = "e2e-admin-key-abcdefghijklmnop";

    [Fact]
    public async Task ApiEnqueues_WorkerProcessRunsTheJob_ThroughPostgres()
    {
        var connectionString = await TestDatabase.CreateAsync("afnio_e2e", migrate: false);
        var environment = new Dictionary<string, string>
        {
            ["ConnectionStrings__Postgres"] = connectionString,
            // Registered but never due (31 February), so no scheduled run races the one this test starts.
            ["Afnio__Housekeeping__Schedule"] = "0 0 31 2 *",
        };

        await using (var migrator = ProcessHost.Start("migrations/Afnio.Migrations", environment))
        {
            Assert.True(await migrator.WaitForExitAsync(TimeSpan.FromMinutes(2)) == 0, migrator.Output);
            Assert.Contains("database is up to date", migrator.Output);
        }

        var port = ProcessHost.FreePort();
        await using var worker = ProcessHost.Start("src/Afnio.Worker", environment);
        await using var api = ProcessHost.Start("src/Afnio.Api", new Dictionary<string, string>(environment)
        {
            ["Afnio__AdminKey"] = AdminKey,
            ["Afnio__Worker__InProcess"] = "false",
        }, "--urls", $"http://127.0.0.1:{port}");

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
        await api.WaitUntilReadyAsync(http);

        // A project makes an idempotent POST, which leaves a record behind...
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        var project = await http.PostJsonAsync("/v1/projects", new { name = "e2e" });
        var key = await http.PostJsonAsync($"/v1/projects/{project.GetProperty("id").GetString()}/api_keys", new { });
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/variables") { Content = JsonContent.Create(new { data = "x" }) })
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key.GetProperty("key").GetString());
            request.Headers.Add("Idempotency-Key", "e2e-key");
            (await http.SendAsync(request)).EnsureSuccessStatusCode();
        }

        // ...which has expired by the time housekeeping runs.
        await using var db = TestDatabase.CreateDbContext(connectionString);
        Assert.Equal(1, await db.IdempotencyRecords.Where(r => r.Key == "e2e-key")
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.ExpiresAt, DateTimeOffset.UtcNow.AddMinutes(-1))));

        using var started = await http.PostAsync("/v1/admin/housekeeping", null);
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var job = await started.ReadJsonAsync();
        Assert.Equal("queued", job.GetProperty("status").GetString());
        var jobId = job.GetProperty("id").GetString()!;

        var finished = await http.GetJsonAsync($"/v1/admin/jobs/{jobId}?wait_seconds=30");

        Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"{finished}\nworker:\n{worker.Output}");
        Assert.True(finished.GetProperty("result").GetProperty("purged_idempotency_records").GetInt32() >= 1);
        Assert.Equal(0, await db.IdempotencyRecords.CountAsync(r => r.Key == "e2e-key"));
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var jobGuid));
        var executedBy = await db.Jobs.Where(j => j.Id == jobGuid).Select(j => j.ExecutedBy).SingleAsync();
        Assert.EndsWith($":{worker.Id}", executedBy);
        Assert.False(api.HasExited, api.Output);

        // The worker also keeps the hourly schedule registered.
        var schedules = await db.Database.SqlQuery<string>(
            $"SELECT value AS \"Value\" FROM hangfire.set WHERE key = 'recurring-jobs'").ToListAsync();
        Assert.Contains("housekeeping", schedules);
    }
}
