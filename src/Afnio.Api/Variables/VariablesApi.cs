using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Variables;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Variables;

/// <summary>Variables and their gradient lists, with the reference's rules (semantics §1).</summary>
public static class VariablesApi
{
    public static RouteGroupBuilder MapVariables(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/variables").WithTags("Variables");
        group.MapPost("/", CreateVariable).WithName("createVariable");
        group.MapGet("/", ListVariables).WithName("listVariables");
        group.MapGet("/{id}", GetVariable).WithName("retrieveVariable");
        group.MapPatch("/{id}", UpdateVariable).WithName("updateVariable");
        group.MapDelete("/{id}", DeleteVariable).WithName("deleteVariable");
        group.MapGet("/{id}/grad", ListGrad).WithName("listVariableGrad");
        group.MapPost("/{id}/grad", AppendGrad).WithName("appendVariableGrad");
        group.MapDelete("/{id}/grad", ClearGrad).WithName("clearVariableGrad");
        group.MapPost("/{id}/retain_grad", RetainGrad).WithName("retainVariableGrad");
        group.MapPost("/{id}/detach", DetachVariable).WithName("detachVariable");
        group.MapPost("/{id}/copy", CopyVariable).WithName("copyVariable");
        group.MapPost("/{id}/cast", CastVariable).WithName("castVariable");
        return v1;
    }

    public static async Task<Created<VariableResponse>> CreateVariable(
        CreateVariableRequest request, AfnioDbContext db, ProjectContext project, IOptions<OperationLimits> limits, TimeProvider clock,
        CancellationToken ct)
    {
        var role = limits.Value.CheckRole(StorableText.Check(request.Role ?? string.Empty, "invalid_role", "role"), "role");
        var variable = Variable.Create(project.ProjectId, VariableData.FromJson(request.Data), role,
            request.RequiresGrad ?? request.IsParameter, request.IsParameter, clock.GetUtcNow());
        db.Variables.Add(variable);
        await db.SaveChangesAsync(ct);
        return Created(ToResponse(variable, []));
    }

    public static async Task<Ok<ListResponse<VariableResponse>>> ListVariables(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var (rows, limit) = await db.Variables.AsNoTracking().Where(v => v.ProjectId == project.ProjectId)
            .FetchPageAsync(PrefixedId.Variable, page, ct);
        return TypedResults.Ok(Paging.ToList(await ToResponsesAsync(db, rows, ct), limit, v => v.Id));
    }

    public static async Task<Ok<VariableResponse>> GetVariable(
        string id, AfnioDbContext db, ProjectContext project, CancellationToken ct) =>
        TypedResults.Ok(await ToResponseAsync(db, await FindAsync(db, project, id, "id", ct), ct));

    public static async Task<Ok<VariableResponse>> UpdateVariable(
        string id, UpdateVariableRequest request, AfnioDbContext db, ProjectContext project, IOptions<OperationLimits> limits,
        CancellationToken ct)
    {
        var variable = await FindAsync(db, project, id, "id", ct);
        if (request.Data.ValueKind != System.Text.Json.JsonValueKind.Undefined)
        {
            variable.SetData(VariableData.FromJson(request.Data));
        }

        variable.Role = request.Role is { } role ? limits.Value.CheckRole(StorableText.Check(role, "invalid_role", "role"), "role") : variable.Role;
        // is_leaf is derived from requires_grad and grad_fn, so it follows by itself.
        variable.RequiresGrad = request.RequiresGrad ?? variable.RequiresGrad;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(await ToResponseAsync(db, variable, ct));
    }

    public static async Task<Ok<DeletedResponse>> DeleteVariable(
        string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var guid = ParseId(id, "id");
        var deleted = await db.Variables.Where(v => v.Id == guid && v.ProjectId == project.ProjectId).ExecuteDeleteAsync(ct);
        return deleted == 1
            ? TypedResults.Ok(new DeletedResponse(id, "variable.deleted", true))
            : throw ApiException.NotFound("variable", "id");
    }

    public static async Task<Ok<ListResponse<VariableResponse>>> ListGrad(
        string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var variable = await FindAsync(db, project, id, "id", ct);
        VariableRules.EnsureGradAccessible(variable.IsLeaf, variable.RetainGrad, GradAccess.Read);
        return TypedResults.Ok(await GradListAsync(db, variable.Id, ct));
    }

    public static async Task<Ok<ListResponse<VariableResponse>>> AppendGrad(
        string id, AppendGradRequest request, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var variable = await FindAsync(db, project, id, "id", ct);
        VariableRules.EnsureGradAccessible(variable.IsLeaf, variable.RetainGrad, GradAccess.Append);
        var gradient = await FindAsync(db, project, request.VariableId, "variable_id", ct);
        db.VariableGradients.Add(new VariableGradient { VariableId = variable.Id, GradientId = gradient.Id });
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(await GradListAsync(db, variable.Id, ct));
    }

    public static async Task<Ok<ListResponse<VariableResponse>>> ClearGrad(
        string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var variable = await FindAsync(db, project, id, "id", ct);
        VariableRules.EnsureGradAccessible(variable.IsLeaf, variable.RetainGrad, GradAccess.Set);
        await db.VariableGradients.Where(g => g.VariableId == variable.Id).ExecuteDeleteAsync(ct);
        return TypedResults.Ok(new ListResponse<VariableResponse>([], null, null, false));
    }

