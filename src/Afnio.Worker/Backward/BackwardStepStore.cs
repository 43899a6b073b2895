using System.Text.Json;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Variables;
using Afnio.Domain.Autodiff;
using Afnio.Worker.Jobs;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Afnio.Worker.Backward;

/// <summary>What a committed backward step keeps: the gradient sent along each edge, and the gradients it appended.</summary>
public sealed record StoredStep(IReadOnlyList<StoredGradient?> Edges, IReadOnlyList<StoredAppend> Appends)
{
    public NodeResult ToNodeResult(Guid nodeId) => new(nodeId, [.. Edges.Select(e => e?.ToGradient())], []);
}

/// <summary>One gradient appended by a step: to which variable, and the gradient variable made for it.</summary>
public sealed record StoredAppend(Guid VariableId, Guid GradientId);

/// <summary>Thrown when a step was already committed by another delivery of the same job.</summary>
public sealed class StepAlreadyCommittedException(Guid nodeId, Exception inner)
    : Exception($"Step {nodeId:N} was committed by another delivery.", inner);

/// <summary>
/// Commits each backward node's result in one transaction: the gradient variables it creates, their
/// places in gradient lists, and the step row that marks the node done. A crash before the commit
/// leaves nothing; after it, a resumed pass replays the step instead of running the node again.
/// </summary>
public sealed class BackwardStepStore(
    IDbContextFactory<AfnioDbContext> contexts, Guid jobId, Guid projectId, TimeProvider clock, JobMonitor monitor) : INodeResultSink
{
    public async Task CommitAsync(NodeResult result, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await using var tx = await db.Database.BeginTransactionAsync(cancellationToken);
        var now = clock.GetUtcNow();

        // Gradients for variables deleted since the graph was built are dropped; the lock keeps the
        // rest from being deleted before this step commits.
        var targets = result.Appends.Select(a => a.VariableId).Distinct().ToArray();
        var alive = targets.Length == 0 ? [] : (await db.Database
            .SqlQuery<Guid>($"SELECT id AS \"Value\" FROM variables WHERE id = ANY({targets}) FOR KEY SHARE")
            .ToListAsync(cancellationToken)).ToHashSet();
        var appends = result.Appends.Where(a => alive.Contains(a.VariableId))
            .Select(a => (a.VariableId, Gradient: Variable.Create(projectId, a.Gradient.Data, a.Gradient.Role, requiresGrad: false, isParameter: false, now)))
            .ToList();
        db.Variables.AddRange(appends.Select(a => a.Gradient));
        var step = new StoredStep(
            [.. result.EdgeGradients.Select(g => g is null ? null : StoredGradient.From(g))],
            [.. appends.Select(a => new StoredAppend(a.VariableId, a.Gradient.Id))]);
        db.JobSteps.Add(new JobStep
        {
            JobId = jobId,
            StepKey = result.NodeId.ToString("N"),
            Result = JsonSerializer.Serialize(step, JobEventLog.Json),
            CreatedAt = now,
        });
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            throw new StepAlreadyCommittedException(result.NodeId, e);
        }

        if (appends.Count > 0)
        {
            // One statement, in path order: the identity column numbers the list entries as they are listed here.
            var owners = appends.Select(a => a.VariableId).ToArray();
            var gradients = appends.Select(a => a.Gradient.Id).ToArray();
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO variable_gradients (variable_id, gradient_id)
                SELECT t.v, t.g FROM unnest({owners}::uuid[], {gradients}::uuid[]) WITH ORDINALITY AS t(v, g, n) ORDER BY t.n
                """, cancellationToken);
        }

        await tx.CommitAsync(cancellationToken);
        monitor.StepCompleted();
    }
}
