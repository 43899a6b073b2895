using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Variables;
using Afnio.Data;
using Afnio.Data.Graph;
using Afnio.Data.Variables;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Autodiff;

/// <summary>Forward operations (<c>Function.apply</c>): run inline, record the graph, return the outputs and their node.</summary>
public static class FunctionsApi
{
    public static RouteGroupBuilder MapFunctions(this RouteGroupBuilder v1)
    {
        v1.MapPost("/functions/{name}", CallFunction).WithTags("Functions").WithName("callFunction")
            .WithDescription("Runs an operation (add, sum, split, …) on variables given by id. The body holds the " +
                "operation's arguments and grad_enabled (default true; false is afnio's no_grad: leaf outputs, no graph).");
        return v1;
    }

    public static async Task<Ok<FunctionResponse>> CallFunction(
        string name, JsonElement body, OperationRegistry operations, AfnioDbContext db, ProjectContext project,
        TimeProvider clock, CancellationToken ct)
    {
        var operation = operations.Get(name);
        var (arguments, gradEnabled) = SplitBody(body);
        var bound = operation.Bind(arguments);
        operations.Limits.CheckVariableCount(bound.Variables.Count, "arguments");
        var variables = await LoadVariablesAsync(db, project, bound.Variables, arguments, ct);
        var leaves = variables.Values.Where(v => v.RequiresGrad && v.IsLeaf).Select(v => v.Id).ToList();
        var accumulate = gradEnabled ? await db.AccumulateNodesAsync(project.ProjectId, leaves, ct) : [];
        var applied = await FunctionApplier.ApplyAsync(
            operation, bound, variables, gradEnabled, leaf => accumulate.TryGetValue(leaf, out var node) ? node : null, ct);

        var now = clock.GetUtcNow();
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var node = applied.Node;
        if (node is not null && applied.NewAccumulateNodes.Count > 0)
        {
            // A concurrent call may have given a leaf its AccumulateGrad node first: point at that one.
            var actual = await db.InsertAccumulateNodesAsync(project.ProjectId, applied.NewAccumulateNodes, now, ct);
            var made = applied.NewAccumulateNodes.ToDictionary(n => n.Id, n => actual[n.VariableId!.Value]);
            node = node with
            {
                NextFunctions = [.. node.NextFunctions.Select(e => e.NodeId is { } id && made.TryGetValue(id, out var real) ? e with { NodeId = real } : e)],
            };
        }

        Node? stored = node is null ? null : Node.From(node, project.ProjectId, now);
        if (stored is not null)
        {
            db.Nodes.Add(stored);
        }

        var outputs = applied.Outputs.Select((output, i) =>
        {
            var variable = Variable.Create(project.ProjectId, output.Data, output.Role, applied.RequiresGrad, isParameter: false, now);
            variable.GradFnId = stored?.Id;
            variable.OutputNr = stored is null ? 0 : i;
            return variable;
        }).ToList();
        db.Variables.AddRange(outputs);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return TypedResults.Ok(new FunctionResponse(
            [.. outputs.Select(v => VariablesApi.ToResponse(v, []))], stored is null ? null : GraphApi.ToResponse(stored)));
    }

    // grad_enabled is the service's own field; everything else belongs to the operation.
    private static (JsonElement Arguments, bool GradEnabled) SplitBody(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw ApiException.BadRequest("invalid_arguments", "The body must be a JSON object of the operation's arguments.");
        }

        // Everything an operation keeps (roles, templates, completion args, saved context) must be storable text.
        StorableJson.Check(body, "invalid_arguments", "arguments");
        var arguments = JsonObject.Create(body)!;
        var gradEnabled = true;
        if (arguments.Remove("grad_enabled", out var flag) && flag is not null)
        {
            gradEnabled = flag.GetValueKind() switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw ApiException.BadRequest("invalid_type", "grad_enabled must be true or false.", "grad_enabled"),
            };
        }

        return (JsonSerializer.SerializeToElement(arguments), gradEnabled);
    }

    private static async Task<Dictionary<Guid, VariableSnapshot>> LoadVariablesAsync(
        AfnioDbContext db, ProjectContext project, IReadOnlyList<Guid> ids, JsonElement arguments, CancellationToken ct)
    {
        var wanted = ids.Distinct().ToList();
        var found = await db.Variables.AsNoTracking()
            .Where(v => v.ProjectId == project.ProjectId && wanted.Contains(v.Id))
            .ToDictionaryAsync(v => v.Id, v => new VariableSnapshot(v.Id, v.GetData(), v.Role, v.RequiresGrad, v.GradFnId, v.OutputNr), ct);
        var missing = wanted.FindIndex(id => !found.ContainsKey(id));
        if (missing >= 0)
        {
            throw ApiException.NotFound("variable", ParamOf(arguments, PrefixedId.Format(PrefixedId.Variable, wanted[missing])));
        }

        return found;
    }

    // The argument that names a variable id, as "x" or "x[2]", for the error's param.
    private static string? ParamOf(JsonElement arguments, string id)
    {
        foreach (var property in arguments.EnumerateObject())
        {
            if (property.Value.ValueKind == JsonValueKind.String && property.Value.GetString() == id)
            {
                return property.Name;
            }

            if (property.Value.ValueKind == JsonValueKind.Array)
            {
                var index = property.Value.EnumerateArray().Select((item, i) => (item, i))
                    .FirstOrDefault(x => x.item.ValueKind == JsonValueKind.String && x.item.GetString() == id);
                if (index.item.ValueKind == JsonValueKind.String)
                {
                    return $"{property.Name}[{index.i}]";
                }
            }
        }

        return null;
    }
}