    public static async Task<Ok<VariableResponse>> RetainGrad(
        string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var variable = await FindAsync(db, project, id, "id", ct);
        VariableRules.EnsureCanRetainGrad(variable.IsLeaf);
        variable.RetainGrad = true;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(await ToResponseAsync(db, variable, ct));
    }

    /// <summary><c>detach()</c>: a new variable with the same data and role that does not require grad.</summary>
    public static async Task<Created<VariableResponse>> DetachVariable(
        string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var source = await FindAsync(db, project, id, "id", ct);
        var detached = Variable.Create(project.ProjectId, source.GetData(), source.Role, requiresGrad: false, isParameter: false,
            clock.GetUtcNow());
        db.Variables.Add(detached);
        await db.SaveChangesAsync(ct);
        return Created(ToResponse(detached, []));
    }

    /// <summary><c>copy_(src)</c>: copies data, role and requires_grad in place.</summary>
    public static async Task<Ok<VariableResponse>> CopyVariable(
        string id, CopyVariableRequest request, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var destination = await FindAsync(db, project, id, "id", ct);
        var source = await FindAsync(db, project, request.SourceId, "source_id", ct);
        destination.SetData(VariableRules.CopyData(destination.GetData(), source.GetData()));
        destination.Role = source.Role;
        destination.RequiresGrad = source.RequiresGrad;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(await ToResponseAsync(db, destination, ct));
    }

    /// <summary><c>to(dtype)</c>: a new variable with the data cast; same role and requires_grad.</summary>
    public static async Task<Created<VariableResponse>> CastVariable(
        string id, CastVariableRequest request, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var source = await FindAsync(db, project, id, "id", ct);
        var cast = Variable.Create(project.ProjectId, VariableRules.Cast(source.GetData(), request.Dtype), source.Role,
            source.RequiresGrad, isParameter: false, clock.GetUtcNow());
        db.Variables.Add(cast);
        await db.SaveChangesAsync(ct);
        return Created(ToResponse(cast, []));
    }

    /// <summary>Loads a variable of the caller's project (tracked); anything else is a 404 naming <paramref name="param"/>.</summary>
    public static async Task<Variable> FindAsync(AfnioDbContext db, ProjectContext project, string id, string param, CancellationToken ct)
    {
        var guid = ParseId(id, param);
        return await db.Variables.SingleOrDefaultAsync(v => v.Id == guid && v.ProjectId == project.ProjectId, ct)
            ?? throw ApiException.NotFound("variable", param);
    }

    public static async Task<VariableResponse> ToResponseAsync(AfnioDbContext db, Variable variable, CancellationToken ct) =>
        (await ToResponsesAsync(db, [variable], ct))[0];

    /// <summary>Maps variables to responses, reading all their gradient lists in one query.</summary>
    public static async Task<List<VariableResponse>> ToResponsesAsync(AfnioDbContext db, IReadOnlyList<Variable> variables, CancellationToken ct)
    {
        var ids = variables.Select(v => v.Id).ToList();
        var grads = (await db.VariableGradients.AsNoTracking()
                .Where(g => ids.Contains(g.VariableId))
                .OrderBy(g => g.Seq)
                .Select(g => new { g.VariableId, g.GradientId })
                .ToListAsync(ct))
            .ToLookup(g => g.VariableId, g => PrefixedId.Format(PrefixedId.Variable, g.GradientId));
        return [.. variables.Select(v => ToResponse(v, [.. grads[v.Id]]))];
    }

    private static async Task<ListResponse<VariableResponse>> GradListAsync(AfnioDbContext db, Guid variableId, CancellationToken ct)
    {
        var gradients = await db.VariableGradients.AsNoTracking()
            .Where(g => g.VariableId == variableId)
            .OrderBy(g => g.Seq)
            .Join(db.Variables, g => g.GradientId, v => v.Id, (g, v) => v)
            .ToListAsync(ct);
        return Paging.ToList(await ToResponsesAsync(db, gradients, ct), int.MaxValue, v => v.Id);
    }

    private static Guid ParseId(string id, string param) =>
        PrefixedId.TryParse(PrefixedId.Variable, id, out var guid)
            ? guid
            : param == "id"
                ? throw ApiException.NotFound("variable", param)
                : throw ApiException.BadRequest("invalid_id", $"{param} must be a variable id (var_…); got '{id}'.", param);

    public static VariableResponse ToResponse(Variable v, IReadOnlyList<string> grad) => new(
        PrefixedId.Format(PrefixedId.Variable, v.Id), v.GetData(), v.Role, v.RequiresGrad, v.IsParameter, v.IsLeaf,
        v.RetainGrad, v.OutputNr, PrefixedId.Format(PrefixedId.Node, v.GradFnId), grad, UnixTime.Of(v.CreatedAt));

    private static Created<VariableResponse> Created(VariableResponse response) =>
        TypedResults.Created($"/v1/variables/{response.Id}", response);
}
