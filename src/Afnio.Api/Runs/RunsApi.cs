using System.Text.Json.Serialization;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Runs;
using Afnio.Domain.Common;
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

    /// <summary><c>running</c> (default), <c>completed</c>, <c>crashed</c> or <c>failed</c>.</summary>
    public string? Status { get; init; }
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

public sealed record RunResponse([property: JsonPropertyOrder(-2)] string Id, string Name, string? Description, string Status, long CreatedAt, long UpdatedAt)
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
            .WithDescription("Creates a client-driven run: log metrics to it and mark it finished.");
        group.MapGet("/", ListRuns).WithName("listRuns");
        group.MapGet("/{id}", GetRun).WithName("retrieveRun");
        group.MapPatch("/{id}", UpdateRun).WithName("updateRun").ProducesProblem(StatusCodes.Status409Conflict);
        group.MapPost("/{id}/metrics", LogMetric).WithName("logRunMetric").ProducesProblem(StatusCodes.Status409Conflict);
        group.MapGet("/{id}/metrics", ListMetrics).WithName("listRunMetrics");
        return v1;
    }

    public static async Task<Created<RunResponse>> CreateRun(
        CreateRunRequest request, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
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
                var response = ToResponse(run);
                return TypedResults.Created($"/v1/runs/{response.Id}", response);
            }
            catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } && attempt < 5)
            {
                // Another run took the name meanwhile: pick the next one.
                db.Entry(run).State = EntityState.Detached;
            }
        }
    }

    public static async Task<Ok<ListResponse<RunResponse>>> ListRuns(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var (rows, limit) = await db.Runs.AsNoTracking().Where(r => r.ProjectId == project.ProjectId).FetchPageAsync(PrefixedId.Run, page, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(ToResponse)], limit, r => r.Id));
    }

    public static async Task<Ok<RunResponse>> GetRun(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct) =>
        TypedResults.Ok(ToResponse(await FindAsync(db, project, id, ct)));

    public static async Task<Ok<RunResponse>> UpdateRun(
        string id, UpdateRunRequest request, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var run = await FindAsync(db, project, id, ct);
        var status = Status(request.Status) ?? run.Status;
        var description = request.Description is null ? run.Description : Text(request.Description, 2000, "description");
        var now = clock.GetUtcNow();
        await db.Runs.Where(r => r.Id == run.Id).ExecuteUpdateAsync(s => s
            .SetProperty(r => r.Status, status).SetProperty(r => r.Description, description).SetProperty(r => r.UpdatedAt, now), ct);
        (run.Status, run.Description, run.UpdatedAt) = (status, description, now);
        return TypedResults.Ok(ToResponse(run));
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

        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // Metrics of one run are logged one at a time, so a default step is never taken twice.
        var run = (await db.Runs.FromSql($"SELECT * FROM runs WHERE id = {ParseId(id)} AND project_id = {project.ProjectId} FOR UPDATE")
            .AsNoTracking().ToListAsync(ct)).SingleOrDefault() ?? throw ApiException.NotFound("run", "id");
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

    private static async Task<Run> FindAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct)
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

    private static string Text(string value, int max, string param) =>
        value.Length is 0 || value.Length > max || value.Contains('\0', StringComparison.Ordinal)
            ? throw ApiException.BadRequest("invalid_" + param, $"'{param}' must be 1 to {max} characters.", param)
            : value;

    private static RunResponse ToResponse(Run r) =>
        new(PrefixedId.Format(PrefixedId.Run, r.Id), r.Name, r.Description, r.Status, UnixTime.Of(r.CreatedAt), UnixTime.Of(r.UpdatedAt));

    private static MetricResponse ToMetricResponse(RunMetric m) =>
        new(PrefixedId.Format(PrefixedId.Metric, m.Id), PrefixedId.Format(PrefixedId.Run, m.RunId), m.Name, m.Value, m.Step, UnixTime.Of(m.CreatedAt));
}
