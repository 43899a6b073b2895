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

/// <summary>
/// Commits each backward node's result together with its done mark: the gradient variables it
/// creates, their places in gradient lists, and the step row. Results that arrive while a commit
/// is in flight are committed together in the next transaction (group commit): a node's outputs
/// and its done mark are still never apart, and a pass of many small nodes pays for far fewer
/// durable commits. A crash before a commit leaves nothing of its nodes; after it, a resumed pass
/// replays them instead of running them again. Only the delivery holding the job's lease commits.
/// </summary>
public sealed class BackwardStepStore : INodeResultSink, IAsyncDisposable
{
    private readonly IDbContextFactory<AfnioDbContext> _contexts;
    private readonly Guid _jobId;
    private readonly Guid _projectId;
    private readonly string _owner;
    private readonly TimeProvider _clock;
    private readonly GroupCommitter<NodeResult> _committer;

    public BackwardStepStore(
        IDbContextFactory<AfnioDbContext> contexts, Guid jobId, string owner, Guid projectId, TimeProvider clock, JobMonitor monitor)
    {
        (_contexts, _jobId, _owner, _projectId, _clock) = (contexts, jobId, owner, projectId, clock);
        _committer = new GroupCommitter<NodeResult>(CommitBatchAsync, _ => monitor.StepCompleted());
    }

    public Task CommitAsync(NodeResult result, CancellationToken cancellationToken) => _committer.CommitAsync(result, cancellationToken);

    public ValueTask DisposeAsync() => _committer.DisposeAsync();

    private async Task CommitBatchAsync(IReadOnlyList<NodeResult> results)
    {
        await using var db = await _contexts.CreateDbContextAsync();
        await using var tx = await db.Database.BeginTransactionAsync();
        await JobFence.EnsureHeldAsync(db, _jobId, _owner);
        var now = _clock.GetUtcNow();

        // Gradients for variables deleted since the graph was built are dropped; the lock keeps the
        // rest from being deleted before these steps commit.
        var targets = results.SelectMany(r => r.Appends).Select(a => a.VariableId).Distinct().ToArray();
        var alive = targets.Length == 0 ? [] : (await db.Database
            .SqlQuery<Guid>($"SELECT id AS \"Value\" FROM variables WHERE id = ANY({targets}) FOR KEY SHARE")
            .ToListAsync()).ToHashSet();

        // Bulk inserts, one statement per table: the rows of a whole batch cost a few round trips.
        var gradientRows = new List<(Guid Owner, Variable Gradient)>();
        var steps = new List<(string Key, string Result)>();
        foreach (var result in results)
        {
            var appends = result.Appends.Where(a => alive.Contains(a.VariableId))
                .Select(a => (Owner: a.VariableId, Gradient: Variable.Create(_projectId, a.Gradient.Data, a.Gradient.Role, requiresGrad: false, isParameter: false, now)))
                .ToList();
            gradientRows.AddRange(appends);
            var step = new StoredStep(
                [.. result.EdgeGradients.Select(g => g is null ? null : StoredGradient.From(g))],
                [.. appends.Select(a => new StoredAppend(a.Owner, a.Gradient.Id))]);
            steps.Add((result.NodeId.ToString("N"), JsonSerializer.Serialize(step, JobEventLog.Json)));
        }

        await JobStepRows.InsertAsync(db, _jobId, steps, now);
        if (gradientRows.Count > 0)
        {
            var rows = gradientRows.Select(r => r.Gradient).ToList();
            await db.InsertAsync(rows);

            // In order: the identity column numbers the list entries as they are listed here.
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO variable_gradients (variable_id, gradient_id)
                SELECT t.v, t.g FROM unnest({gradientRows.Select(r => r.Owner).ToArray()}::uuid[], {rows.Select(v => v.Id).ToArray()}::uuid[]) WITH ORDINALITY AS t(v, g, n) ORDER BY t.n
                """);
        }

        await tx.CommitAsync();
    }
}
