using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Accounts;
using Afnio.Data.Jobs;
using Afnio.Data.Projects;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Afnio.Api.Projects;

/// <summary>Admin-only: projects and their API keys.</summary>
public static class ProjectsApi
{
    public static RouteGroupBuilder MapProjects(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/projects").WithTags("Projects").RequireAuthorization(AuthSetup.AdminPolicy);
        group.MapPost("/", CreateProject).WithName("createProject");
        group.MapGet("/", ListProjects).WithName("listProjects");
        group.MapGet("/{id}", GetProject).WithName("retrieveProject");
        group.MapPost("/{id}/api_keys", CreateApiKey).WithName("createApiKey");
        group.MapGet("/{id}/api_keys", ListApiKeys).WithName("listApiKeys");
        group.MapDelete("/{id}/api_keys/{keyId}", RevokeApiKey).WithName("revokeApiKey");
        return v1;
    }

    public static async Task<Created<ProjectResponse>> CreateProject(
        CreateProjectRequest request, AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        ProjectNamespace? owner = null;
        if (request.Namespace is { } slug)
        {
            owner = await db.Namespaces.AsNoTracking().SingleOrDefaultAsync(n => n.Slug == slug, ct)
                ?? throw ApiException.NotFound("namespace", "namespace");
        }

        var project = await AddAsync(db, request.Name, owner?.Id, null, clock.GetUtcNow(), ct);
        var response = ToResponse(project, owner?.Slug);
        return TypedResults.Created($"/v1/projects/{response.Id}", response);
    }

    /// <summary>
    /// Stores a new project: by the admin API, and by the afnio protocol's <c>POST /api/v0/{namespace}/projects/</c>.
    /// In a namespace its slug is python-slugify of the name, as the afnio client computes it, and must be free there.
    /// </summary>
    public static async Task<Project> AddAsync(
        AfnioDbContext db, string? requestedName, Guid? namespaceId, string? visibility, DateTimeOffset now, CancellationToken ct)
    {
        var name = StorableText.Check((requestedName ?? throw ApiException.BadRequest("missing_field", "'name' is required.", "name")).Trim(),
            "invalid_name", "name");
        if (name.Length is 0 or > 200)
        {
            throw ApiException.BadRequest("invalid_name", "name must be 1 to 200 characters.", "name");
        }

        string? slug = null;
        if (namespaceId is not null)
        {
            slug = Slugs.Slugify(name);
            if (slug.Length == 0)
            {
                throw ApiException.BadRequest("invalid_name", $"The name '{name}' has no letter or digit to make a project slug from.", "name");
            }
        }

        var project = new Project { Id = PrefixedId.NewGuid(), Name = name, CreatedAt = now, NamespaceId = namespaceId, Slug = slug, Visibility = visibility };
        db.Projects.Add(project);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            db.Entry(project).State = EntityState.Detached;
            throw ApiException.Conflict("project_slug_taken", $"A project with the slug '{slug}' exists in this namespace already.", "name");
        }

