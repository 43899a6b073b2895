using Afnio.Domain.Autodiff;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.Graph;

/// <summary>Reads and writes the stored graph of one project.</summary>
public static class GraphStore
{
    /// <summary>Every node reachable from <paramref name="roots"/> through next_functions, in one recursive query.</summary>
    /// <param name="db">The context.</param>
    /// <param name="projectId">The project.</param>
    /// <param name="roots">Where to start.</param>
    /// <param name="forJob">The backward job asking: nodes it claimed itself are not released for it.</param>
    /// <param name="ct">Cancels the query.</param>
    public static async Task<Dictionary<Guid, GraphNode>> LoadReachableAsync(
        this AfnioDbContext db, Guid projectId, IReadOnlyCollection<Guid> roots, Guid? forJob, CancellationToken ct)
    {
        var rows = await LoadReachableRowsAsync(db, projectId, roots, ct);
        return rows.ToDictionary(n => n.Id, n => n.ToGraphNode(forJob));
    }

    /// <summary>
    /// Claims the function nodes of a pass without retain_graph for <paramref name="jobId"/>, so no
    /// other pass can run through them. False when another pass claimed one of them first.
    /// </summary>
    public static async Task<bool> TryClaimForPassAsync(this AfnioDbContext db, IReadOnlyCollection<Guid> nodes, Guid jobId, CancellationToken ct)
    {
        var ids = nodes.ToArray();
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var claimed = await db.Nodes.Where(n => ids.Contains(n.Id) && (!n.Released || n.ReleasedByJobId == jobId))
            .ExecuteUpdateAsync(s => s.SetProperty(n => n.Released, true).SetProperty(n => n.ReleasedByJobId, jobId), ct);
        if (claimed != ids.Length)
        {
            return false;
        }

        await tx.CommitAsync(ct);
        return true;
    }

    /// <summary>The stored rows behind <see cref="LoadReachableAsync"/>.</summary>
    public static Task<List<Node>> LoadReachableRowsAsync(AfnioDbContext db, Guid projectId, IReadOnlyCollection<Guid> roots, CancellationToken ct)
    {
        var rootArray = roots.Distinct().ToArray();
        // UNION (not UNION ALL) drops rows already seen, so shared subgraphs are walked once.
        return db.Nodes.FromSql($"""
            WITH RECURSIVE reach(id) AS (
                SELECT unnest({rootArray}::uuid[])
                UNION
                SELECT (e.value->>'node_id')::uuid
                FROM reach r
                JOIN nodes n ON n.id = r.id
                CROSS JOIN LATERAL jsonb_array_elements(n.next_functions) e
                WHERE e.value->>'node_id' IS NOT NULL)
            SELECT n.* FROM nodes n JOIN reach r ON n.id = r.id WHERE n.project_id = {projectId}
            """).AsNoTracking().ToListAsync(ct);
    }

    /// <summary>The AccumulateGrad node of each given leaf that has one.</summary>
    public static async Task<Dictionary<Guid, Guid>> AccumulateNodesAsync(
        this AfnioDbContext db, Guid projectId, IReadOnlyCollection<Guid> leaves, CancellationToken ct) =>
        leaves.Count == 0
            ? []
            : await db.Nodes.AsNoTracking()
                .Where(n => n.ProjectId == projectId && n.VariableId != null && leaves.Contains(n.VariableId.Value))
                .ToDictionaryAsync(n => n.VariableId!.Value, n => n.Id, ct);

    /// <summary>
    /// Stores AccumulateGrad nodes made by a forward call. A concurrent call may have made one for the
    /// same leaf first; the unique index keeps one, and the returned map says which node each leaf has.
    /// </summary>
    public static async Task<Dictionary<Guid, Guid>> InsertAccumulateNodesAsync(
        this AfnioDbContext db, Guid projectId, IReadOnlyList<GraphNode> nodes, DateTimeOffset now, CancellationToken ct)
    {
        foreach (var node in nodes)
        {
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO nodes (id, project_id, name, next_functions, saved_context, released, variable_id, created_at)
                VALUES ({node.Id}, {projectId}, {node.Name}, '[]'::jsonb, NULL, FALSE, {node.VariableId}, {now})
                ON CONFLICT (variable_id) DO NOTHING
                """, ct);
        }

        return await db.AccumulateNodesAsync(projectId, [.. nodes.Select(n => n.VariableId!.Value)], ct);
    }
}
