using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.LanguageModels;
using Afnio.Data.Optimizers;
using Afnio.Data.Variables;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Optimizers;
using Afnio.Domain.Variables;
using Afnio.Worker.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Afnio.Worker.Optimizers;

/// <summary>How one parameter's update ended, as the job's result and its step rows show it.</summary>
/// <param name="ParameterId">The parameter (<c>var_…</c>).</param>
/// <param name="Status"><c>updated</c>, or <c>kept</c> when it keeps its value (see <paramref name="Reason"/>).</param>
/// <param name="Attempts">Optimizer-model calls made for it.</param>
/// <param name="Reason">Why it kept its value.</param>
/// <param name="SnapshotId">The variable holding its value before the update, when momentum keeps one.</param>
public sealed record ParameterOutcome(string ParameterId, string Status, int Attempts, string? Reason, string? SnapshotId)
{
    public const string Updated = "updated";
    public const string Kept = "kept";
}

/// <summary>What a finished step reports.</summary>
public sealed record OptimizerStepResult(
    string Message, string OptimizerId, int Updated, int Kept, int WithoutGradients, IReadOnlyList<ParameterOutcome> Parameters);

/// <summary>
/// Runs TGD steps as durable jobs. Every parameter with gradients is rewritten by one optimizer-model
/// call (more if a reply lacks the tags), concurrently within the model client's limits. Each
/// parameter commits alone: its new value, its momentum snapshot, its state entry and its step row
/// in one transaction. A resumed step skips the parameters already committed, and the call journal
/// answers calls already paid for.
/// </summary>
public sealed partial class OptimizerJobs(
    IDbContextFactory<AfnioDbContext> contexts,
    ModelGateway models,
    JobExecution execution,
    TimeProvider clock,
    ILogger<OptimizerJobs> log) : IOptimizerJobs
{
    public const string ParameterUpdatedEvent = "optimizer.parameter_updated";
    public const string ParameterKeptEvent = "optimizer.parameter_kept";
    public const string StepSucceeded = "Optimizer step executed successfully.";

    public Task RunStepAsync(Guid jobId, CancellationToken cancellationToken) =>
        execution.RunAsync(jobId, "optimizer_step_failed", "The optimizer step failed", StepAsync, null, cancellationToken);

    private async Task StepAsync(JobDelivery delivery, CancellationToken ct)
    {
        var (db, job) = (delivery.Db, delivery.Job);
        var arguments = JsonSerializer.Deserialize<OptimizerStepJobArguments>(job.Arguments!, JobEventLog.Json)
            ?? throw new InvalidOperationException("The job has no arguments.");
        var projectId = job.ProjectId!.Value;
        var optimizer = await db.Optimizers.AsNoTracking().SingleOrDefaultAsync(o => o.Id == arguments.OptimizerId, ct)
            ?? throw AfnioException.NotFound("optimizer_not_found", "The optimizer was deleted before its step ran.");
        var groups = TgdGroupSettings.ListFromJson(optimizer.ParamGroups);
        if (arguments.Parameters.Any(p => p.GroupIndex >= groups.Count))
        {
            throw AfnioException.Conflict("optimizer_changed", "The optimizer's parameter groups changed after the step was asked for.");
        }

        var committed = await CommittedAsync(db, job.Id, ct);
        await delivery.Recorder.SetTotalAsync(job.Id, delivery.Owner, arguments.Parameters.Count, ct);
        delivery.Monitor.StepsAlreadyCompleted(committed.Count);

        var pending = arguments.Parameters.Where(p => !committed.ContainsKey(p.VariableId)).ToList();
        var inputs = await LoadAsync(db, projectId, optimizer.Id, pending, groups, ct);
        var languageModels = models.ForJob(projectId, job.Id);
        // Parameters whose replies arrive together commit together, each with its own step row.
        await using (var committer = new GroupCommitter<ParameterCommit>(
            batch => CommitAsync(projectId, job.Id, delivery.Owner, optimizer.Id, batch), _ => delivery.Monitor.StepCompleted()))
        {
            await Concurrent.AllAsync(pending.Count, (i, token) =>
                UpdateAsync(languageModels, pending[i], groups[pending[i].GroupIndex], inputs[pending[i].VariableId], committer, delivery.Monitor, token), ct);
        }

        var outcomes = await CommittedAsync(db, job.Id, ct);
        var ordered = arguments.Parameters.Select(p => outcomes[p.VariableId]).ToList();
        var result = new OptimizerStepResult(StepSucceeded, PrefixedId.Format(PrefixedId.Optimizer, optimizer.Id),
            ordered.Count(o => o.Status == ParameterOutcome.Updated), ordered.Count(o => o.Status == ParameterOutcome.Kept),
            arguments.ParametersWithoutGradients, ordered);
        await delivery.Recorder.SucceedAsync(job.Id, delivery.Owner, result, ct);
        LogStep(log, job.Id, result.Updated, result.Kept, arguments.Parameters.Count - pending.Count);
    }

    /// <summary>Rewrites one parameter and commits the outcome.</summary>
    private static async Task<bool> UpdateAsync(
        ILanguageModels languageModels, StepParameter parameter, TgdGroupSettings settings, ParameterInput input,
        GroupCommitter<ParameterCommit> committer, JobMonitor monitor, CancellationToken ct)
    {
        // A cancel request stops the parameters still waiting for (or in) their calls; outcomes already
        // handed to the committer are committed.
        using var calls = CancellationTokenSource.CreateLinkedTokenSource(ct, monitor.CancelRequested);
        var outcome = await RewriteAsync(languageModels, parameter, settings, input, calls.Token);
        await committer.CommitAsync(new ParameterCommit(parameter, settings, input, outcome), ct);
        return true;
    }

    /// <summary>The optimizer-model calls for one parameter; a parameter that cannot be asked keeps its value, with the reason.</summary>
    private static async Task<TgdOutcome> RewriteAsync(
        ILanguageModels languageModels, StepParameter parameter, TgdGroupSettings settings, ParameterInput input, CancellationToken ct)
    {
        if (input.Refusal is { } refusal)
        {
            return new TgdOutcome(null, 0, refusal);
        }

        IReadOnlyList<ChatMessage> messages;
        try
        {
            messages = TgdConversation.Build(input.Request!, input.CustomMessages, input.Inputs);
        }
        catch (AfnioException e)
        {
            // A custom message edited since the optimizer was created may name an input that does not exist.
            return new TgdOutcome(null, 0, $"The optimizer prompt could not be built ({e.Code}): {e.Message}");
        }

        return await TgdRewrite.RunAsync(languageModels, ModelId(settings), settings.CompletionArgs, messages, parameter.VariableId.ToString("N"), ct);
    }

    /// <summary>
    /// Commits a group of parameter outcomes in one transaction, one statement per table. Per
    /// parameter: the new value (only over the value the prompt showed: a parameter changed or
    /// deleted meanwhile keeps what it has), a Parameter snapshot of the old value and the pushed
    /// momentum window (momentum 0 keeps none), the step row and the event. Only the delivery
    /// holding the job's lease can commit.
    /// </summary>
    private async Task CommitAsync(Guid projectId, Guid jobId, string owner, Guid optimizerId, IReadOnlyList<ParameterCommit> batch)
    {
        var now = clock.GetUtcNow();
        await using var db = await contexts.CreateDbContextAsync();
        await using var tx = await db.Database.BeginTransactionAsync();
        await JobFence.EnsureHeldAsync(db, jobId, owner);

        var rewrites = batch.Where(c => c.Outcome.NewValue is not null).ToList();
        var applied = rewrites.Count == 0 ? [] : (await db.Database.SqlQuery<Guid>($"""
            UPDATE variables v SET data = t.d::jsonb, data_kind = 'str'
            FROM unnest({rewrites.Select(c => c.Parameter.VariableId).ToArray()}::uuid[],
                        {rewrites.Select(c => VariableData.Of(c.Outcome.NewValue!).ToJson()).ToArray()}::text[],
                        {rewrites.Select(c => c.Input.Variable!.Data).ToArray()}::text[]) AS t(id, d, old)
            WHERE v.id = t.id AND v.project_id = {projectId} AND v.data_kind = 'str' AND v.data = t.old::jsonb
            RETURNING v.id AS "Value"
            """).ToListAsync()).ToHashSet();

        var snapshots = new List<Variable>();
        var windows = new List<(Guid Id, string Window)>();
        var steps = new List<(string Key, string Result)>();
        var events = new List<(string Type, object Data)>();
        foreach (var (parameter, settings, input, outcome) in batch)
        {
            var parameterId = PrefixedId.Format(PrefixedId.Variable, parameter.VariableId);
            ParameterOutcome result;
            if (outcome.NewValue is null)
            {
                result = new ParameterOutcome(parameterId, ParameterOutcome.Kept, outcome.Attempts, outcome.Reason, null);
            }
            else if (!applied.Contains(parameter.VariableId))
            {
                result = new ParameterOutcome(parameterId, ParameterOutcome.Kept, outcome.Attempts,
                    "The parameter was changed or deleted while the step ran; it keeps what it has now.", null);
            }
            else
            {
                string? snapshotId = null;
                IReadOnlyList<MomentumEntry> window = [];
                if (settings.Momentum > 0)
                {
                    var current = input.Variable!;
                    var snapshot = Variable.Create(projectId, current.GetData(), current.Role, current.RequiresGrad, isParameter: true, now);
                    snapshots.Add(snapshot);
                    snapshotId = PrefixedId.Format(PrefixedId.Variable, snapshot.Id);
                    window = MomentumWindow.Push(input.Window,
                        new MomentumEntry(snapshotId, [.. parameter.GradientIds.Select(g => PrefixedId.Format(PrefixedId.Variable, g))]), settings.Momentum);
                }

                windows.Add((parameter.VariableId, MomentumEntry.ListToJson(window)));
                result = new ParameterOutcome(parameterId, ParameterOutcome.Updated, outcome.Attempts, null, snapshotId);
            }

            steps.Add((parameter.VariableId.ToString("N"), JsonSerializer.Serialize(result, JobEventLog.Json)));
            events.Add((result.Status == ParameterOutcome.Updated ? ParameterUpdatedEvent : ParameterKeptEvent, result));
        }

        await JobStepRows.InsertAsync(db, jobId, steps, now);
        if (windows.Count > 0)
        {
            await db.Database.ExecuteSqlAsync($"""
                UPDATE optimizer_params p SET momentum_buffer = t.w::jsonb
                FROM unnest({windows.Select(w => w.Id).ToArray()}::uuid[], {windows.Select(w => w.Window).ToArray()}::text[]) AS t(id, w)
                WHERE p.optimizer_id = {optimizerId} AND p.variable_id = t.id
                """);
        }

        await db.InsertAsync(snapshots);
        await db.AppendEventsAsync(jobId, events, now, CancellationToken.None);
        await tx.CommitAsync();
    }

    /// <summary>
    /// What the optimizer model is told about each parameter: values, roles, gradients, momentum
    /// windows, and the texts of custom messages, inputs and constraints, in three queries for the whole step.
    /// </summary>
    private static async Task<Dictionary<Guid, ParameterInput>> LoadAsync(
        AfnioDbContext db, Guid projectId, Guid optimizerId, IReadOnlyList<StepParameter> parameters, IReadOnlyList<TgdGroupSettings> groups,
        CancellationToken ct)
    {
        var ids = parameters.Select(p => p.VariableId).ToList();
        var variables = await db.Variables.AsNoTracking().Where(v => v.ProjectId == projectId && ids.Contains(v.Id)).ToDictionaryAsync(v => v.Id, ct);
        var windows = await db.OptimizerParams.AsNoTracking().Where(p => p.OptimizerId == optimizerId && ids.Contains(p.VariableId))
            .ToDictionaryAsync(p => p.VariableId, p => MomentumEntry.ListFromJson(p.MomentumBuffer), ct);
        var referenced = parameters.SelectMany(p => p.GradientIds
                .Concat(windows.GetValueOrDefault(p.VariableId, []).SelectMany(e => e.GradientIds.Prepend(e.SnapshotId)).Select(Parse)))
            .Concat(groups.SelectMany(g => (g.Messages ?? []).SelectMany(m => m.Content)
                .Concat(g.Inputs.Values.Concat(g.Constraints).Where(IsVariableId))).Select(Parse))
            .Distinct().ToList();
        var texts = await db.Variables.AsNoTracking().Where(v => v.ProjectId == projectId && referenced.Contains(v.Id))
            .Select(v => new { v.Id, v.Data, v.DataKind }).ToDictionaryAsync(v => v.Id, v => VariableData.FromStored(v.DataKind, v.Data).ToString(), ct);
        return parameters.ToDictionary(p => p.VariableId,
            p => Input(p, variables.GetValueOrDefault(p.VariableId), windows.GetValueOrDefault(p.VariableId, []), groups[p.GroupIndex], texts));
    }

    private static ParameterInput Input(
        StepParameter parameter, Variable? variable, IReadOnlyList<MomentumEntry> window, TgdGroupSettings settings, Dictionary<Guid, string> texts)
    {
        if (variable is null)
        {
            return new ParameterInput(null, window, null, null, NoInputs, "The parameter was deleted before the step reached it.");
        }

        if (variable.DataKind != "str")
        {
            return new ParameterInput(variable, window, null, null, NoInputs,
                $"The parameter holds {variable.DataKind} data; TGD rewrites text only, so it keeps its value.");
        }

        var feedback = parameter.GradientIds.Where(texts.ContainsKey).Select(g => texts[g]).ToList();
        if (feedback.Count == 0)
        {
            return new ParameterInput(variable, window, null, null, NoInputs, "Its gradients were deleted before the step reached it.");
        }

        var history = window.Where(e => texts.ContainsKey(Parse(e.SnapshotId)))
            .Select(e => new PastIteration(texts[Parse(e.SnapshotId)], [.. e.GradientIds.Select(Parse).Where(texts.ContainsKey).Select(g => texts[g])]))
            .ToList();
        var request = new TgdRequest(variable.Role, variable.GetData().ToString(), feedback, history,
            [.. settings.Constraints.Select(c => IsVariableId(c) ? texts.GetValueOrDefault(Parse(c)) : c).OfType<string>()]);
        var custom = settings.Messages?.Select(m => new ChatMessage(m.Role,
            string.Join("\n", m.Content.Select(Parse).Select(id => texts.GetValueOrDefault(id, string.Empty))))).ToList();
        var inputs = settings.Inputs.ToDictionary(kv => kv.Key, kv => IsVariableId(kv.Value) ? texts.GetValueOrDefault(Parse(kv.Value), string.Empty) : kv.Value);
        return new ParameterInput(variable, window, request, custom, inputs, null);
    }

    private static async Task<Dictionary<Guid, ParameterOutcome>> CommittedAsync(AfnioDbContext db, Guid jobId, CancellationToken ct) =>
        (await db.JobSteps.AsNoTracking().Where(s => s.JobId == jobId).ToListAsync(ct))
            .ToDictionary(s => Guid.ParseExact(s.StepKey, "N"),
                s => JsonSerializer.Deserialize<ParameterOutcome>(s.Result, JobEventLog.Json) ?? throw new InvalidOperationException("Empty step result."));

    private static Guid ModelId(TgdGroupSettings settings) =>
        PrefixedId.TryParse(PrefixedId.Model, settings.ModelId, out var id) ? id : throw new InvalidOperationException("A stored model id is malformed.");

    private static readonly Dictionary<string, string> NoInputs = [];

    private static bool IsVariableId(string text) => PrefixedId.TryParse(PrefixedId.Variable, text, out _);

    private static Guid Parse(string variableId) =>
        PrefixedId.TryParse(PrefixedId.Variable, variableId, out var id) ? id : throw new InvalidOperationException($"A stored variable id is malformed: {variableId}.");

    /// <summary>One parameter's outcome, waiting for its group commit.</summary>
    private sealed record ParameterCommit(StepParameter Parameter, TgdGroupSettings Settings, ParameterInput Input, TgdOutcome Outcome);

    /// <summary>A parameter as the step found it; <paramref name="Refusal"/> says why it keeps its value without a call.</summary>
    private sealed record ParameterInput(
        Variable? Variable, IReadOnlyList<MomentumEntry> Window, TgdRequest? Request, IReadOnlyList<ChatMessage>? CustomMessages,
        IReadOnlyDictionary<string, string> Inputs, string? Refusal);

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer step {JobId}: {Updated} updated, {Kept} kept, {Resumed} resumed")]
    private static partial void LogStep(ILogger logger, Guid jobId, int updated, int kept, int resumed);
}