        return project;
    }

    public static async Task<Ok<ListResponse<ProjectResponse>>> ListProjects(
        [AsParameters] PageQuery page, AfnioDbContext db, CancellationToken ct)
    {
        var (rows, limit) = await db.Projects.AsNoTracking().FetchPageAsync(PrefixedId.Project, page, ct);
        var slugs = await NamespaceSlugsAsync(db, rows, ct);
        return TypedResults.Ok(Paging.ToList(rows.Select(p => ToResponse(p, NamespaceOf(p, slugs))).ToList(), limit, p => p.Id));
    }

    public static async Task<Ok<ProjectResponse>> GetProject(string id, AfnioDbContext db, CancellationToken ct)
    {
        var project = await FindProjectAsync(db, id, ct);
        return TypedResults.Ok(ToResponse(project, NamespaceOf(project, await NamespaceSlugsAsync(db, [project], ct))));
    }

    public static async Task<Created<ApiKeyCreatedResponse>> CreateApiKey(
        string id, CreateApiKeyRequest request, AfnioDbContext db, ApiKeyCache keys, TimeProvider clock, CancellationToken ct)
    {
        var project = await FindProjectAsync(db, id, ct);
        var name = request.Name?.Trim() is { Length: > 0 } n ? StorableText.Check(n, "invalid_name", "name") : "default";
        if (name.Length > 200)
        {
            throw ApiException.BadRequest("invalid_name", "name must be at most 200 characters.", "name");
        }

        var secret = ApiKeys.Generate();
        var key = new ApiKey
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = project.Id,
            Name = name,
            SecretHash = ApiKeys.Hash(secret),
            Hint = ApiKeys.Hint(secret),
            CreatedAt = clock.GetUtcNow(),
        };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(ct);
        keys.Created(key.SecretHash);
        var keyId = PrefixedId.Format(PrefixedId.ApiKey, key.Id);
        return TypedResults.Created($"/v1/projects/{id}/api_keys/{keyId}", new ApiKeyCreatedResponse(
            keyId, PrefixedId.Format(PrefixedId.Project, project.Id), key.Name, secret, key.Hint, UnixTime.Of(key.CreatedAt)));
    }

    public static async Task<Ok<ListResponse<ApiKeyResponse>>> ListApiKeys(string id, AfnioDbContext db, CancellationToken ct)
    {
        var project = await FindProjectAsync(db, id, ct);
        var keys = await db.ApiKeys.AsNoTracking().Where(k => k.ProjectId == project.Id).OrderBy(k => k.Id).ToListAsync(ct);
        return TypedResults.Ok(Paging.ToList(keys.Select(ToResponse).ToList(), int.MaxValue, k => k.Id));
    }

    /// <summary>Revoking is immediate and permanent; revoking a revoked key changes nothing.</summary>
    public static async Task<Ok<ApiKeyResponse>> RevokeApiKey(
        string id, string keyId, AfnioDbContext db, ApiKeyCache keys, TimeProvider clock, CancellationToken ct)
    {
        var project = await FindProjectAsync(db, id, ct);
        if (!PrefixedId.TryParse(PrefixedId.ApiKey, keyId, out var keyGuid))
        {
            throw ApiException.NotFound("api_key", "key_id");
        }

        var key = await db.ApiKeys.SingleOrDefaultAsync(k => k.Id == keyGuid && k.ProjectId == project.Id, ct)
            ?? throw ApiException.NotFound("api_key", "key_id");
        key.RevokedAt ??= clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        keys.Evict(key.SecretHash);
        // Every API process drops the key from its cache and ends the streams and long polls it holds.
        await JobNotifications.KeyRevokedAsync(db, key.Id, key.SecretHash, ct);
        return TypedResults.Ok(ToResponse(key));
    }

    private static async Task<Project> FindProjectAsync(AfnioDbContext db, string id, CancellationToken ct) =>
        PrefixedId.TryParse(PrefixedId.Project, id, out var guid)
        && await db.Projects.AsNoTracking().SingleOrDefaultAsync(p => p.Id == guid, ct) is { } project
            ? project
            : throw ApiException.NotFound("project", "id");

    private static async Task<Dictionary<Guid, string>> NamespaceSlugsAsync(AfnioDbContext db, IReadOnlyList<Project> projects, CancellationToken ct)
    {
        var ids = projects.Select(p => p.NamespaceId).OfType<Guid>().Distinct().ToList();
        return ids.Count == 0 ? [] : await db.Namespaces.AsNoTracking().Where(n => ids.Contains(n.Id)).ToDictionaryAsync(n => n.Id, n => n.Slug, ct);
    }

    private static string? NamespaceOf(Project p, Dictionary<Guid, string> slugs) =>
        p.NamespaceId is { } id ? slugs.GetValueOrDefault(id) : null;

    private static ProjectResponse ToResponse(Project p, string? namespaceSlug) =>
        new(PrefixedId.Format(PrefixedId.Project, p.Id), p.Name, namespaceSlug, namespaceSlug is null ? null : p.Slug, UnixTime.Of(p.CreatedAt));

    private static ApiKeyResponse ToResponse(ApiKey k) => new(
        PrefixedId.Format(PrefixedId.ApiKey, k.Id), PrefixedId.Format(PrefixedId.Project, k.ProjectId),
        k.Name, k.Hint, UnixTime.Of(k.CreatedAt), UnixTime.Of(k.RevokedAt));
}
