using System.Diagnostics;
using System.Globalization;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Xunit.Abstractions;

namespace Afnio.Api.Tests.Faults;

/// <summary>
/// Kills the Worker process with SIGKILL at random moments of a job, starts a new one, and checks
/// that each trial ends exactly like an uninterrupted run of the same job: nothing duplicated, nothing
/// lost, and no paid call sent again beyond those in flight at the kill. The number of trials comes
/// from AFNIO_FAULT_TRIALS (CI runs a few; <c>scripts/faults.sh</c> runs 20 of each), the moments
/// from a seeded generator (AFNIO_FAULT_SEED) spread over the uninterrupted job's duration.
/// </summary>
internal sealed class KillTrials(SeparateProcesses processes, FakeOpenAiServer fake, Func<FakeOpenAiServer, int> paidCalls, ITestOutputHelper output)
{
    public static int Count => int.TryParse(Environment.GetEnvironmentVariable("AFNIO_FAULT_TRIALS"), CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 2;

    private static int Seed => int.TryParse(Environment.GetEnvironmentVariable("AFNIO_FAULT_SEED"), CultureInfo.InvariantCulture, out var s) ? s : 20261126;

    /// <summary>One kind of job: set up a fresh project, start the job, and compare a finished trial with the reference.</summary>
    public interface IScenario<TSetup>
    {
        Task<TSetup> SetUpAsync(TestProject project);

        Task<string> StartAsync(TestProject project, TSetup setup);

        Task AssertSameAsync(TestProject reference, TSetup referenceSetup, TestProject trial, TSetup trialSetup);
    }

    public async Task RunAsync<TSetup>(string name, IScenario<TSetup> scenario)
    {
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        var reference = await processes.CreateProjectAsync($"{name} uninterrupted");
        var referenceSetup = await scenario.SetUpAsync(reference);
        var before = paidCalls(fake);
        var watch = Stopwatch.StartNew();
        var referenceJob = await scenario.StartAsync(reference, referenceSetup);
        var done = await reference.WaitForJobAsync(referenceJob, 180);
        Assert.True(done.GetProperty("status").GetString() == "succeeded", $"{done}\n{processes.Worker.Output}");
        var referencePaid = await PaidAsync(db, referenceJob);
        Assert.Equal(paidCalls(fake) - before, referencePaid);

        // A second uninterrupted job, compared with the first: the result does not depend on the run. Its
        // running time (the first one pays for warming up) is the span the kill moments are drawn from.
        var calibration = await processes.CreateProjectAsync($"{name} uninterrupted again");
        var calibrationSetup = await scenario.SetUpAsync(calibration);
        var calibrationJob = await scenario.StartAsync(calibration, calibrationSetup);
        done = await calibration.WaitForJobAsync(calibrationJob, 180);
        Assert.True(done.GetProperty("status").GetString() == "succeeded", $"{done}\n{processes.Worker.Output}");
        await scenario.AssertSameAsync(reference, referenceSetup, calibration, calibrationSetup);
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, calibrationJob, out var calibrationId));
        var times = await db.Jobs.AsNoTracking().Where(j => j.Id == calibrationId).Select(j => new { j.StartedAt, j.FinishedAt }).SingleAsync();
        var duration = times.FinishedAt!.Value - times.StartedAt!.Value;
        output.WriteLine($"{name}: the uninterrupted job ran {duration.TotalMilliseconds:F0} ms (the first: {watch.Elapsed.TotalMilliseconds:F0} ms from POST) and paid {referencePaid} calls; seed {Seed}");

        var random = new Random(Seed ^ name.GetHashCode(StringComparison.Ordinal));
        var midJob = 0;
        for (var trial = 1; trial <= Count; trial++)
        {
            var project = await processes.CreateProjectAsync($"{name} trial {trial}");
            var setup = await scenario.SetUpAsync(project);
            before = paidCalls(fake);
            var delay = TimeSpan.FromMilliseconds(random.NextDouble() * duration.TotalMilliseconds);
            var jobId = await scenario.StartAsync(project, setup);
            Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var job));

            // The moment is drawn over the uninterrupted job's running time, counted from the claim.
            await Eventually.UntilAsync(async () => await db.Jobs.AsNoTracking().AnyAsync(j => j.Id == job && j.Status != Data.Jobs.JobStatus.Queued),
                TimeSpan.FromSeconds(60), () => $"trial {trial}: the job was not picked up\n{processes.Worker.Output}", pollMs: 5);
            await Task.Delay(delay);
            processes.KillWorker();
            var status = await db.Jobs.AsNoTracking().Where(j => j.Id == job).Select(j => j.Status).SingleAsync();
            var stepsAtKill = await db.JobSteps.CountAsync(s => s.JobId == job);
            var journaledAtKill = await db.ModelCalls.CountAsync(c => c.JobId == job);
            await fake.SettledRequestCountAsync();
            var sentAtKill = paidCalls(fake) - before;
            midJob += status == Data.Jobs.JobStatus.Running ? 1 : 0;

            processes.StartWorker();
            var finished = await project.WaitForJobAsync(jobId, 180);
            Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"trial {trial}: {finished}\n{processes.Worker.Output}");
            await scenario.AssertSameAsync(reference, referenceSetup, project, setup);

            // Each paid call once in the journal, as many as the uninterrupted job paid; sent again only if in flight at the kill.
            var paid = await PaidAsync(db, jobId);
            Assert.Equal(referencePaid, paid);
            Assert.Equal(paid, await db.ModelCalls.Where(c => c.JobId == job).Select(c => new { c.StepKey, c.RequestHash }).Distinct().CountAsync());
            var repeated = paidCalls(fake) - before - paid;
            Assert.InRange(repeated, 0, Math.Max(0, sentAtKill - journaledAtKill));
            output.WriteLine($"{name} trial {trial}: killed after {delay.TotalMilliseconds:F0} ms ({status}, {stepsAtKill} steps committed, " +
                $"{journaledAtKill} calls journaled, {sentAtKill} sent); resumed to the same result, {repeated} calls sent again");
        }

        output.WriteLine($"{name}: {Count} trials, {midJob} killed while the job was running");
        Assert.True(midJob > 0, "no kill landed while a job was running");
    }

    private static async Task<int> PaidAsync(Data.AfnioDbContext db, string jobId)
    {
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var job));
        return await db.ModelCalls.CountAsync(c => c.JobId == job && c.Status == "succeeded");
    }
}
