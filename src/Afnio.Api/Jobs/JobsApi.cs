using System.Linq.Expressions;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Jobs;

/// <summary>The caller's jobs: status with long polling, lists, cancellation, and events as JSON or a live stream.</summary>
public static class JobsApi
{
    public const int MaxWaitSeconds = 60;

    // One indexed primary-key read per poll; short enough that a finished job is seen at once.
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan StreamPollInterval = TimeSpan.FromMilliseconds(100);

    public static RouteGroupBuilder MapJobs(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/jobs").WithTags("Jobs");
        group.MapGet("/", ListJobs).WithName("listJobs");
        group.MapGet("/{id}", GetJob).WithName("retrieveJob");
        group.MapPost("/{id}/cancel", CancelJob).WithName("cancelJob").ProducesProblem(StatusCodes.Status409Conflict);
        group.MapGet("/{id}/events", ListJobEvents).WithName("listJobEvents")
            .Produces<ListResponse<JobEventResponse>>(StatusCodes.Status200OK, "application/json", "text/event-stream")
            .WithDescription("The job's events, oldest first. With Accept: text/event-stream (or stream=true) the " +
                "response is a live Server-Sent Events stream that ends after the job's last event; Last-Event-ID resumes it.");
        return v1;
    }

    public static async Task<Ok<ListResponse<JobResponse>>> ListJobs(
        [AsParameters] PageQuery page, [FromQuery(Name = "type")] string? type, [FromQuery(Name = "status")] string? status,
        AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var query = db.Jobs.AsNoTracking().Where(j => j.ProjectId == project.ProjectId);
        query = type is null ? query : query.Where(j => j.Type == type);
        if (status is not null)
        {
            var wanted = Enum.GetValues<JobStatus>().Cast<JobStatus?>().FirstOrDefault(s => JobStatusNames.ToName(s!.Value) == status)
                ?? throw ApiException.BadRequest("invalid_status",
                    $"status must be one of: {string.Join(", ", Enum.GetValues<JobStatus>().Select(JobStatusNames.ToName))}; got '{status}'.", "status");
            query = query.Where(j => j.Status == wanted);
        }
        var (rows, limit) = await query.FetchPageAsync(PrefixedId.Job, page, ct);
        var usage = await Models.UsageApi.ByJobAsync(db, [.. rows.Select(j => j.Id)], ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(j => JobResponse.From(j, usage.GetValueOrDefault(j.Id)))], limit, j => j.Id));
    }

    /// <summary>A job; with <c>wait_seconds</c> the call waits (up to 60 s) until the job has finished.</summary>
    public static async Task<Ok<JobResponse>> GetJob(
        string id, [FromQuery(Name = "wait_seconds")] int? waitSeconds, AfnioDbContext db, ProjectContext project,
        TimeProvider clock, CancellationToken ct)
    {
        var guid = ParseId(id);
        return TypedResults.Ok(await WaitAsync(db, j => j.Id == guid && j.ProjectId == project.ProjectId, waitSeconds, clock, ct));
    }

    /// <summary>
    /// Cancels a job. A queued job is cancelled at once; a running one becomes <c>cancelling</c> and
    /// stops between steps, keeping the steps it committed. Cancelling a finished job is a 409.
    /// </summary>
    public static async Task<Ok<JobResponse>> CancelJob(
        string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var guid = ParseId(id);
        while (true)
        {
            var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == guid && j.ProjectId == project.ProjectId, ct)
                ?? throw ApiException.NotFound("job", "id");
            if (job.IsTerminal)
            {
                throw ApiException.Conflict("job_not_cancellable", $"The job has already finished ({JobStatusNames.ToName(job.Status)}).", "id");
            }

            if (job.Status == JobStatus.Cancelling || await TryCancelAsync(db, job, clock.GetUtcNow(), ct))
            {
                return TypedResults.Ok(JobResponse.From(
                    await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == guid, ct)));
            }

            // The job moved on between the read and the update (a worker claimed or finished it): look again.
        }
    }

    public static async Task<Results<Ok<ListResponse<JobEventResponse>>, ServerSentEventsResult<JobEventResponse>>> ListJobEvents(
        string id, [AsParameters] PageQuery page, [FromQuery(Name = "stream")] bool? stream,
        [FromHeader(Name = "Last-Event-ID")] string? lastEventId, HttpRequest http,
        AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var guid = ParseId(id);
        if (!await db.Jobs.AnyAsync(j => j.Id == guid && j.ProjectId == project.ProjectId, ct))
        {
            throw ApiException.NotFound("job", "id");
        }

        var after = await SeqOfAsync(db, guid, lastEventId ?? page.After, lastEventId is null ? "after" : "Last-Event-ID", ct);
        var wantsStream = stream ?? http.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.OrdinalIgnoreCase) == true);
        if (wantsStream)
        {
            return TypedResults.ServerSentEvents(StreamAsync(db, guid, after, ct));
        }

        var limit = page.Limit switch
        {
            null => Paging.MaxLimit,
            < 1 or > Paging.MaxLimit => throw ApiException.BadRequest("invalid_limit", $"limit must be between 1 and {Paging.MaxLimit}; got {page.Limit}.", "limit"),
            { } value => value,
        };
        var rows = await db.JobEvents.AsNoTracking().Where(e => e.JobId == guid && e.Seq > after)
            .OrderBy(e => e.Seq).Take(limit + 1).ToListAsync(ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(JobEventResponse.From)], limit, e => e.Id));
    }

    /// <summary>Reads a job until it is terminal or <paramref name="waitSeconds"/> pass.</summary>
    public static async Task<JobResponse> WaitAsync(
        AfnioDbContext db, Expression<Func<Job, bool>> which, int? waitSeconds, TimeProvider clock, CancellationToken ct)
    {
        if (waitSeconds is < 0 or > MaxWaitSeconds)
        {
            throw ApiException.BadRequest("invalid_wait_seconds", $"wait_seconds must be between 0 and {MaxWaitSeconds}.", "wait_seconds");
        }

        var deadline = clock.GetUtcNow().AddSeconds(waitSeconds ?? 0);
        while (true)
        {
            var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(which, ct) ?? throw ApiException.NotFound("job", "id");
            if (job.IsTerminal || clock.GetUtcNow() >= deadline)
            {
                return JobResponse.From(job, (await Models.UsageApi.ByJobAsync(db, [job.Id], ct)).GetValueOrDefault(job.Id));
            }

            await Task.Delay(PollInterval, clock, ct);
        }
    }

    public static Guid ParseId(string id) =>
        PrefixedId.TryParse(PrefixedId.Job, id, out var guid) ? guid : throw ApiException.NotFound("job", "id");

    private static async Task<bool> TryCancelAsync(AfnioDbContext db, Job job, DateTimeOffset now, CancellationToken ct)
    {
        var (from, to, eventType) = job.Status == JobStatus.Queued
            ? (JobStatus.Queued, JobStatus.Cancelled, JobEventTypes.Cancelled)
            : (JobStatus.Running, JobStatus.Cancelling, JobEventTypes.Cancelling);
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var changed = await db.Jobs.Where(j => j.Id == job.Id && j.Status == from)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, to)
                .SetProperty(j => j.FinishedAt, j => to == JobStatus.Cancelled ? now : j.FinishedAt), ct);
        if (changed == 0)
        {
            return false;
        }

        await db.AppendEventAsync(job.Id, eventType, new { requested_by = "api" }, now, ct);
        if (to == JobStatus.Cancelled)
        {
            // A training run whose job never started ends here, with its job.
            await Afnio.Data.Runs.RunEnd.MarkEndedAsync(db, job.Id, now, ct);
        }

        await tx.CommitAsync(ct);
        return true;
    }

    private static async Task<long> SeqOfAsync(AfnioDbContext db, Guid jobId, string? eventId, string param, CancellationToken ct)
    {
        if (eventId is null)
        {
            return 0;
        }

        if (!PrefixedId.TryParse(PrefixedId.Event, eventId, out var guid))
        {
            throw ApiException.BadRequest("invalid_cursor", $"{param} must be an evt_… id of this job's events.", param);
        }

        return await db.JobEvents.Where(e => e.Id == guid && e.JobId == jobId).Select(e => (long?)e.Seq).SingleOrDefaultAsync(ct)
            ?? throw ApiException.BadRequest("invalid_cursor", $"{param} is not an event of this job.", param);
    }

    // Follows the job's events in sequence order (they commit in that order) until its last one.
    private static async IAsyncEnumerable<SseItem<JobEventResponse>> StreamAsync(
        AfnioDbContext db, Guid jobId, long after, [EnumeratorCancellation] CancellationToken ct)
    {
        while (true)
        {
            var rows = await db.JobEvents.AsNoTracking().Where(e => e.JobId == jobId && e.Seq > after)
                .OrderBy(e => e.Seq).Take(100).ToListAsync(ct);
            foreach (var row in rows)
            {
                after = row.Seq;
                var item = JobEventResponse.From(row);
                yield return new SseItem<JobEventResponse>(item, row.Type) { EventId = item.Id };
                if (JobEventTypes.IsTerminal(row.Type))
                {
                    yield break;
                }
            }

            if (rows.Count == 0)
            {
                // Resumed after the last event: nothing more will come.
                var status = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => j.Status).SingleAsync(ct);
                if (status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled
                    && !await db.JobEvents.AnyAsync(e => e.JobId == jobId && e.Seq > after, ct))
                {
                    yield break;
                }

                await Task.Delay(StreamPollInterval, ct);
            }
        }
    }
}

/// <summary>Something that happened to a job.</summary>
/// <param name="Id">The event id (evt_…); also the SSE event id.</param>
/// <param name="Type">job.created, job.started, job.progress, job.cancelling, job.succeeded, job.failed or job.cancelled.</param>
/// <param name="Sequence">1, 2, 3, … within the job.</param>
/// <param name="Data">Details: progress {completed, total}, the result, or error {code, message}.</param>
/// <param name="CreatedAt">Unix seconds.</param>
public sealed record JobEventResponse(
    [property: System.Text.Json.Serialization.JsonPropertyOrder(-2)] string Id, string Type, long Sequence, JsonElement Data, long CreatedAt)
{
    [System.Text.Json.Serialization.JsonPropertyOrder(-1)]
    public string Object => "job.event";

    public static JobEventResponse From(JobEvent e) => new(
        PrefixedId.Format(PrefixedId.Event, e.Id), e.Type, e.Seq, JsonDocument.Parse(e.Data).RootElement.Clone(), UnixTime.Of(e.CreatedAt));
}
