using System.Text;
using System.Text.Json;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Variables;
using Afnio.Data;
using Afnio.Data.Graph;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Autodiff;

/// <summary>The recorded graph: single nodes, and everything behind a variable as JSON or a Mermaid diagram.</summary>
public static class GraphApi
{
    public static RouteGroupBuilder MapGraph(this RouteGroupBuilder v1)
    {
        v1.MapGet("/nodes/{id}", GetNode).WithTags("Graph").WithName("retrieveNode");
        v1.MapGet("/variables/{id}/graph", GetVariableGraph).WithTags("Graph").WithName("retrieveVariableGraph")
            .Produces<GraphResponse>(StatusCodes.Status200OK, "application/json", "text/plain")
            .WithDescription("Every node and edge behind a variable. format=mermaid returns a Mermaid flowchart as text/plain.");
        return v1;
    }

    public static async Task<Ok<NodeResponse>> GetNode(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var guid = PrefixedId.TryParse(PrefixedId.Node, id, out var parsed) ? parsed : throw ApiException.NotFound("node", "id");
        var node = await db.Nodes.AsNoTracking().SingleOrDefaultAsync(n => n.Id == guid && n.ProjectId == project.ProjectId, ct)
            ?? throw ApiException.NotFound("node", "id");
        return TypedResults.Ok(ToResponse(node));
    }

    public static async Task<Results<Ok<GraphResponse>, ContentHttpResult>> GetVariableGraph(
        string id, [FromQuery(Name = "format")] string? format, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        if (format is not (null or "json" or "mermaid"))
        {
            throw ApiException.BadRequest("invalid_format", $"format must be 'json' or 'mermaid'; got '{format}'.", "format");
        }

        var variable = await VariablesApi.FindAsync(db, project, id, "id", ct);
        // A non-leaf's graph starts at its grad_fn; a leaf that requires grad has only its AccumulateGrad node.
        var root = variable.GradFnId;
        if (root is null && variable.RequiresGrad
            && (await db.AccumulateNodesAsync(project.ProjectId, [variable.Id], ct)).TryGetValue(variable.Id, out var accumulate))
        {
            root = accumulate;
        }

        var rows = root is { } start ? await GraphStore.LoadReachableRowsAsync(db, project.ProjectId, [start], ct) : [];
        var ordered = WalkOrder(rows, root);
        var edges = ordered.SelectMany(n => n.GetNextFunctions().Select((e, i) => (From: n.Id, Edge: e, Position: i)))
            .Where(x => x.Edge.NodeId is not null)
            .Select(x => new GraphEdgeResponse(NodeId(x.From), NodeId(x.Edge.NodeId!.Value), x.Edge.OutputNr, x.Position))
            .ToList();
        var graph = new GraphResponse(id, root is { } r ? NodeId(r) : null, [.. ordered.Select(ToResponse)], edges);
        if (format != "mermaid")
        {
            return TypedResults.Ok(graph);
        }

        var roles = await LeafRolesAsync(db, project, ordered, ct);
        return TypedResults.Text(Mermaid(graph, variable.Role, roles), "text/plain", Encoding.UTF8);
    }

    public static NodeResponse ToResponse(Node node) => new(
        NodeId(node.Id), node.Name,
        [.. node.GetNextFunctions().Select(e => new NodeEdgeResponse(PrefixedId.Format(PrefixedId.Node, e.NodeId), e.OutputNr))],
        node.Released, PrefixedId.Format(PrefixedId.Variable, node.VariableId),
        node.SavedContext is null ? null : JsonDocument.Parse(node.SavedContext).RootElement.Clone(),
        UnixTime.Of(node.CreatedAt));

    private static string NodeId(Guid id) => PrefixedId.Format(PrefixedId.Node, id);

    // Breadth-first from the root, edges in order: the order a reader follows the gradient.
    private static List<Node> WalkOrder(List<Node> rows, Guid? root)
    {
        var byId = rows.ToDictionary(n => n.Id);
        var ordered = new List<Node>(rows.Count);
        var seen = new HashSet<Guid>();
        var queue = new Queue<Guid>();
        if (root is { } start)
        {
            queue.Enqueue(start);
        }

        while (queue.TryDequeue(out var id))
        {
            if (!seen.Add(id) || !byId.TryGetValue(id, out var node))
            {
                continue;
            }

            ordered.Add(node);
            foreach (var edge in node.GetNextFunctions())
            {
                if (edge.NodeId is { } next)
                {
                    queue.Enqueue(next);
                }
            }
        }

        return ordered;
    }

    private static async Task<Dictionary<Guid, string>> LeafRolesAsync(AfnioDbContext db, ProjectContext project, List<Node> nodes, CancellationToken ct)
    {
        var leaves = nodes.Where(n => n.VariableId is not null).Select(n => n.VariableId!.Value).ToList();
        return await db.Variables.AsNoTracking()
            .Where(v => v.ProjectId == project.ProjectId && leaves.Contains(v.Id))
            .ToDictionaryAsync(v => v.Id, v => v.Role, ct);
    }

    /// <summary>A Mermaid flowchart: the variable on top, gradients flowing down to the leaves.</summary>
    private static string Mermaid(GraphResponse graph, string role, Dictionary<Guid, string> leafRoles)
    {
        var text = new StringBuilder("flowchart TD\n");
        text.Append($"    root[\"{Label(graph.VariableId)}<br/>{Label(role)}\"]\n");
        if (graph.RootNodeId is { } rootNode)
        {
            text.Append($"    root -.-> {Key(rootNode)}\n");
        }

        var hasNone = false;
        foreach (var node in graph.Nodes)
        {
            var detail = node.VariableId is { } leaf && PrefixedId.TryParse(PrefixedId.Variable, leaf, out var leafId)
                ? $"{leaf}<br/>{Label(leafRoles.GetValueOrDefault(leafId, string.Empty))}"
                : node.Id;
            var released = node.Released ? "<br/>(released)" : string.Empty;
            text.Append($"    {Key(node.Id)}[\"{node.Name}<br/>{detail}{released}\"]\n");
            foreach (var edge in node.NextFunctions)
            {
                hasNone |= edge.NodeId is null;
                text.Append(edge.NodeId is { } to
                    ? $"    {Key(node.Id)} -->|{edge.OutputNr}| {Key(to)}\n"
                    : $"    {Key(node.Id)} -.-> none\n");
            }
        }

        if (hasNone)
        {
            text.Append("    none((None))\n");
        }

        return text.ToString();
    }

    private static string Key(string nodeId) => "n" + nodeId[(PrefixedId.Node.Length + 1)..];

    // Mermaid labels are quoted; quotes and angle brackets become entity codes, long roles are cut.
    private static string Label(string text)
    {
        var shortened = text.Length > 60 ? text[..57] + "..." : text;
        return shortened.Replace("\"", "#quot;", StringComparison.Ordinal).Replace("<", "#lt;", StringComparison.Ordinal)
            .Replace(">", "#gt;", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
    }
}
