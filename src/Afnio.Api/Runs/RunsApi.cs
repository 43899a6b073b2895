using System.Text.Json.Serialization;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Runs;
using Afnio.Domain.Common;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Afnio.Api.Runs;

/// <summary>Creates a client-driven run, as afnio's <c>tellurio.init</c>.</summary>
public sealed record CreateRunRequest
{
    /// <summary>A name unique in the project; a taken name gets a numeric suffix, none gives a generated one.</summary>
    public string? Name { get; init; }

    public string? Description { get; init; }

    /// <summary><c>running</c> (default), <c>completed</c>, <c>crashed</c> or <c>failed</c>. Client-driven runs only.</summary>
    public string? Status { get; init; }

    /// <summary>The program to train (<c>prg_…</c>). With it, the service runs the training itself and answers 202.</summary>
    public string? ProgramId { get; init; }

    /// <summary>Start from this checkpoint's parameters and momentum instead of the program's production version.</summary>
    public string? FromCheckpointId { get; init; }

    /// <summary>The dataset version and its splits.</summary>
    public RunDatasetRequest? Dataset { get; init; }

    /// <summary>Model clients by the names the program uses: <c>forward</c>, <c>backward</c> (default: the project's backward model), <c>optimizer</c> (default: backward).</summary>
    public Dictionary<string, string>? Models { get; init; }

    /// <summary>The TGD optimizer's settings.</summary>
    public RunOptimizerRequest? Optimizer { get; init; }

    /// <summary>Completion args for the backward model's feedback calls.</summary>
    public System.Text.Json.JsonElement? BackwardCompletionArgs { get; init; }

    /// <summary>Epochs (default 1).</summary>
    public int? Epochs { get; init; }

    /// <summary>Samples per batch (default 1).</summary>
    public int? BatchSize { get; init; }

    /// <summary>Drop a last batch shorter than batch_size.</summary>
    public bool? DropLast { get; init; }

    /// <summary>How training items are ordered each epoch.</summary>
    public RunSamplerRequest? Sampler { get; init; }

    /// <summary>The sampler's seed (default 0).</summary>
    public int? Seed { get; init; }

    /// <summary>Stop cleanly, as <c>stopped_budget</c>, before spending past this.</summary>
    public decimal? MaxCostUsd { get; init; }

    /// <summary>Validate every this many epochs (and always after the last); default 1.</summary>
    public int? ValidateEvery { get; init; }

    /// <summary>Run the test split through the best checkpoint at the end.</summary>
    public bool? Test { get; init; }

    /// <summary>Make the best parameters a new program version when they beat production on validation.</summary>
    public bool? Promote { get; init; }

    /// <summary>The validation metric that picks the best checkpoint (higher is better): <c>accuracy</c> when the program has it, else <c>loss</c>.</summary>
    public string? SelectMetric { get; init; }
}

/// <summary>Changes a run's status (afnio's <c>run.finish</c>); idempotent.</summary>
public sealed record UpdateRunRequest
{
    /// <summary><c>running</c>, <c>completed</c>, <c>crashed</c> or <c>failed</c>.</summary>
    public string? Status { get; init; }

    public string? Description { get; init; }
}

/// <summary>Logs one metric value, as afnio's <c>run.log(name, value, step)</c>.</summary>
public sealed record LogMetricRequest
{
    public string? Name { get; init; }

    /// <summary>A number.</summary>
    public double? Value { get; init; }

    /// <summary>The step; by default one past the metric's last step in this run, or 0.</summary>
    public long? Step { get; init; }
}

public sealed record RunResponse(
    [property: JsonPropertyOrder(-2)] string Id, string Name, string? Description, string Status, long CreatedAt, long UpdatedAt,
    string? JobId, RunTrainingResponse? Training)
{
    [JsonPropertyOrder(-1)]
    public string Object => "run";
}

