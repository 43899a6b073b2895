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
using Microsoft.Extensions.Options;

namespace Afnio.Api.Jobs;

/// <summary>The caller's jobs: status with long polling, lists, cancellation, and events as JSON or a live stream.</summary>
public static class JobsApi
{
    public const int MaxWaitSeconds = 60;

    private const int StreamBatch = 100;

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

    /// <summary>
    /// A job; with <c>wait_seconds</c> the call waits (up to 60 s) until the job has finished. A wait
    /// holds one of the key's stream slots (429 too_many_streams beyond them) and ends with 401 if
    /// the key is revoked meanwhile.
    /// </summary>
    public static async Task<Ok<JobResponse>> GetJob(
        string id, [FromQuery(Name = "wait_seconds")] int? waitSeconds, AfnioDbContext db, ProjectContext project,
        JobSignals signals, StreamSlots slots, TimeProvider clock, IOptions<AfnioOptions> options, CancellationToken ct)
    {
        var guid = ParseId(id);
        using var slot = waitSeconds > 0 ? slots.Acquire(project.ApiKeyId) : null;
        using var waiter = signals.Watch(guid, project.ApiKeyId);
        return TypedResults.Ok(await WaitAsync(db, waiter, j => j.Id == guid && j.ProjectId == project.ProjectId, waitSeconds,
            Fallback(options), clock, ct));
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
        AfnioDbContext db, ProjectContext project, JobSignals signals, StreamSlots slots, TimeProvider clock,
        IOptions<AfnioOptions> options, CancellationToken ct)
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
            // The slot and the registration last as long as the response, which outlives this method.
            http.HttpContext.Response.RegisterForDispose(slots.Acquire(project.ApiKeyId));
            var waiter = signals.Watch(guid, project.ApiKeyId);
            http.HttpContext.Response.RegisterForDispose(waiter);
            var limits = options.Value.Streams;
            var until = clock.GetUtcNow() + TimeSpan.FromSeconds(Math.Max(1, limits.MaxDurationSeconds));
            return TypedResults.ServerSentEvents(StreamAsync(db, waiter, guid, after, until, Fallback(options), clock, ct));
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

    /// <summary>
    /// Reads a job until it is terminal or <paramref name="waitSeconds"/> pass. Between reads it sleeps
    /// until <paramref name="waiter"/> is signalled (the job changed) or <paramref name="fallback"/> passes;
    /// a revoked key ends the wait with 401.
    /// </summary>
    public static async Task<JobResponse> WaitAsync(
        AfnioDbContext db, JobWaiter waiter, Expression<Func<Job, bool>> which, int? waitSeconds, TimeSpan fallback,
        TimeProvider clock, CancellationToken ct)
    {
        if (waitSeconds is < 0 or > MaxWaitSeconds)
        {
            throw ApiException.BadRequest("invalid_wait_seconds", $"wait_seconds must be between 0 and {MaxWaitSeconds}.", "wait_seconds");
        }

        var deadline = clock.GetUtcNow().AddSeconds(waitSeconds ?? 0);
        while (true)
        {
            var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(which, ct) ?? throw ApiException.NotFound("job", "id");
            var left = deadline - clock.GetUtcNow();
            if (job.IsTerminal || left <= TimeSpan.Zero)
            {
                return JobResponse.From(job, (await Models.UsageApi.ByJobAsync(db, [job.Id], ct)).GetValueOrDefault(job.Id));
            }

            await waiter.WaitAsync(left < fallback ? left : fallback, clock, ct);
            if (waiter.KeyRevoked || !await KeyStillActiveAsync(db, waiter, fallback, clock, ct))
            {
                throw new ApiException(StatusCodes.Status401Unauthorized, "invalid_api_key", "The API key of this request was revoked while it waited.");
            }
        }
    }

    public static TimeSpan Fallback(IOptions<AfnioOptions> options) =>
        TimeSpan.FromSeconds(Math.Max(0.05, options.Value.Streams.FallbackIntervalSeconds));

    // Once per fallback interval the key is looked at in the database too, in case its revocation
    // notice was lost. A project key or a user key (the afnio protocol's calls run with the user's key).
    private static async Task<bool> KeyStillActiveAsync(
        AfnioDbContext db, JobWaiter waiter, TimeSpan interval, TimeProvider clock, CancellationToken ct) =>
        waiter.KeyId is not { } keyId || !waiter.KeyCheckDue(clock.GetUtcNow(), interval)
        || await db.ApiKeys.AnyAsync(k => k.Id == keyId && k.RevokedAt == null, ct)
        || await db.UserApiKeys.AnyAsync(k => k.Id == keyId && k.RevokedAt == null, ct);

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

    // Follows the job's events in sequence order (they commit in that order) until its last one, the
    // key's revocation or the stream's end of life (the client resumes with Last-Event-ID). Between
    // reads it waits for the job's signal without holding a connection; at the fallback interval it
    // reads anyway and checks the key.
    private static async IAsyncEnumerable<SseItem<JobEventResponse>> StreamAsync(
        AfnioDbContext db, JobWaiter waiter, Guid jobId, long after, DateTimeOffset until, TimeSpan fallback, TimeProvider clock,
        [EnumeratorCancellation] CancellationToken ct)
    {
        while (true)
        {
            var rows = await db.JobEvents.AsNoTracking().Where(e => e.JobId == jobId && e.Seq > after)
                .OrderBy(e => e.Seq).Take(StreamBatch).ToListAsync(ct);
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

            if (rows.Count == StreamBatch)
            {
                continue;
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
            }

            var left = until - clock.GetUtcNow();
            if (waiter.KeyRevoked || left <= TimeSpan.Zero)
            {
                yield break;
            }

            await waiter.WaitAsync(left < fallback ? left : fallback, clock, ct);
            if (waiter.KeyRevoked || !await KeyStillActiveAsync(db, waiter, fallback, clock, ct))
            {
                yield break;
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
