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
using Microsoft.Extensions.Options;

namespace Afnio.Api.Jobs;

/// <summary>Admin-only: system jobs such as housekeeping, which belong to no project.</summary>
public static class AdminJobsApi
{
    public static RouteGroupBuilder MapAdminJobs(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/admin").WithTags("Admin").RequireAuthorization(AuthSetup.AdminPolicy);
        group.MapPost("/housekeeping", StartHousekeeping).WithName("startHousekeeping");
        group.MapGet("/jobs/{id}", GetSystemJob).WithName("retrieveSystemJob");
        return v1;
    }

    /// <summary>Runs housekeeping now (it also runs hourly): purges expired idempotency records.</summary>
    public static async Task<Accepted<JobResponse>> StartHousekeeping(
        AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var job = await JobScheduling.AddAsync(db, null, IHousekeepingJobs.JobType, null, clock.GetUtcNow(), ct);
        var response = JobResponse.From(job);
        return TypedResults.Accepted($"/v1/admin/jobs/{response.Id}", response);
    }

    /// <summary>A system job; with <c>wait_seconds</c> the call waits (up to 60 s) until the job has finished.</summary>
    public static async Task<Ok<JobResponse>> GetSystemJob(
        string id, [FromQuery(Name = "wait_seconds")] int? waitSeconds, AfnioDbContext db, JobSignals signals, TimeProvider clock,
        IOptions<AfnioOptions> options, CancellationToken ct)
    {
        var guid = JobsApi.ParseId(id);
        using var waiter = signals.Watch(guid, keyId: null);
        return TypedResults.Ok(await JobsApi.WaitAsync(db, waiter, j => j.Id == guid && j.ProjectId == null, waitSeconds,
            JobsApi.Fallback(options), clock, ct));
    }
}
