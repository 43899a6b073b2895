using System.Text.Json;
using System.Text.Json.Serialization;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Runs;
using Afnio.Data;
using Afnio.Data.Programs;
using Afnio.Domain.Common;
using Afnio.Domain.Programs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Programs;

/// <summary>Creates a program: a name and its definition (parameters, constants, inputs, targets, steps, output, loss, metrics).</summary>
public sealed record CreateProgramRequest
{
    public string? Name { get; init; }

    public string? Description { get; init; }

    /// <summary>The program; see the README's "Programs" section for its shape.</summary>
    public JsonElement? Definition { get; init; }
}

/// <summary>A parameter's current value in the production version.</summary>
public sealed record ProgramParameterResponse(string Value, string Role);

/// <summary>A program with its production version's parameter values.</summary>
public sealed record ProgramResponse(
    [property: JsonPropertyOrder(-2)] string Id, string Name, string? Description, int Version,
    [property: JsonConverter(typeof(UserKeysConverter))] IReadOnlyDictionary<string, ProgramParameterResponse> Parameters, JsonElement Definition, long CreatedAt, long UpdatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "program";
}

/// <summary>One version of a program's parameter values and where it came from.</summary>
public sealed record ProgramVersionResponse(
    string ProgramId, int Version, bool Current, [property: JsonConverter(typeof(UserKeysConverter))] IReadOnlyDictionary<string, string> Parameters, string Source,
    string? RunId, string? CheckpointId, string? Metric, double? Score, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "program.version";
}

/// <summary>
/// Programs: the declarative agent a training run optimizes. A program is validated whole when it
/// is created; its parameter values are versioned, and <c>GET /v1/programs/{id}</c> shows the
/// production version's values, the prompt an application reads.
/// </summary>
public static class ProgramsApi
{
    /// <summary>The largest definition accepted, in bytes of JSON.</summary>
    public const int MaxDefinitionBytes = 1 << 20;

    public static RouteGroupBuilder MapPrograms(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/programs").WithTags("Programs");
        group.MapPost("/", CreateProgram).WithName("createProgram")
            .WithDescription("Creates a program after validating it whole: names, references (each step uses only what is defined before it), " +
                "operation arguments, templates against their inputs, and that every parameter reaches the loss. Version 1 holds the initial values.");
        group.MapGet("/", ListPrograms).WithName("listPrograms");
        group.MapGet("/{id}", GetProgram).WithName("retrieveProgram")
            .WithDescription("The program with its production version's parameter values.");
        group.MapGet("/{id}/versions", ListVersions).WithName("listProgramVersions");
        group.MapGet("/{id}/versions/{version:int}", GetVersion).WithName("retrieveProgramVersion");
        group.MapDelete("/{id}", DeleteProgram).WithName("deleteProgram");
        return v1;
    }

    public static async Task<Created<ProgramResponse>> CreateProgram(
        CreateProgramRequest request, AfnioDbContext db, ProjectContext project, IOptions<OperationLimits> limits, TimeProvider clock,
        CancellationToken ct)
    {
        var name = RunsApi.Text(request.Name ?? throw ApiException.BadRequest("missing_field", "'name' is required.", "name"), 200, "name");
        var description = request.Description is null ? null : RunsApi.Text(request.Description, 2000, "description");
        var json = request.Definition ?? throw ApiException.BadRequest("missing_field", "'definition' is required: the program.", "definition");
        if (json.GetRawText().Length > MaxDefinitionBytes)
        {
            throw ApiException.BadRequest("program_too_large", $"A program's definition may be at most {MaxDefinitionBytes} bytes.", "definition");
        }

        StorableJson.Check(json, ProgramParser.Code, "definition");
        var definition = ProgramParser.Parse(json);
        CheckRoles(definition, limits.Value);
        var now = clock.GetUtcNow();
        var program = await CreateAsync(db, project.ProjectId, name, description, definition, ProgramVersion.Created, now, ct);
        var response = ToResponse(program, definition.InitialValues());
        return TypedResults.Created($"/v1/programs/{response.Id}", response);
    }

    /// <summary>The roles a program gives its variables follow the same limit as a variable's role.</summary>
    private static void CheckRoles(ProgramDefinition definition, OperationLimits limits)
    {
        foreach (var (kind, value) in definition.Parameters.Select(p => ("parameters", (p.Name, p.Role)))
            .Concat(definition.Constants.Select(c => ("constants", (c.Name, c.Role))))
            .Concat(definition.Inputs.Select(f => ("inputs", (f.Name, f.Role))))
            .Concat(definition.Targets.Select(f => ("targets", (f.Name, f.Role)))))
        {
            limits.CheckRole(value.Role, $"definition.{kind}.{value.Name}.role");
        }
    }

