using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Data;
using Afnio.Data.Events;
using Afnio.Data.Jobs;
using Afnio.Data.LanguageModels;
using Afnio.Data.Programs;
using Afnio.Data.Runs;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Afnio.Domain.Datasets;
using Afnio.Domain.Pricing;
using Afnio.Domain.Programs;
using Afnio.Worker.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Afnio.Worker.Training;

/// <summary>Where training stands at a checkpoint.</summary>
/// <param name="Epoch">The epoch (1-based; 0 before training).</param>
/// <param name="Batch">The batch just committed, when this is a batch checkpoint.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="Sums">The epoch's metric sums over its batches so far.</param>
/// <param name="Count">Batches summed.</param>
/// <param name="CostUsd">Spent by the run so far.</param>
/// <param name="BatchCalls">Paid calls of the batch just committed.</param>
/// <param name="DearestBatch">The most a training batch has cost.</param>
/// <param name="DearestValidation">The most a validation pass has cost.</param>
/// <param name="Sampler">The sampler and the position in its epoch order.</param>
public sealed record RunProgress(
    int Epoch, int? Batch, int Batches, IReadOnlyDictionary<string, double> Sums, int Count,
    decimal CostUsd, int BatchCalls, decimal DearestBatch, decimal DearestValidation, SamplerPosition Sampler);

/// <summary>The sampler of a run and how far into an epoch's order training has gone.</summary>
/// <param name="Type">The sampler type.</param>
/// <param name="Seed">Its seed.</param>
/// <param name="Epoch">The epoch whose order this is.</param>
/// <param name="Position">Items consumed from that order.</param>
public sealed record SamplerPosition(string Type, int Seed, int Epoch, int Position);

