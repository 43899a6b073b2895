using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Domain.Common;
using Afnio.Worker.Housekeeping;
using Afnio.Worker.Jobs;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Jobs;

/// <summary>Admin-only: system jobs such as housekeeping, which belong to no project.</summary>
public static class AdminJobsApi
{
    public const int MaxWaitSeconds = 60;

    // One indexed primary-key read per poll; short enough that a finished job is seen at once.
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    public static RouteGroupBuilder MapAdminJobs(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/admin").WithTags("Admin").RequireAuthorization(AuthSetup.AdminPolicy);
        group.MapPost("/housekeeping", StartHousekeeping).WithName("startHousekeeping");
        group.MapGet("/jobs/{id}", GetSystemJob).WithName("retrieveSystemJob");
        return v1;
    }

    /// <summary>Runs housekeeping now (it also runs hourly): purges expired idempotency records.</summary>
    public static async Task<Accepted<JobResponse>> StartHousekeeping(
        AfnioDbContext db, IBackgroundJobClient hangfire, TimeProvider clock, CancellationToken ct)
    {
        var job = JobRecorder.NewSystemJob(HousekeepingJobs.JobType, clock.GetUtcNow());
        db.Jobs.Add(job);
        await db.SaveChangesAsync(ct);
        job.HangfireJobId = hangfire.Enqueue<IHousekeepingJobs>(AfnioDataSetup.Queues[0], j => j.RunAsync(job.Id, CancellationToken.None));
        await db.SaveChangesAsync(ct);
        var response = JobResponse.From(job);
        return TypedResults.Accepted($"/v1/admin/jobs/{response.Id}", response);
    }

    /// <summary>A system job; with <c>wait_seconds</c> the call waits (up to 60 s) until the job has finished.</summary>
    public static async Task<Ok<JobResponse>> GetSystemJob(
        string id, [FromQuery(Name = "wait_seconds")] int? waitSeconds, AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (waitSeconds is < 0 or > MaxWaitSeconds)
        {
            throw ApiException.BadRequest("invalid_wait_seconds", $"wait_seconds must be between 0 and {MaxWaitSeconds}.", "wait_seconds");
        }

        if (!PrefixedId.TryParse(PrefixedId.Job, id, out var guid))
        {
            throw ApiException.NotFound("job", "id");
        }

        var deadline = clock.GetUtcNow().AddSeconds(waitSeconds ?? 0);
        while (true)
        {
            var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == guid && j.ProjectId == null, ct)
                ?? throw ApiException.NotFound("job", "id");
            if (job.IsTerminal || clock.GetUtcNow() >= deadline)
            {
                return TypedResults.Ok(JobResponse.From(job));
            }

            await Task.Delay(PollInterval, clock, ct);
        }
    }
}
