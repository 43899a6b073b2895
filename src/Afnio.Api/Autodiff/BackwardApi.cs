using System.Text.Json;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Jobs;
using Afnio.Data;
using Afnio.Data.Graph;
using Afnio.Data.Jobs;
using Afnio.Data.Variables;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Autodiff;

/// <summary>
/// <c>backward()</c>: checks the request against the engine's rules at once (roots, gradients,
/// inputs, a freed graph), then queues the pass as a job for the Worker.
/// </summary>
public static class BackwardApi
{
    public static RouteGroupBuilder MapBackward(this RouteGroupBuilder v1)
    {
        v1.MapPost("/backward", StartBackward).WithTags("Backward").WithName("startBackward")
            .ProducesProblem(StatusCodes.Status409Conflict);
        return v1;
    }

    public static async Task<Accepted<JobResponse>> StartBackward(
        BackwardRequest request, OperationRegistry operations, AfnioDbContext db, ProjectContext project,
        TimeProvider clock, CancellationToken ct)
    {
        var rootIds = Ids(request.Variables, "variables");
        var gradientIds = request.GradVariables?.Select((id, i) => id is null ? (Guid?)null : Id(id, $"grad_variables[{i}]")).ToList();
        var inputIds = request.Inputs is null ? null : Ids(request.Inputs, "inputs");
        operations.Limits.CheckVariableCount(rootIds.Count + (gradientIds?.Count ?? 0) + (inputIds?.Count ?? 0), "variables");
        var variables = await LoadAsync(db, project, rootIds, gradientIds, inputIds, ct);

        var roots = rootIds.Select(id => variables[id]).ToList();
        var rootNodes = roots.Where(r => r.GradFnId is not null).Select(r => r.GradFnId!.Value).ToList();
        var nodeNames = await db.Nodes.AsNoTracking().Where(n => n.ProjectId == project.ProjectId && rootNodes.Contains(n.Id)).ToDictionaryAsync(n => n.Id, n => n.Name, ct);
        var resolved = BackwardRoots.Resolve(roots,
            gradientIds?.Select(id => id is { } g ? new GradientValue(variables[g].Data, variables[g].Role) : null).ToList(),
            node => operations.IsEvaluatorNode(nodeNames.GetValueOrDefault(node, string.Empty)));
        var inputs = BackwardRoots.Inputs(inputIds?.Select(id => variables[id]).ToList());

        // Planning here refuses a pass through a freed graph with 409 before anything is queued;
        // the worker plans again, so a pass freed in between fails its job with the same error.
        var graph = await db.LoadReachableAsync(project.ProjectId, [.. resolved.Select(r => r.NodeId)], null, ct);
        BackwardPlan.Create(graph, resolved, inputs, new Dictionary<(Guid, int), IReadOnlyList<Guid>>());

        var arguments = new BackwardJobArguments(
            [.. resolved.Select(r => new BackwardRoot(r.VariableId, r.NodeId, r.OutputNr, StoredGradient.From(r.Gradient)))],
            inputIds, request.RetainGraph ?? request.CreateGraph, request.CreateGraph);
        var job = await JobScheduling.AddAsync(db, project.ProjectId, BackwardJobArguments.JobType,
            JsonSerializer.Serialize(arguments, JobEventLog.Json), clock.GetUtcNow(), ct);
        var response = JobResponse.From(job);
        return TypedResults.Accepted($"/v1/jobs/{response.Id}", response);
    }

    private static async Task<Dictionary<Guid, VariableSnapshot>> LoadAsync(
        AfnioDbContext db, ProjectContext project, List<Guid> roots, List<Guid?>? gradients, List<Guid>? inputs, CancellationToken ct)
    {
        var all = roots.Concat(gradients?.OfType<Guid>() ?? []).Concat(inputs ?? []).Distinct().ToList();
        var found = await db.Variables.AsNoTracking()
            .Where(v => v.ProjectId == project.ProjectId && all.Contains(v.Id))
            .ToDictionaryAsync(v => v.Id, Snapshot, ct);
        Check([.. roots.Cast<Guid?>()], "variables");
        Check(gradients ?? [], "grad_variables");
        Check([.. (inputs ?? []).Cast<Guid?>()], "inputs");
        return found;

        void Check(List<Guid?> ids, string field)
        {
            var missing = ids.FindIndex(id => id is { } value && !found.ContainsKey(value));
            if (missing >= 0)
            {
                throw ApiException.NotFound("variable", $"{field}[{missing}]");
            }
        }
    }

    private static VariableSnapshot Snapshot(Variable v) => new(v.Id, v.GetData(), v.Role, v.RequiresGrad, v.GradFnId, v.OutputNr);

    private static List<Guid> Ids(IReadOnlyList<string> ids, string field) => [.. ids.Select((id, i) => Id(id, $"{field}[{i}]"))];

    private static Guid Id(string? id, string param) =>
        PrefixedId.TryParse(PrefixedId.Variable, id, out var guid)
            ? guid
            : throw ApiException.BadRequest("invalid_id", $"{param} must be a variable id (var_…); got '{id}'.", param);
}