public sealed record MetricResponse([property: JsonPropertyOrder(-2)] string Id, string RunId, string Name, double Value, long Step, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "run.metric";
}

/// <summary>
/// Client-driven runs (semantics §8.7–8.9): the user's own loop creates a run, logs metrics by step
/// and marks it finished, and anyone with the project's key reads them back.
/// </summary>
public static class RunsApi
{
    private static readonly string[] Adjectives = ["brave", "calm", "eager", "gentle", "keen", "lively", "patient", "quiet", "steady", "witty"];
    private static readonly string[] Nouns = ["otter", "falcon", "maple", "harbor", "comet", "lantern", "meadow", "pebble", "sparrow", "willow"];

    public static RouteGroupBuilder MapRuns(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/runs").WithTags("Runs");
        group.MapPost("/", CreateRun).WithName("createRun")
            .WithDescription("Without program_id: creates a client-driven run (201); log metrics to it and mark it finished. " +
                "With program_id: starts a server-driven training run (202) whose job fits the program on the dataset, checkpointing every batch.");
        group.MapGet("/", ListRuns).WithName("listRuns");
        group.MapGet("/{id}", GetRun).WithName("retrieveRun");
        group.MapPatch("/{id}", UpdateRun).WithName("updateRun").ProducesProblem(StatusCodes.Status409Conflict);
        group.MapPost("/{id}/metrics", LogMetric).WithName("logRunMetric").ProducesProblem(StatusCodes.Status409Conflict);
        group.MapGet("/{id}/metrics", ListMetrics).WithName("listRunMetrics");
        return v1;
    }

