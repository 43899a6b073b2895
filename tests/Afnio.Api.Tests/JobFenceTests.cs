using Afnio.Data.Jobs;
using Afnio.Worker.Jobs;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Tests;

/// <summary>A job's commits are fenced by its lease: only the delivery holding it, while the job runs, may write.</summary>
public sealed class JobFenceTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task OnlyTheLeaseHolder_OfARunningJob_PassesTheFence()
    {
        await using var db = app.CreateDbContext();
        var job = await JobScheduling.AddAsync(db, null, IHousekeepingJobs.JobType, null, DateTimeOffset.UtcNow, CancellationToken.None);
        var recorder = new JobRecorder(db, TimeProvider.System, Options.Create(new JobOptions()));
        var holder = JobRecorder.NewLeaseOwner();
        Assert.NotNull(await recorder.TryClaimAsync(job.Id, holder, CancellationToken.None));

        await using (var tx = await db.Database.BeginTransactionAsync())
        {
            await JobFence.EnsureHeldAsync(db, job.Id, holder);
        }

        await using (var tx = await db.Database.BeginTransactionAsync())
        {
            await Assert.ThrowsAsync<LeaseLostException>(() => JobFence.EnsureHeldAsync(db, job.Id, JobRecorder.NewLeaseOwner()));
        }

        await recorder.FailAsync(job.Id, holder, "test", "ended");
        await using (var tx = await db.Database.BeginTransactionAsync())
        {
            await Assert.ThrowsAsync<LeaseLostException>(() => JobFence.EnsureHeldAsync(db, job.Id, holder));
        }
    }
}