/// <summary>
/// Runs a training run as a durable job, as afnio's <c>Trainer.fit</c> does: per batch clear_grad,
/// forward, loss, backward and step; validation under no-grad after each epoch; an optional test
/// pass. Every batch and every epoch end commits a checkpoint with its job step, so a later delivery
/// resumes after the last one; the call journal answers the calls an interrupted batch already paid for.
/// </summary>
public sealed partial class TrainingJobs(
    IDbContextFactory<AfnioDbContext> contexts,
    ModelGateway models,
    PriceTable prices,
    JobExecution execution,
    IOptions<JobOptions> options,
    IOptions<OperationLimits> limits,
    TimeProvider clock,
    ILogger<TrainingJobs> log) : ITrainingJobs
{
    /// <summary>Emitted after each committed training batch.</summary>
    public const string BatchCompletedEvent = "run.batch_completed";

    /// <summary>Emitted after each epoch's metrics are recorded.</summary>
    public const string EpochCompletedEvent = "run.epoch_completed";

    /// <summary>Emitted when a run's best parameters become a new program version.</summary>
    public const string PromotedEvent = "program.promoted";

    /// <inheritdoc />
    public Task FitAsync(Guid jobId, CancellationToken cancellationToken) =>
        execution.RunAsync(jobId, "training_failed", "The training run failed", FitBodyAsync, db => RunEnd.MarkEndedAsync(db, jobId, clock.GetUtcNow(), CancellationToken.None), cancellationToken);

    /// <inheritdoc />
    public Task TestAsync(Guid jobId, CancellationToken cancellationToken) =>
        execution.RunAsync(jobId, "test_failed", "The test pass failed", TestBodyAsync, null, cancellationToken);

    private async Task FitBodyAsync(JobDelivery delivery, CancellationToken ct)
    {
        var run = await TrainingRun.LoadAsync(delivery.Db, delivery.Job, ct);
        var jobId = delivery.Job.Id;
        var budget = new RunBudget(run.Config.MaxCostUsd, prices);
        var root = new RunModels(models.ForJob(run.ProjectId, jobId), "fit", run.Config.Models["backward"], run.Config.BackwardCompletionArgs, budget, limits.Value);

        var units = Plan(run);
        var done = (await delivery.Db.JobSteps.AsNoTracking().Where(s => s.JobId == jobId).Select(s => s.StepKey).ToListAsync(ct)).ToHashSet();
        await delivery.Recorder.SetTotalAsync(jobId, delivery.Owner, units.Count, ct);
        delivery.Monitor.StepsAlreadyCompleted(done.Count);

        // Resume after the last committed unit, in plan order (not by clock: deliveries may run on other hosts).
        var position = units.Select((u, i) => (u.Key, i)).ToDictionary(x => x.Key, x => x.i);
        var committed = (await delivery.Db.RunCheckpoints.AsNoTracking().Where(c => c.RunId == run.Run.Id).ToListAsync(ct))
            .Select(c => (Checkpoint: c, At: position.GetValueOrDefault(KeyOf(c), -1))).Where(c => c.At >= 0).OrderBy(c => c.At).ToList();
        var last = committed.LastOrDefault(c => c.Checkpoint.Kind != RunCheckpoint.BaselineKind).Checkpoint;
        var state = last is null ? run.Initial : Read<TrainingState>(last.State);
        var progress = last is null ? null : Read<RunProgress>(last.Progress);
        var sums = progress is { Batch: not null } ? new Dictionary<string, double>(progress.Sums) : [];
        var count = progress is { Batch: not null } ? progress.Count : 0;
        var latest = committed.Count == 0 ? null : Read<RunProgress>(committed[^1].Checkpoint.Progress);
        var dearestBatch = latest?.DearestBatch ?? 0m;
        var dearestValidation = latest?.DearestValidation ?? 0m;
        budget.Reset(latest?.CostUsd ?? 0m, await DearestCallAsync(jobId, ct));
        var watch = Stopwatch.StartNew();
        var ranHere = 0;
        string? stopReason = null;

        // A cancel request also stops the unit in flight: its uncommitted work is dropped, the checkpoints stay.
        using var unitStop = CancellationTokenSource.CreateLinkedTokenSource(ct, delivery.Monitor.CancelRequested);
        var unitCt = unitStop.Token;
        try
        {
            foreach (var unit in units.Where(u => !done.Contains(u.Key)))
            {
                delivery.Monitor.CancelRequested.ThrowIfCancellationRequested();
                var estimate = unit.Kind switch
                {
                    UnitKind.Batch => dearestBatch,
                    UnitKind.EpochEnd when run.ValidatesAt(unit.Epoch) => Math.Max(dearestValidation, dearestBatch),
                    UnitKind.Test => Math.Max(dearestValidation, dearestBatch),
                    _ => 0m,
                };
                if (budget.WouldExceed(estimate))
                {
                    stopReason = $"Stopped before {unit.Describe()}: at ${estimate:0.######} it could take the run past max_cost_usd ${run.Config.MaxCostUsd:0.######} (spent ${budget.Spent:0.######}).";
                    break;
                }

                var spentBefore = budget.Spent;
                switch (unit.Kind)
                {
                    case UnitKind.Baseline:
                        var baseline = await ValidateAsync(run, run.Production, root.For(unit.Key), unitCt);
                        await CommitAsync(delivery, unit.Key, run.Checkpoint(RunCheckpoint.BaselineKind, 0, null,
                                TrainingState.Initial(run.Production), Progress(run, 0, null, new Dictionary<string, double>(), 0, budget, 0, dearestBatch, budget.Spent - spentBefore), baseline, clock.GetUtcNow()),
                            [.. Metrics(run, "val_", baseline, 0)], null, ct);
                        dearestValidation = Math.Max(dearestValidation, budget.Spent - spentBefore);
                        break;

                    case UnitKind.Batch:
                        var (next, metrics) = await TrainBatchAsync(run, state, unit, root.For(unit.Key), unitCt);
                        state = next;
                        foreach (var (name, value) in metrics)
                        {
                            sums[name] = sums.GetValueOrDefault(name) + value;
                        }

                        count++;
                        dearestBatch = Math.Max(dearestBatch, budget.Spent - spentBefore);
                        var calls = await CallsUnderAsync(jobId, $"fit/{unit.Key}/", ct);
                        var batchProgress = Progress(run, unit.Epoch, unit.Batch, sums, count, budget, calls, dearestBatch, dearestValidation);
                        ranHere++;
                        var remaining = units.Count - done.Count - ranHere;
                        await CommitAsync(delivery, unit.Key, run.Checkpoint(RunCheckpoint.BatchKind, unit.Epoch, unit.Batch, state, batchProgress, null, clock.GetUtcNow()), [],
                            (BatchCompletedEvent, new
                            {
                                run_id = PrefixedId.Format(PrefixedId.Run, run.Run.Id),
                                epoch = unit.Epoch,
                                epochs = run.Config.Epochs,
                                batch = unit.Batch,
                                batches = run.BatchesPerEpoch,
                                metrics,
                                calls,
                                cost_usd = budget.Spent,
                                eta_seconds = Math.Round(watch.Elapsed.TotalSeconds / ranHere * remaining, 1),
                            }), ct);
                        break;

                    case UnitKind.EpochEnd:
                        IReadOnlyDictionary<string, double>? validation = null;
                        if (run.ValidatesAt(unit.Epoch))
                        {
                            validation = await ValidateAsync(run, state.Parameters, root.For(unit.Key), unitCt);
                            dearestValidation = Math.Max(dearestValidation, budget.Spent - spentBefore);
                        }

                        var train = sums.ToDictionary(s => s.Key, s => s.Value / Math.Max(1, count));
                        var rows = Metrics(run, "train_", train, unit.Epoch).Concat(validation is null ? [] : Metrics(run, "val_", validation, unit.Epoch))
                            .Append(Metric(run, "total_cost($)", (double)budget.Spent, unit.Epoch, clock.GetUtcNow())).ToList();
                        await CommitAsync(delivery, unit.Key, run.Checkpoint(RunCheckpoint.EpochKind, unit.Epoch, null, state,
                                Progress(run, unit.Epoch, null, train, count, budget, 0, dearestBatch, dearestValidation), validation, clock.GetUtcNow()), rows,
                            (EpochCompletedEvent, new
                            {
                                run_id = PrefixedId.Format(PrefixedId.Run, run.Run.Id),
                                epoch = unit.Epoch,
                                epochs = run.Config.Epochs,
                                metrics = rows.ToDictionary(r => r.Name, r => r.Value),
                            }), ct);
                        sums.Clear();
                        count = 0;
                        break;

                    case UnitKind.Test:
                        var best = await BestCheckpointAsync(run.Run.Id, ct);
                        var parameters = best is null ? state.Parameters : Read<TrainingState>(best.State).Parameters;
                        var test = await EvaluateAsync(run, run.TestItems, parameters, root.For(unit.Key), unitCt);
                        await CommitAsync(delivery, unit.Key, null, [.. Metrics(run, "test_", test, run.Config.Epochs)], null, ct);
                        break;
                }
            }
        }
        catch (BudgetExhaustedException e)
        {
            stopReason = $"Stopped during a piece of work whose calls would go past max_cost_usd: {e.Message} That piece was not committed; the run keeps its last checkpoint.";
        }

        await FinishAsync(delivery, run, stopReason, ct);
    }

    private async Task<(TrainingState State, IReadOnlyDictionary<string, double> Metrics)> TrainBatchAsync(
        TrainingRun run, TrainingState state, Unit unit, RunModels models, CancellationToken ct)
    {
        var indices = run.BatchOf(unit.Epoch, unit.Batch);
        var items = indices.Select(i => run.TrainItems[i]).ToList();
        var labels = indices.Select(i => run.TrainLabels[i]).ToList();
        // afnio's clear_grad: the batch starts from no gradients; the momentum windows carry over.
        var forward = await run.Executor.ForwardAsync(state.Parameters, items, labels,
            step => models.Operations(step), gradEnabled: true, ct);
        var gradients = await run.Executor.BackwardAsync(forward, models.Operations("backward"),
            Math.Max(1, options.Value.BackwardConcurrency), ct);
        var (next, _) = await ProgramOptimizer.StepAsync(run.Program, state, gradients, models.For("step"), run.Tgd, "tgd", ct);
        return (next, forward.Metrics(run.Program.Metrics));
    }

    private static Task<IReadOnlyDictionary<string, double>> ValidateAsync(
        TrainingRun run, IReadOnlyDictionary<string, string> parameters, RunModels models, CancellationToken ct) =>
        EvaluateAsync(run, run.ValidationItems, parameters, models, ct);

    /// <summary>Evaluation under no-grad, batch by batch in split order; metrics are means over batches, as afnio's.</summary>
    private static async Task<IReadOnlyDictionary<string, double>> EvaluateAsync(
        TrainingRun run, IReadOnlyList<(JsonNode? Item, string Label)> split, IReadOnlyDictionary<string, string> parameters, RunModels models, CancellationToken ct)
    {
        var sums = new Dictionary<string, double>(StringComparer.Ordinal);
        var batches = split.Chunk(run.Config.BatchSize).ToList();
        for (var b = 0; b < batches.Count; b++)
        {
            var batch = batches[b];
            var pass = await run.Executor.ForwardAsync(parameters, [.. batch.Select(x => x.Item)], [.. batch.Select(x => x.Label)],
                step => models.Operations($"b{b}/{step}"), gradEnabled: false, ct);
            foreach (var (name, value) in pass.Metrics(run.Program.Metrics))
            {
                sums[name] = sums.GetValueOrDefault(name) + value;
            }
        }

        return sums.ToDictionary(s => s.Key, s => s.Value / Math.Max(1, batches.Count));
    }

    private async Task FinishAsync(JobDelivery delivery, TrainingRun run, string? stopReason, CancellationToken ct)
    {
        var jobId = delivery.Job.Id;
        await using var db = await contexts.CreateDbContextAsync(ct);
        var checkpoints = await db.RunCheckpoints.AsNoTracking().Where(c => c.RunId == run.Run.Id).OrderBy(c => c.CreatedAt).ThenBy(c => c.Id).ToListAsync(ct);
        var best = Best(checkpoints);
        var baseline = checkpoints.FirstOrDefault(c => c.Kind == RunCheckpoint.BaselineKind);
        var usage = await UsageAsync(run, jobId, checkpoints, ct);
        var test = (await db.RunMetrics.AsNoTracking().Where(m => m.RunId == run.Run.Id && m.Name.StartsWith("test_"))
                .OrderBy(m => m.CreatedAt).ThenBy(m => m.Id).ToListAsync(ct))
            .GroupBy(m => m.Name).ToDictionary(g => g.Key, g => g.Last().Value);
        var status = stopReason is null ? Run.Completed : Run.StoppedBudget;
        var now = clock.GetUtcNow();

        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await JobFence.EnsureHeldAsync(db, jobId, delivery.Owner);
        var promotion = run.Config.Promote ? await PromoteAsync(db, run, best, baseline, now, ct) : null;
        var summary = new RunSummary(status, stopReason, checkpoints.Count(c => c.Kind == RunCheckpoint.EpochKind), run.Config.SelectMetric,
            PrefixedId.Format(PrefixedId.Checkpoint, best?.Id), best?.Epoch, best?.Score, baseline?.Score, promotion, test.Count == 0 ? null : test, usage);
        var json = JsonSerializer.Serialize(summary, JobEventLog.Json);
        await db.Runs.Where(r => r.Id == run.Run.Id).ExecuteUpdateAsync(s => s
            .SetProperty(r => r.Status, status).SetProperty(r => r.Summary, json).SetProperty(r => r.UpdatedAt, now), ct);
        var runId = PrefixedId.Format(PrefixedId.Run, run.Run.Id);
        var programId = PrefixedId.Format(PrefixedId.Program, run.Config.ProgramId);
        if (promotion is { Promoted: true })
        {
            await db.AppendEventAsync(jobId, PromotedEvent, new { program_id = programId, version = promotion.ProgramVersion, run_id = runId }, now, ct);
            await db.PublishAsync(run.Run.ProjectId, EventTypes.ProgramPromoted, new { id = programId, version = promotion.ProgramVersion, run_id = runId }, now, ct);
        }

        await db.PublishAsync(run.Run.ProjectId, stopReason is null ? EventTypes.RunSucceeded : EventTypes.RunStoppedBudget,
            new { id = runId, program_id = programId, job_id = PrefixedId.Format(PrefixedId.Job, jobId) }, now, ct);

        var recorder = new JobRecorder(db, clock, options);
        if (await recorder.SucceedAsync(jobId, delivery.Owner, summary, ct))
        {
            await tx.CommitAsync(ct);
        }

        LogFinished(log, run.Run.Id, status, usage.Calls, usage.CostUsd);
    }

    /// <summary>The best validated checkpoint: highest score, the earliest on a tie (so the baseline wins ties).</summary>
    private static RunCheckpoint? Best(IEnumerable<RunCheckpoint> checkpoints) =>
        checkpoints.Where(c => c.Score is not null).OrderByDescending(c => c.Score).ThenBy(c => c.CreatedAt).ThenBy(c => c.Id).FirstOrDefault();

    private async Task<RunCheckpoint?> BestCheckpointAsync(Guid runId, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return Best(await db.RunCheckpoints.AsNoTracking().Where(c => c.RunId == runId && c.Score != null).ToListAsync(ct));
    }

    private static async Task<PromotionOutcome> PromoteAsync(
        AfnioDbContext db, TrainingRun run, RunCheckpoint? best, RunCheckpoint? baseline, DateTimeOffset now, CancellationToken ct)
    {
        var metric = $"val_{run.Config.SelectMetric}";
        if (run.ValidationItems.Count == 0)
        {
            return new(false, null, "The run has no validation split, so nothing shows it is better than production; the program is unchanged.");
        }

        if (baseline?.Score is not { } production || best?.Score is not { } score)
        {
            return new(false, null, "The run stopped before it could validate; the program is unchanged.");
        }

        if (best.Kind == RunCheckpoint.BaselineKind || score <= production)
        {
            return new(false, null,
                $"No epoch beat production version {run.Config.ProgramVersion}: its {metric} is {production:0.####}, the best epoch's {Best(score, best)}; the program is unchanged.");
        }

        var current = await db.Programs.FromSql($"SELECT * FROM programs WHERE id = {run.Config.ProgramId} FOR UPDATE").AsNoTracking()
            .Select(p => (int?)p.CurrentVersion).SingleOrDefaultAsync(ct);
        if (current is null)
        {
            return new(false, null, "The program was deleted during the run.");
        }

        if (current != run.Config.ProgramVersion)
        {
            return new(false, null,
                $"The production version changed during the run (from {run.Config.ProgramVersion} to {current}); the run measured itself against version {run.Config.ProgramVersion}, so it promotes nothing.");
        }

        var version = current.Value + 1;
        var parameters = Read<TrainingState>(best.State).Parameters;
        db.ProgramVersions.Add(new ProgramVersion
        {
            ProgramId = run.Config.ProgramId,
            Version = version,
            Parameters = JsonSerializer.Serialize(parameters),
            Source = ProgramVersion.Promoted,
            RunId = run.Run.Id,
            CheckpointId = best.Id,
            Metric = metric,
            Score = score,
            CreatedAt = now,
        });
        await db.SaveChangesAsync(ct);
        await db.Programs.Where(p => p.Id == run.Config.ProgramId)
            .ExecuteUpdateAsync(s => s.SetProperty(p => p.CurrentVersion, version).SetProperty(p => p.UpdatedAt, now), ct);
        return new(true, version, $"Epoch {best.Epoch} reached {metric} {score:0.####}, better than production version {run.Config.ProgramVersion}'s {production:0.####}.");
    }

    private static string Best(double score, RunCheckpoint best) => $"{score:0.####} (epoch {best.Epoch})";

    private async Task TestBodyAsync(JobDelivery delivery, CancellationToken ct)
    {
        var run = await TrainingRun.LoadAsync(delivery.Db, delivery.Job, ct);
        var budget = new RunBudget(null, prices);
        var testModels = new RunModels(models.ForJob(run.ProjectId, delivery.Job.Id), "test", run.Config.Models["backward"], run.Config.BackwardCompletionArgs, budget, limits.Value);
        var best = await BestCheckpointAsync(run.Run.Id, ct);
        var last = best ?? await delivery.Db.RunCheckpoints.AsNoTracking().Where(c => c.RunId == run.Run.Id)
            .OrderByDescending(c => c.CreatedAt).ThenByDescending(c => c.Id).FirstOrDefaultAsync(ct);
        var parameters = last is null ? run.Initial.Parameters : Read<TrainingState>(last.State).Parameters;
        await delivery.Recorder.SetTotalAsync(delivery.Job.Id, delivery.Owner, 1, ct);
        var test = await EvaluateAsync(run, run.TestItems, parameters, testModels, ct);
        var epochs = await delivery.Db.RunCheckpoints.CountAsync(c => c.RunId == run.Run.Id && c.Kind == RunCheckpoint.EpochKind, ct);

        await using var db = await contexts.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await JobFence.EnsureHeldAsync(db, delivery.Job.Id, delivery.Owner);
        db.RunMetrics.AddRange(Metrics(run, "test_", test, epochs));
        await db.SaveChangesAsync(ct);
        var result = new
        {
            run_id = PrefixedId.Format(PrefixedId.Run, run.Run.Id),
            checkpoint_id = PrefixedId.Format(PrefixedId.Checkpoint, last?.Id),
            metrics = test.ToDictionary(t => $"test_{t.Key}", t => t.Value),
            cost_usd = budget.Spent,
        };
        if (await new JobRecorder(db, clock, options).SucceedAsync(delivery.Job.Id, delivery.Owner, result, ct))
        {
            await tx.CommitAsync(ct);
        }
    }

    /// <summary>Commits one piece of work: its job step, checkpoint, metrics and event, fenced by the lease.</summary>
    private async Task CommitAsync(
        JobDelivery delivery, string key, RunCheckpoint? checkpoint, IReadOnlyList<RunMetric> metrics, (string Type, object Data)? @event, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await using var db = await contexts.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await JobFence.EnsureHeldAsync(db, delivery.Job.Id, delivery.Owner);
        await JobStepRows.InsertAsync(db, delivery.Job.Id, [(key, JsonSerializer.Serialize(new { checkpoint_id = PrefixedId.Format(PrefixedId.Checkpoint, checkpoint?.Id) }))], now);
        if (checkpoint is not null)
        {
            db.RunCheckpoints.Add(checkpoint);
        }

        db.RunMetrics.AddRange(metrics);
        await db.SaveChangesAsync(ct);
        if (@event is { } e)
        {
            await db.AppendEventAsync(delivery.Job.Id, e.Type, e.Data, now, ct);
        }

        if (checkpoint is { Kind: RunCheckpoint.EpochKind, RunId: { } runId })
        {
            await db.PublishAsync(checkpoint.ProjectId, EventTypes.RunEpochCompleted, new
            {
                id = PrefixedId.Format(PrefixedId.Run, runId),
                epoch = checkpoint.Epoch,
                checkpoint_id = PrefixedId.Format(PrefixedId.Checkpoint, checkpoint.Id),
            }, now, ct);
        }

        await tx.CommitAsync(ct);
        delivery.Monitor.StepCompleted();
    }

    private static RunProgress Progress(
        TrainingRun run, int epoch, int? batch, IReadOnlyDictionary<string, double> sums, int count, RunBudget budget, int batchCalls,
        decimal dearestBatch, decimal dearestValidation) =>
        new(epoch, batch, run.BatchesPerEpoch, new Dictionary<string, double>(sums), count, budget.Spent, batchCalls, dearestBatch, dearestValidation,
            new SamplerPosition(run.Config.Sampler.Type, run.Config.Seed, Math.Max(0, epoch - 1),
                batch is { } b ? Math.Min(run.SamplesPerEpoch, (b + 1) * run.Config.BatchSize) : run.SamplesPerEpoch));

    private IEnumerable<RunMetric> Metrics(TrainingRun run, string prefix, IReadOnlyDictionary<string, double> values, int step)
    {
        var now = clock.GetUtcNow();
        return values.OrderBy(v => v.Key == "loss" ? 0 : 1).ThenBy(v => v.Key, StringComparer.Ordinal).Select(v => Metric(run, prefix + v.Key, v.Value, step, now));
    }

    private static RunMetric Metric(TrainingRun run, string name, double value, int step, DateTimeOffset now) => new()
    {
        Id = PrefixedId.NewGuid(),
        RunId = run.Run.Id,
        Name = name,
        Step = step,
        Value = value,
        CreatedAt = now,
    };

    private static List<Unit> Plan(TrainingRun run)
    {
        var units = new List<Unit>();
        if (run.Config.Promote && run.ValidationItems.Count > 0)
        {
            units.Add(new Unit(UnitKind.Baseline, RunStepKeys.Baseline, 0, 0));
        }

        for (var epoch = 1; epoch <= run.Config.Epochs; epoch++)
        {
            for (var batch = 0; batch < run.BatchesPerEpoch; batch++)
            {
                units.Add(new Unit(UnitKind.Batch, RunStepKeys.Batch(epoch, batch), epoch, batch));
            }

            units.Add(new Unit(UnitKind.EpochEnd, RunStepKeys.EpochEnd(epoch), epoch, 0));
        }

        if (run.Config.RunTest && run.TestItems.Count > 0)
        {
            units.Add(new Unit(UnitKind.Test, RunStepKeys.Test, run.Config.Epochs, 0));
        }

        return units;
    }

    private async Task<decimal> DearestCallAsync(Guid jobId, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await db.ModelCalls.AsNoTracking().Where(c => c.JobId == jobId && c.Status == ModelCallStatus.Succeeded)
            .MaxAsync(c => (decimal?)c.CostUsd, ct) ?? 0m;
    }

    /// <summary>The unit that committed a checkpoint.</summary>
    private static string KeyOf(RunCheckpoint checkpoint) => checkpoint.Kind switch
    {
        RunCheckpoint.BaselineKind => RunStepKeys.Baseline,
        RunCheckpoint.BatchKind => RunStepKeys.Batch(checkpoint.Epoch, checkpoint.Batch ?? 0),
        _ => RunStepKeys.EpochEnd(checkpoint.Epoch),
    };

    private async Task<int> CallsUnderAsync(Guid jobId, string prefix, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await db.ModelCalls.CountAsync(c => c.JobId == jobId && c.Status == ModelCallStatus.Succeeded && c.StepKey.StartsWith(prefix), ct);
    }

    private async Task<RunUsage> UsageAsync(TrainingRun run, Guid jobId, IReadOnlyList<RunCheckpoint> checkpoints, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var paid = await db.ModelCalls.AsNoTracking().Where(c => c.JobId == jobId && c.Status == ModelCallStatus.Succeeded)
            .GroupBy(_ => 1).Select(g => new { Count = g.Count(), Cost = g.Sum(c => c.CostUsd) }).ToListAsync(ct);
        var perBatch = checkpoints.Where(c => c.Kind == RunCheckpoint.BatchKind).Select(c => Read<RunProgress>(c.Progress).BatchCalls).ToList();
        return new RunUsage(paid.FirstOrDefault()?.Count ?? 0, paid.FirstOrDefault()?.Cost ?? 0m, perBatch.Count,
            perBatch.DefaultIfEmpty(0).Max(), perBatch.Count == 0 ? 0 : Math.Round(perBatch.Average(), 2),
            run.Config.BatchSize + (2 * run.Program.Parameters.Count) + 1);
    }

    internal static T Read<T>(string json) => JsonSerializer.Deserialize<T>(json, JobEventLog.Json)
        ?? throw new InvalidOperationException($"Empty {typeof(T).Name}.");

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} ended {Status}: {Calls} paid calls, ${Cost}")]
    private static partial void LogFinished(ILogger logger, Guid runId, string status, int calls, decimal cost);
}

/// <summary>The kinds of work a run is made of.</summary>
internal enum UnitKind
{
    Baseline,
    Batch,
    EpochEnd,
    Test,
}

/// <summary>One piece of a run's work, committed as one job step.</summary>
internal sealed record Unit(UnitKind Kind, string Key, int Epoch, int Batch)
{
    public string Describe() => Kind switch
    {
        UnitKind.Baseline => "validating the production version",
        UnitKind.Batch => $"batch {Batch + 1} of epoch {Epoch}",
        UnitKind.EpochEnd => $"the end of epoch {Epoch} (validation)",
        _ => "the test pass",
    };
}