    /// <summary>Stores a program and its version 1 in one transaction.</summary>
    public static async Task<AgentProgram> CreateAsync(
        AfnioDbContext db, Guid projectId, string name, string? description, ProgramDefinition definition, string source, DateTimeOffset now,
        CancellationToken ct, IReadOnlyDictionary<string, string>? values = null)
    {
        var program = new AgentProgram
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = projectId,
            Name = name,
            Description = description,
            Definition = definition.ToJson().ToJsonString(),
            CurrentVersion = 1,
            CreatedAt = now,
            UpdatedAt = now,
        };
        db.Programs.Add(program);
        db.ProgramVersions.Add(new ProgramVersion
        {
            ProgramId = program.Id,
            Version = 1,
            Parameters = JsonSerializer.Serialize(values ?? definition.InitialValues()),
            Source = source,
            CreatedAt = now,
        });
        await db.SaveChangesAsync(ct);
        return program;
    }

    public static async Task<Ok<ListResponse<ProgramResponse>>> ListPrograms(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var (rows, limit) = await db.Programs.AsNoTracking().Where(p => p.ProjectId == project.ProjectId).FetchPageAsync(PrefixedId.Program, page, ct);
        var ids = rows.Select(r => r.Id).ToList();
        var versions = await db.ProgramVersions.AsNoTracking().Where(v => ids.Contains(v.ProgramId))
            .Join(db.Programs, v => new { v.ProgramId, v.Version }, p => new { ProgramId = p.Id, Version = p.CurrentVersion }, (v, _) => v)
            .ToDictionaryAsync(v => v.ProgramId, v => v.Parameters, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(r => ToResponse(r, Values(versions[r.Id])))], limit, r => r.Id));
    }

    public static async Task<Ok<ProgramResponse>> GetProgram(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var program = await FindAsync(db, project, id, ct);
        var version = await db.ProgramVersions.AsNoTracking().SingleAsync(v => v.ProgramId == program.Id && v.Version == program.CurrentVersion, ct);
        return TypedResults.Ok(ToResponse(program, Values(version.Parameters)));
    }

    public static async Task<Ok<ListResponse<ProgramVersionResponse>>> ListVersions(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var program = await FindAsync(db, project, id, ct);
        var versions = await db.ProgramVersions.AsNoTracking().Where(v => v.ProgramId == program.Id).OrderBy(v => v.Version).ToListAsync(ct);
        return TypedResults.Ok(new ListResponse<ProgramVersionResponse>([.. versions.Select(v => ToVersionResponse(program, v))], null, null, false));
    }

    public static async Task<Ok<ProgramVersionResponse>> GetVersion(string id, int version, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var program = await FindAsync(db, project, id, ct);
        var row = await db.ProgramVersions.AsNoTracking().SingleOrDefaultAsync(v => v.ProgramId == program.Id && v.Version == version, ct)
            ?? throw ApiException.NotFound("program_version", "version");
        return TypedResults.Ok(ToVersionResponse(program, row));
    }

    public static async Task<NoContent> DeleteProgram(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var program = await FindAsync(db, project, id, ct);
        var active = await db.Runs.AnyAsync(r => r.ProgramId == program.Id && r.Status == Data.Runs.Run.Running
            && db.Jobs.Any(j => j.Id == r.JobId && (j.Status == Data.Jobs.JobStatus.Queued || j.Status == Data.Jobs.JobStatus.Running || j.Status == Data.Jobs.JobStatus.Cancelling)), ct);
        if (active)
        {
            throw ApiException.Conflict("program_in_use", "A run is training this program; cancel it or wait for it to finish first.");
        }

        await db.Programs.Where(p => p.Id == program.Id).ExecuteDeleteAsync(ct);
        return TypedResults.NoContent();
    }

    public static async Task<AgentProgram> FindAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct, string param = "id") =>
        PrefixedId.TryParse(PrefixedId.Program, id, out var guid)
            ? await db.Programs.AsNoTracking().SingleOrDefaultAsync(p => p.Id == guid && p.ProjectId == project.ProjectId, ct)
                ?? throw ApiException.NotFound("program", param)
            : throw ApiException.NotFound("program", param);

    /// <summary>The stored definition, read back (it was validated when stored).</summary>
    public static ProgramDefinition Definition(AgentProgram program) => ProgramParser.Parse(JsonDocument.Parse(program.Definition).RootElement);

    public static IReadOnlyDictionary<string, string> Values(string json) =>
        JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? [];

    // The stored definition was validated when it was stored: read the parameters' roles from it directly.
    private static ProgramResponse ToResponse(AgentProgram p, IReadOnlyDictionary<string, string> values)
    {
        var definition = JsonDocument.Parse(p.Definition).RootElement.Clone();
        var parameters = definition.GetProperty("parameters").EnumerateObject().ToDictionary(d => d.Name,
            d => new ProgramParameterResponse(values.GetValueOrDefault(d.Name) ?? d.Value.GetProperty("value").GetString()!, d.Value.GetProperty("role").GetString()!));
        return new(PrefixedId.Format(PrefixedId.Program, p.Id), p.Name, p.Description, p.CurrentVersion, parameters, definition,
            UnixTime.Of(p.CreatedAt), UnixTime.Of(p.UpdatedAt));
    }

    private static ProgramVersionResponse ToVersionResponse(AgentProgram p, ProgramVersion v) => new(
        PrefixedId.Format(PrefixedId.Program, p.Id), v.Version, v.Version == p.CurrentVersion, Values(v.Parameters), v.Source,
        PrefixedId.Format(PrefixedId.Run, v.RunId), PrefixedId.Format(PrefixedId.Checkpoint, v.CheckpointId), v.Metric, v.Score, UnixTime.Of(v.CreatedAt));
}
