using System.Globalization;
using System.Text.Json;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Projects;
using Afnio.Api.Runs;
using Afnio.Data;
using Afnio.Data.Accounts;
using Afnio.Data.Projects;
using Afnio.Data.Runs;
using Afnio.Domain.Common;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Sdk;

/// <summary>
/// The afnio client's HTTP API under <c>/api/v0</c> (semantics §8.7), for user keys sent as
/// <c>Authorization: Api-Key &lt;key&gt;</c>: the key's user, projects found by namespace and slug,
/// and client-driven runs with their metrics. Each call goes through the v1 handlers, so these are
/// the same projects and runs the v1 API shows.
/// </summary>
public static class SdkHttpApi
{
    /// <summary>The visibilities the afnio client sends; they are kept, and grant nothing here.</summary>
    public static IReadOnlyList<string> Visibilities { get; } = ["TEAM", "RESTRICTED"];

    public static IEndpointRouteBuilder MapSdkHttp(this IEndpointRouteBuilder app)
    {
        var v0 = app.MapGroup("/api/v0").RequireAuthorization(AuthSetup.UserPolicy).WithMetadata(new UserKeyEndpoint()).ExcludeFromDescription();
        v0.MapGet("/verify-api-key/", VerifyApiKey);
        v0.MapGet("/{ns}/projects/{slug}/", GetProject);
        v0.MapPost("/{ns}/projects/", CreateProject);
        v0.MapDelete("/{ns}/projects/{slug}/", DeleteProject);
        v0.MapGet("/{ns}/projects/{slug}/runs/", ListRuns);
        v0.MapPost("/{ns}/projects/{slug}/runs/", CreateRun);
        v0.MapPatch("/{ns}/projects/{slug}/runs/{run}/", UpdateRun);
        v0.MapPost("/{ns}/projects/{slug}/runs/{run}/metrics/", LogMetric);
        v0.MapGet("/{ns}/projects/{slug}/runs/{run}/metrics/", ListMetrics);
        // The link the client prints after tellurio.init: the run with its metrics, for now as JSON.
        app.MapGet("/{ns}/projects/{slug}/runs/{runSlug}/", RunPage)
            .RequireAuthorization(AuthSetup.UserPolicy).WithMetadata(new UserKeyEndpoint()).ExcludeFromDescription();
        return app;
    }

    public static async Task<Ok<SdkUserResponse>> VerifyApiKey(UserContext user, AfnioDbContext db, CancellationToken ct)
    {
        var row = await db.Users.AsNoTracking().Where(u => u.Id == user.UserId)
            .Join(db.Namespaces, u => u.Id, n => n.Id, (u, n) => new { u.Id, u.Username, u.Email, n.Slug })
            .SingleOrDefaultAsync(ct) ?? throw new ApiException(StatusCodes.Status401Unauthorized, "invalid_api_key", "The API key's user was deleted.");
        return TypedResults.Ok(new SdkUserResponse(row.Id.ToString(), row.Username, row.Slug, row.Email, "API key is valid."));
    }

    public static async Task<Ok<SdkProjectResponse>> GetProject(string ns, string slug, UserContext user, AfnioDbContext db, CancellationToken ct)
    {
        var (owner, project) = await FindProjectAsync(db, user, ns, slug, ct);
        return TypedResults.Ok(await ToResponseAsync(db, owner, project, role: null, ct));
    }

    public static async Task<Created<SdkProjectResponse>> CreateProject(
        string ns, SdkCreateProjectRequest request, UserContext user, AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var owner = await db.FindReachableAsync(user.UserId, ns, ct) ?? throw ApiException.NotFound("namespace", "namespace");
        var visibility = request.Visibility ?? "TEAM";
        if (!Visibilities.Contains(visibility))
        {
            throw ApiException.BadRequest("invalid_visibility", $"visibility must be one of: {string.Join(", ", Visibilities)}; got '{visibility}'.", "visibility");
        }

        var project = await ProjectsApi.AddAsync(db, request.DisplayName, owner.Id, visibility, clock.GetUtcNow(), ct);
        return TypedResults.Created($"/api/v0/{ns}/projects/{project.Slug}/", await ToResponseAsync(db, owner, project, "OWNER", ct));
    }

    /// <summary>Deletes the project and everything in it, as afnio's <c>delete_project</c> does.</summary>
    public static async Task<NoContent> DeleteProject(string ns, string slug, UserContext user, AfnioDbContext db, CancellationToken ct)
    {
        var (_, project) = await FindProjectAsync(db, user, ns, slug, ct);
        await db.Projects.Where(p => p.Id == project.Id).ExecuteDeleteAsync(ct);
        return TypedResults.NoContent();
    }

    public static async Task<Ok<List<SdkRunResponse>>> ListRuns(string ns, string slug, UserContext user, AfnioDbContext db, CancellationToken ct)
    {
        var (_, project) = await FindProjectAsync(db, user, ns, slug, ct);
        var runs = await db.Runs.AsNoTracking().Where(r => r.ProjectId == project.Id).OrderBy(r => r.Id).ToListAsync(ct);
        var users = await UsersAsync(db, runs, ct);
        return TypedResults.Ok(runs.Select(r => ToResponse(r, project, users)).ToList());
    }

