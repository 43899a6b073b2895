using System.Text.Json;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Xunit.Abstractions;

namespace Afnio.Api.Tests.Faults;

/// <summary>
/// Restarts PostgreSQL under a running service in the middle of a training run: the run carries on
/// once the database is back and ends like an uninterrupted one.
/// </summary>
public sealed class DatabaseRestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ARestartOfPostgreSQL_MidRun_StillEndsLikeTheUninterruptedRun()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = r => FacilityTraining.Reply(r) with { Delay = TimeSpan.FromMilliseconds(40) };
        await using var processes = await SeparateProcesses.StartAsync("afnio_pg_restart", new Dictionary<string, string>
        {
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        }, postgres.ServerConnectionString);
        var scenario = new TrainingScenario(fake);
        var calm = await processes.CreateProjectAsync("uninterrupted");
        var calmSetup = await scenario.SetUpAsync(calm);
        var reference = await calm.WaitForJobAsync(await scenario.StartAsync(calm, calmSetup), 180);
        Assert.True(reference.GetProperty("status").GetString() == "succeeded", $"{reference}\n{processes.Worker.Output}");

        var restarted = await processes.CreateProjectAsync("restarted");
        var setup = await scenario.SetUpAsync(restarted);
        var jobId = await scenario.StartAsync(restarted, setup);
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var job));
        await using (var db = TestDatabase.CreateDbContext(processes.ConnectionString))
        {
            await Eventually.UntilAsync(
                async () => await db.JobSteps.AnyAsync(s => s.JobId == job && s.StepKey == "e1/b0")
                    && await db.ModelCalls.CountAsync(c => c.JobId == job && c.StepKey.StartsWith("fit/e1/b1/")) >= 4,
                TimeSpan.FromSeconds(90), () => $"the run did not reach its second batch:\n{processes.Worker.Output}");
        }

        await postgres.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(3));
        await postgres.StartAgainAsync();
        output.WriteLine("PostgreSQL was down for 3 s during batch e1/b1");

        var finished = await WaitThroughOutageAsync(restarted, jobId);
        Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"{finished}\n{processes.Worker.Output}");
        await scenario.AssertSameAsync(calm, calmSetup, restarted, setup);
        await using var check = TestDatabase.CreateDbContext(processes.ConnectionString);
        var paid = await check.ModelCalls.CountAsync(c => c.JobId == job && c.Status == "succeeded");
        Assert.Equal(paid, await check.ModelCalls.Where(c => c.JobId == job).Select(c => new { c.StepKey, c.RequestHash }).Distinct().CountAsync());
        output.WriteLine($"the run completed with {paid} paid calls, each once in the journal");
    }

    // Waits for the job as a client should while the database comes back: a 503 with Retry-After is retried, anything else is not.
    private async Task<JsonElement> WaitThroughOutageAsync(TestProject project, string jobId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(240);
        while (DateTime.UtcNow < deadline)
        {
            using var response = await project.Client.GetAsync($"/v1/jobs/{jobId}?wait_seconds=10");
            if (response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable)
            {
                var problem = await response.AssertProblemAsync(503, "database_unavailable");
                Assert.Equal("1", response.Headers.GetValues("Retry-After").Single());
                output.WriteLine($"503 while the database restarts: {problem.GetProperty("detail").GetString()}");
                await Task.Delay(1000);
                continue;
            }

            var job = await HttpJson.EnsureSuccessAsync(response);
            if (job.GetProperty("status").GetString() is "succeeded" or "failed" or "cancelled")
            {
                return job;
            }
        }

        throw new TimeoutException($"job {jobId} did not finish");
    }
}
