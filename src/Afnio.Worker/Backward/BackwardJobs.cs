using System.Text.Json;
using Afnio.Data;
using Afnio.Data.Graph;
using Afnio.Data.Jobs;
using Afnio.Data.LanguageModels;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Afnio.Worker.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Afnio.Worker.Backward;

/// <summary>What a finished backward pass reports.</summary>
/// <param name="Nodes">Nodes in the pass (AccumulateGrad included).</param>
/// <param name="GradientsAppended">Gradients appended to gradient lists.</param>
/// <param name="VariableIds">The variables whose gradient lists grew, in id order.</param>
public sealed record BackwardResult(int Nodes, int GradientsAppended, IReadOnlyList<string> VariableIds);

/// <summary>
/// Runs a backward pass as a durable job: plans it from the stored graph, runs independent nodes
/// concurrently, commits every node as a step, and on a second delivery (after a crash, a shutdown
/// or a lost lease) resumes from the committed steps.
/// </summary>
public sealed partial class BackwardJobs(
    IDbContextFactory<AfnioDbContext> contexts,
    ModelGateway models,
    JobExecution execution,
    CpuSlots cpu,
    IOptions<JobOptions> options,
    IOptions<OperationLimits> limits,
    TimeProvider clock,
    ILogger<BackwardJobs> log) : IBackwardJobs
{
    // A pass that does not finish gives its claim on the graph back; the gradients of the steps it committed stay.
    public Task RunAsync(Guid jobId, CancellationToken cancellationToken) =>
        execution.RunAsync(jobId, "backward_failed", "The backward pass failed",
            (delivery, ct) => RunPassAsync(delivery.Db, delivery.Recorder, delivery.Job, delivery.Owner, delivery.Monitor, ct),
            db => ReturnGraphAsync(db, jobId), cancellationToken);

    /// <summary>Runs the pass; a cancel request stops it between nodes.</summary>
    private async Task RunPassAsync(
        AfnioDbContext db, JobRecorder recorder, Job job, string owner, JobMonitor monitor, CancellationToken ct)
    {
        var arguments = JsonSerializer.Deserialize<BackwardJobArguments>(job.Arguments!, JobEventLog.Json)
            ?? throw new InvalidOperationException("The job has no arguments.");
        var projectId = job.ProjectId!.Value;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var roots = arguments.RootGradients();
        var graph = await db.LoadReachableAsync(projectId, [.. roots.Select(r => r.NodeId)], job.Id, ct);
        var retained = await RetainedAsync(db, projectId, graph.Keys, ct);
        var plan = await cpu.RunAsync(() => BackwardPlan.Create(graph, roots, arguments.Inputs?.ToHashSet(), retained), ct);
        if (!arguments.RetainGraph && !await db.TryClaimForPassAsync([.. plan.FunctionNodeIds], job.Id, ct))
        {
            // Another pass without retain_graph took part of this graph since this one was planned.
            throw BackwardPlan.GraphReleased();
        }

        var completed = (await db.JobSteps.AsNoTracking().Where(s => s.JobId == job.Id).ToListAsync(ct))
            .Select(s => ParseStep(s.Result).ToNodeResult(Guid.ParseExact(s.StepKey, "N")))
            .ToDictionary(r => r.NodeId);
        await recorder.SetTotalAsync(job.Id, owner, plan.Nodes.Count, ct);
        var planned = watch.Elapsed;

        await using (var store = new BackwardStepStore(contexts, job.Id, owner, projectId, clock, monitor))
        {
            // Model calls are journaled under this job: a resumed node reuses the replies it already paid for.
            var operations = OperationRegistry.Standard(models.ForJob(projectId, job.Id), limits: limits.Value);
            await new BackwardEngine(operations).RunAsync(
                plan, store, completed, Math.Max(1, options.Value.BackwardConcurrency), ct, monitor.CancelRequested);
        }

        var ran = watch.Elapsed - planned;
        // Counted from the committed steps, so a resumed pass reports the appends of every attempt.
        var appended = await db.Database.SqlQuery<Guid>($"""
            SELECT (a.value->>'variable_id')::uuid AS "Value"
            FROM job_steps s CROSS JOIN LATERAL jsonb_array_elements(s.result->'appends') a
            WHERE s.job_id = {job.Id}
            """).ToListAsync(ct);
        var result = new BackwardResult(plan.Nodes.Count, appended.Count,
            [.. appended.Distinct().Order().Select(id => PrefixedId.Format(PrefixedId.Variable, id))]);

        // Freeing the graph and finishing the job commit together: a crash in between cannot leave a
        // job that must resume through a graph it already freed.
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        if (!arguments.RetainGraph)
        {
            await db.Nodes.Where(n => n.ReleasedByJobId == job.Id)
                .ExecuteUpdateAsync(s => s.SetProperty(n => n.SavedContext, (string?)null), ct);
        }

        if (await recorder.SucceedAsync(job.Id, owner, result, ct))
        {
            await tx.CommitAsync(ct);
        }

        LogPass(log, job.Id, plan.Nodes.Count, completed.Count, planned.TotalMilliseconds, ran.TotalMilliseconds, (watch.Elapsed - planned - ran).TotalMilliseconds);
    }

    private static Task<int> ReturnGraphAsync(AfnioDbContext db, Guid jobId) =>
        db.Nodes.Where(n => n.ReleasedByJobId == jobId && n.SavedContext != null)
            .ExecuteUpdateAsync(s => s.SetProperty(n => n.Released, false).SetProperty(n => n.ReleasedByJobId, (Guid?)null), CancellationToken.None);

    private static async Task<Dictionary<(Guid Node, int OutputNr), IReadOnlyList<Guid>>> RetainedAsync(
        AfnioDbContext db, Guid projectId, IEnumerable<Guid> nodes, CancellationToken ct)
    {
        var nodeIds = nodes.ToArray();
        var rows = await db.Variables.AsNoTracking()
            .Where(v => v.ProjectId == projectId && v.RetainGrad && v.GradFnId != null && nodeIds.Contains(v.GradFnId.Value))
            .OrderBy(v => v.Id)
            .Select(v => new { v.Id, Node = v.GradFnId!.Value, v.OutputNr })
            .ToListAsync(ct);
        return rows.GroupBy(r => (r.Node, r.OutputNr)).ToDictionary(g => g.Key, g => (IReadOnlyList<Guid>)[.. g.Select(r => r.Id)]);
    }

    private static StoredStep ParseStep(string json) =>
        JsonSerializer.Deserialize<StoredStep>(json, JobEventLog.Json) ?? throw new InvalidOperationException("Empty step result.");

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Backward job {JobId}: {Nodes} nodes ({Resumed} resumed); planned in {PlanMs:F0} ms, ran in {RunMs:F0} ms, finished in {FinishMs:F0} ms")]
    private static partial void LogPass(ILogger logger, Guid jobId, int nodes, int resumed, double planMs, double runMs, double finishMs);
}