    public static async Task<Created<SdkRunResponse>> CreateRun(
        string ns, string slug, SdkCreateRunRequest request, UserContext user, AfnioDbContext db,
        TimeProvider clock, CancellationToken ct)
    {
        var (_, project) = await FindProjectAsync(db, user, ns, slug, ct);
        var created = await RunsApi.CreateRun(new CreateRunRequest { Name = request.Name, Description = request.Description, Status = ToStatus(request.Status) },
            db, Scope(project, user), clock, ct);
        var id = created.Result is Created<RunResponse> { Value: { } value } ? value.Id : throw new InvalidOperationException("A client-driven run is created, not accepted.");
        var runId = PrefixedId.TryParse(PrefixedId.Run, id, out var guid) ? guid : throw new InvalidOperationException("A run id is malformed.");
        // The creator is recorded after the run: RunsApi picks a free name and retries on a taken one.
        await db.Runs.Where(r => r.Id == runId).ExecuteUpdateAsync(s => s.SetProperty(r => r.UserId, user.UserId), ct);
        var run = await db.Runs.AsNoTracking().SingleAsync(r => r.Id == runId, ct);
        var response = ToResponse(run, project, await UsersAsync(db, [run], ct));
        return TypedResults.Created($"/api/v0/{ns}/projects/{slug}/runs/{response.Uuid}/", response);
    }

    /// <summary>Changes the status; the same status again changes nothing, as <c>run.finish</c> needs.</summary>
    public static async Task<Ok<SdkRunResponse>> UpdateRun(
        string ns, string slug, string run, SdkUpdateRunRequest request, UserContext user, AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var (_, project) = await FindProjectAsync(db, user, ns, slug, ct);
        await RunsApi.UpdateRun(RunId(run), new UpdateRunRequest { Status = ToStatus(request.Status), Description = request.Description },
            db, Scope(project, user), clock, ct);
        var id = RunGuid(run);
        var row = await db.Runs.AsNoTracking().SingleAsync(r => r.Id == id, ct);
        return TypedResults.Ok(ToResponse(row, project, await UsersAsync(db, [row], ct)));
    }

    public static async Task<Created<SdkMetricResponse>> LogMetric(
        string ns, string slug, string run, SdkLogMetricRequest request, UserContext user, AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var (_, project) = await FindProjectAsync(db, user, ns, slug, ct);
        var logged = await RunsApi.LogMetric(RunId(run), new LogMetricRequest { Name = request.Name, Value = ToNumber(request.Value), Step = request.Step },
            db, Scope(project, user), clock, ct);
        var metric = logged.Value!;
        return TypedResults.Created($"/api/v0/{ns}/projects/{slug}/runs/{run}/metrics/",
            new SdkMetricResponse(metric.Id, metric.Name, metric.Value, metric.Step, SdkDates.Format(DateTimeOffset.FromUnixTimeSeconds(metric.CreatedAt))));
    }

    public static async Task<Ok<List<SdkMetricResponse>>> ListMetrics(
        string ns, string slug, string run, UserContext user, AfnioDbContext db, CancellationToken ct)
    {
        var (_, project) = await FindProjectAsync(db, user, ns, slug, ct);
        var found = await RunsApi.FindAsync(db, Scope(project, user), RunId(run), ct);
        return TypedResults.Ok(await MetricsAsync(db, found.Id, ct));
    }

    public static async Task<Ok<SdkRunPageResponse>> RunPage(
        string ns, string slug, string runSlug, UserContext user, AfnioDbContext db, CancellationToken ct)
    {
        var (_, project) = await FindProjectAsync(db, user, ns, slug, ct);
        // Run names are unique in a project; their slugs need not be: the newest run with the slug wins.
        var candidates = await db.Runs.AsNoTracking().Where(r => r.ProjectId == project.Id).OrderByDescending(r => r.Id)
            .Select(r => new { r.Id, r.Name }).ToListAsync(ct);
        var match = candidates.FirstOrDefault(r => Slugs.Slugify(r.Name) == runSlug) ?? throw ApiException.NotFound("run", "run");
        var run = await db.Runs.AsNoTracking().SingleAsync(r => r.Id == match.Id, ct);
        var id = PrefixedId.Format(PrefixedId.Run, run.Id);
        return TypedResults.Ok(new SdkRunPageResponse("run_page", ToResponse(run, project, await UsersAsync(db, [run], ct)), await MetricsAsync(db, run.Id, ct),
            new Dictionary<string, string>
            {
                ["run"] = $"/v1/runs/{id}",
                ["metrics"] = $"/v1/runs/{id}/metrics",
                ["api_v0"] = $"/api/v0/{ns}/projects/{slug}/runs/{run.Id}/",
            }));
    }