    public static async Task<Results<Created<RunResponse>, Accepted<RunResponse>>> CreateRun(
        CreateRunRequest request, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        if (request.ProgramId is not null)
        {
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await using var tx = await db.BeginOrJoinTransactionAsync(ct);
                    var (started, job) = await AddServerRunAsync(request, db, project, clock.GetUtcNow(), ct);
                    await tx.CommitAsync(ct);
                    var accepted = ToResponse(started, job);
                    return TypedResults.Accepted($"/v1/runs/{accepted.Id}", accepted);
                }
                catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } && attempt < 5)
                {
                    // Another run took the name meanwhile: pick the next one.
                    db.ChangeTracker.Clear();
                }
            }
        }

        var status = Status(request.Status) ?? Run.Running;
        var description = request.Description is null ? null : Text(request.Description, 2000, "description");
        var wanted = request.Name is null ? null : Text(request.Name, 180, "name");
        for (var attempt = 0; ; attempt++)
        {
            var name = wanted is null ? GeneratedName() : await FreeNameAsync(db, project.ProjectId, wanted, ct);
            var now = clock.GetUtcNow();
            var run = new Run { Id = PrefixedId.NewGuid(), ProjectId = project.ProjectId, Name = name, Description = description, Status = status, CreatedAt = now, UpdatedAt = now };
            db.Runs.Add(run);
            try
            {
                await db.SaveChangesAsync(ct);
                var response = ToResponse(run, null);
                return TypedResults.Created($"/v1/runs/{response.Id}", response);
            }
            catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } && attempt < 5)
            {
                // Another run took the name meanwhile: pick the next one.
                db.Entry(run).State = EntityState.Detached;
            }
        }
    }

    /// <summary>
    /// The one way a server-driven run is made, by <c>POST /v1/runs</c> and by schedule firings: checks
    /// the request, picks the name and stores the run and its queued job in the caller's transaction.
    /// Enqueue the job after the transaction commits.
    /// </summary>
    public static async Task<(Run Run, Job Job)> AddServerRunAsync(
        CreateRunRequest request, AfnioDbContext db, ProjectContext project, DateTimeOffset now, CancellationToken ct)
    {
        if (request.Status is not null)
        {
            throw ApiException.BadRequest("invalid_status", "A server-driven run's status follows its job; do not set it.", "status");
        }

        var description = request.Description is null ? null : Text(request.Description, 2000, "description");
        var name = request.Name is null ? GeneratedName() : await FreeNameAsync(db, project.ProjectId, Text(request.Name, 180, "name"), ct);
        return await TrainingRunsApi.AddAsync(request, name, description, db, project, now, ct);
    }

    public static async Task<Ok<ListResponse<RunResponse>>> ListRuns(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var (rows, limit) = await db.Runs.AsNoTracking().Where(r => r.ProjectId == project.ProjectId).FetchPageAsync(PrefixedId.Run, page, ct);
        var jobIds = rows.Select(r => r.JobId).OfType<Guid>().ToList();
        var jobs = await db.Jobs.AsNoTracking().Where(j => jobIds.Contains(j.Id)).ToDictionaryAsync(j => j.Id, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(r => ToResponse(r, r.JobId is { } j ? jobs.GetValueOrDefault(j) : null))], limit, r => r.Id));
    }

    public static async Task<Ok<RunResponse>> GetRun(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var run = await FindAsync(db, project, id, ct);
        var job = run.JobId is { } jobId ? await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == jobId, ct) : null;
        return TypedResults.Ok(ToResponse(run, job));
    }

    public static async Task<Ok<RunResponse>> UpdateRun(
        string id, UpdateRunRequest request, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var run = await FindAsync(db, project, id, ct);
        if (run.IsServerDriven && request.Status is not null)
        {
            throw ApiException.Conflict("run_server_driven", "A server-driven run's status follows its job: cancel it with POST /v1/runs/{id}/cancel.", "status");
        }

        var status = Status(request.Status) ?? run.Status;
        var description = request.Description is null ? run.Description : Text(request.Description, 2000, "description");
        var now = clock.GetUtcNow();
        await db.Runs.Where(r => r.Id == run.Id).ExecuteUpdateAsync(s => s
            .SetProperty(r => r.Status, status).SetProperty(r => r.Description, description).SetProperty(r => r.UpdatedAt, now), ct);
        (run.Status, run.Description, run.UpdatedAt) = (status, description, now);
        var job = run.JobId is { } jobId ? await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == jobId, ct) : null;
        return TypedResults.Ok(ToResponse(run, job));
    }

    public static async Task<Created<MetricResponse>> LogMetric(
        string id, LogMetricRequest request, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var name = Text(request.Name ?? throw ApiException.BadRequest("missing_field", "'name' is required.", "name"), 200, "name");
        var value = request.Value ?? throw ApiException.BadRequest("missing_field", "'value' is required: a number.", "value");
        if (!double.IsFinite(value))
        {
            throw ApiException.BadRequest("invalid_value", "'value' must be a finite number.", "value");
        }

        if (request.Step is < 0)
        {
            throw ApiException.BadRequest("invalid_step", "'step' must be 0 or more.", "step");
        }

        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        // Metrics of one run are logged one at a time, so a default step is never taken twice.
        var run = (await db.Runs.FromSql($"SELECT * FROM runs WHERE id = {ParseId(id)} AND project_id = {project.ProjectId} FOR UPDATE")
            .AsNoTracking().ToListAsync(ct)).SingleOrDefault() ?? throw ApiException.NotFound("run", "id");
        if (run.IsServerDriven)
        {
            throw ApiException.Conflict("run_server_driven", "The service logs this run's metrics itself; log yours to a run without a program.", "id");
        }

        if (run.Status != Run.Running)
        {
            throw ApiException.Conflict("run_finished", $"The run is {run.Status}; metrics are logged to running runs only.");
        }

        var step = request.Step ?? (await db.RunMetrics.Where(m => m.RunId == run.Id && m.Name == name).MaxAsync(m => (long?)m.Step, ct) is { } last ? last + 1 : 0);
        var metric = new RunMetric { Id = PrefixedId.NewGuid(), RunId = run.Id, Name = name, Step = step, Value = value, CreatedAt = clock.GetUtcNow() };
        db.RunMetrics.Add(metric);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        var response = ToMetricResponse(metric);
        return TypedResults.Created($"/v1/runs/{id}/metrics", response);
    }

    public static async Task<Ok<ListResponse<MetricResponse>>> ListMetrics(
        string id, [FromQuery(Name = "name")] string? name, [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var run = await FindAsync(db, project, id, ct);
        var query = db.RunMetrics.AsNoTracking().Where(m => m.RunId == run.Id);
        query = name is null ? query : query.Where(m => m.Name == name);
        var (rows, limit) = await query.FetchPageAsync(PrefixedId.Metric, page with { Order = page.Order ?? "asc" }, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(ToMetricResponse)], limit, m => m.Id));
    }

    public static async Task<Run> FindAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct)
    {
        var guid = ParseId(id);
        return await db.Runs.AsNoTracking().SingleOrDefaultAsync(r => r.Id == guid && r.ProjectId == project.ProjectId, ct)
            ?? throw ApiException.NotFound("run", "id");
    }

    private static Guid ParseId(string id) =>
        PrefixedId.TryParse(PrefixedId.Run, id, out var guid) ? guid : throw ApiException.NotFound("run", "id");

    /// <summary><paramref name="wanted"/>, or with the next free numeric suffix when it is taken (<c>test_run_1</c>, <c>test_run_2</c>).</summary>
    private static async Task<string> FreeNameAsync(AfnioDbContext db, Guid projectId, string wanted, CancellationToken ct)
    {
        var prefix = wanted + "_";
        var taken = await db.Runs.Where(r => r.ProjectId == projectId && (r.Name == wanted || r.Name.StartsWith(prefix)))
            .Select(r => r.Name).ToListAsync(ct);
        if (!taken.Contains(wanted))
        {
            return wanted;
        }

        var suffixes = taken.Select(n => n.Length > prefix.Length && long.TryParse(n.AsSpan(prefix.Length), out var k) ? k : 0);
        return $"{prefix}{suffixes.Max() + 1}";
    }

    private static string GeneratedName() =>
        $"{Adjectives[Random.Shared.Next(Adjectives.Length)]}_{Nouns[Random.Shared.Next(Nouns.Length)]}_{Random.Shared.Next(1000)}";

    private static string? Status(string? status) => status is null || Run.Statuses.Contains(status)
        ? status
        : throw ApiException.BadRequest("invalid_status", $"status must be one of: {string.Join(", ", Run.Statuses)}.", "status");

    /// <summary>A name or description: 1 to <paramref name="max"/> characters, no NUL.</summary>
    public static string Text(string value, int max, string param) =>
        value.Length is 0 || value.Length > max || value.Contains('\0', StringComparison.Ordinal)
            ? throw ApiException.BadRequest("invalid_" + param, $"'{param}' must be 1 to {max} characters.", param)
            : value;

    /// <summary>A run as the API shows it. A server-driven run still marked running takes its job's end (failed, cancelled) as its status.</summary>
    public static RunResponse ToResponse(Run r, Job? job)
    {
        var status = r.Status == Run.Running && job is { Status: JobStatus.Failed or JobStatus.Cancelled }
            ? JobStatusNames.ToName(job.Status)
            : r.Status;
        return new(PrefixedId.Format(PrefixedId.Run, r.Id), r.Name, r.Description, status, UnixTime.Of(r.CreatedAt), UnixTime.Of(r.UpdatedAt),
            PrefixedId.Format(PrefixedId.Job, r.JobId), TrainingRunsApi.Training(r));
    }

    private static MetricResponse ToMetricResponse(RunMetric m) =>
        new(PrefixedId.Format(PrefixedId.Metric, m.Id), PrefixedId.Format(PrefixedId.Run, m.RunId), m.Name, m.Value, m.Step, UnixTime.Of(m.CreatedAt));
}