    /// <summary>
    /// The project <paramref name="slug"/> in namespace <paramref name="ns"/>, when the user belongs to
    /// that namespace. Anything else (no such namespace, another's namespace, no such project) is the same 404.
    /// </summary>
    public static async Task<(ProjectNamespace Namespace, Project Project)> FindProjectAsync(
        AfnioDbContext db, UserContext user, string ns, string slug, CancellationToken ct)
    {
        var owner = await db.FindReachableAsync(user.UserId, ns, ct) ?? throw ApiException.NotFound("project", "slug");
        var project = await db.Projects.AsNoTracking().SingleOrDefaultAsync(p => p.NamespaceId == owner.Id && p.Slug == slug, ct)
            ?? throw ApiException.NotFound("project", "slug");
        return (owner, project);
    }

    private static ProjectContext Scope(Project project, UserContext user) => new(project.Id, user.ApiKeyId);

    private static async Task<SdkProjectResponse> ToResponseAsync(AfnioDbContext db, ProjectNamespace owner, Project project, string? role, CancellationToken ct)
    {
        var lastRun = await db.Runs.Where(r => r.ProjectId == project.Id).MaxAsync(r => (DateTimeOffset?)r.CreatedAt, ct);
        var organization = owner.Kind == ProjectNamespace.OrganizationKind
            ? await db.Organizations.AsNoTracking().SingleOrDefaultAsync(o => o.Id == owner.Id, ct)
            : null;
        return new SdkProjectResponse(project.Id.ToString(), PrefixedId.Format(PrefixedId.Project, project.Id), project.Name, project.Slug!,
            SdkDates.Format(project.CreatedAt), lastRun is { } at ? SdkDates.Format(at) : null, project.Visibility ?? "TEAM", role,
            organization?.Id.ToString(), organization?.DisplayName, organization is null ? null : owner.Slug);
    }

    private static async Task<Dictionary<Guid, SdkRunUser>> UsersAsync(AfnioDbContext db, IReadOnlyList<Run> runs, CancellationToken ct)
    {
        var ids = runs.Select(r => r.UserId).OfType<Guid>().Distinct().ToList();
        return ids.Count == 0
            ? []
            : await db.Users.AsNoTracking().Where(u => ids.Contains(u.Id))
                .Join(db.Namespaces, u => u.Id, n => n.Id, (u, n) => new { u.Id, u.Username, n.Slug })
                .ToDictionaryAsync(u => u.Id, u => new SdkRunUser(u.Id.ToString(), u.Username, u.Slug), ct);
    }

    private static SdkRunResponse ToResponse(Run run, Project project, Dictionary<Guid, SdkRunUser> users) => new(
        run.Id.ToString(), PrefixedId.Format(PrefixedId.Run, run.Id), run.Name, run.Description, FromStatus(run.Status),
        SdkDates.Format(run.CreatedAt), SdkDates.Format(run.UpdatedAt), new SdkRunProject(project.Id.ToString(), project.Name, project.Slug!),
        run.UserId is { } u ? users.GetValueOrDefault(u) : null);

    private static async Task<List<SdkMetricResponse>> MetricsAsync(AfnioDbContext db, Guid runId, CancellationToken ct) =>
        [.. (await db.RunMetrics.AsNoTracking().Where(m => m.RunId == runId).OrderBy(m => m.Id).ToListAsync(ct))
            .Select(m => new SdkMetricResponse(PrefixedId.Format(PrefixedId.Metric, m.Id), m.Name, m.Value, m.Step, SdkDates.Format(m.CreatedAt)))];

    /// <summary>A run named by afnio's uuid, or by the v1 id: the v1 form that RunsApi takes.</summary>
    private static string RunId(string run) => PrefixedId.Format(PrefixedId.Run, RunGuid(run));

    private static Guid RunGuid(string run) =>
        Guid.TryParse(run, out var guid) || PrefixedId.TryParse(PrefixedId.Run, run, out guid) ? guid : throw ApiException.NotFound("run", "run");

    /// <summary>afnio's statuses (RUNNING, COMPLETED, CRASHED, FAILED) are the service's, in upper case.</summary>
    private static string? ToStatus(string? status) => status switch
    {
        null => null,
        "RUNNING" or "COMPLETED" or "CRASHED" or "FAILED" => status.ToLowerInvariant(),
        _ => throw ApiException.BadRequest("invalid_status", $"status must be one of: RUNNING, COMPLETED, CRASHED, FAILED; got '{status}'.", "status"),
    };

    /// <summary>A server-driven run's other endings are shown as the nearest status afnio knows.</summary>
    private static string FromStatus(string status) => status switch
    {
        Run.Running => "RUNNING",
        Run.Completed or Run.StoppedBudget => "COMPLETED",
        Run.Crashed => "CRASHED",
        _ => "FAILED",
    };

    /// <summary>A metric value as Python's <c>float()</c> takes it: a number, a boolean or a numeric string.</summary>
    private static double ToNumber(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Number => value.GetDouble(),
        JsonValueKind.True => 1,
        JsonValueKind.False => 0,
        JsonValueKind.String when double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        JsonValueKind.Undefined => throw ApiException.BadRequest("missing_field", "'value' is required: a number.", "value"),
        _ => throw ApiException.BadRequest("invalid_value", "'value' must be a number (or a boolean, or a string holding a number).", "value"),
    };
}
