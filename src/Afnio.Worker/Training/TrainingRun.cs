using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Runs;
using Afnio.Domain.Common;
using Afnio.Domain.Datasets;
using Afnio.Domain.Programs;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Worker.Training;

/// <summary>Everything a run's job reads once, at the start of a delivery: the run, its program, its items.</summary>
internal sealed class TrainingRun
{
    private readonly Sampler _sampler;
    private (int Epoch, IReadOnlyList<IReadOnlyList<int>> Batches)? _batches;

    private TrainingRun(
        Run run, TrainingRunConfig config, ProgramDefinition program, IReadOnlyDictionary<string, string> production, TrainingState initial,
        IReadOnlyList<(JsonNode? Item, string Label)> train, IReadOnlyList<(JsonNode? Item, string Label)> validation,
        IReadOnlyList<(JsonNode? Item, string Label)> test)
    {
        (Run, Config, Program, Production, Initial) = (run, config, program, production, initial);
        TrainItems = [.. train.Select(t => t.Item)];
        TrainLabels = [.. train.Select(t => t.Label)];
        ValidationItems = validation;
        TestItems = test;
        Executor = new ProgramExecutor(program, config.Models);
        Tgd = new TgdSettings(config.Models["optimizer"], config.Optimizer.Momentum, config.Optimizer.Constraints, config.Optimizer.CompletionArgs);
        _sampler = config.Sampler.Type switch
        {
            "random" => new RandomSampler(train.Count, config.Seed),
            "weighted" => new WeightedRandomSampler(config.Sampler.Weights!, config.Sampler.NumSamples ?? train.Count, config.Seed),
            _ => new SequentialSampler(train.Count),
        };
        SamplesPerEpoch = _sampler.Count;
        BatchesPerEpoch = Sampler.Batches(_sampler.Order(0), config.BatchSize, config.DropLast).Count;
    }

    public Run Run { get; }

    public Guid ProjectId => Run.ProjectId;

    public TrainingRunConfig Config { get; }

    public ProgramDefinition Program { get; }

    public ProgramExecutor Executor { get; }

    public TgdSettings Tgd { get; }

    /// <summary>The production version's parameters when the run started: what a promotion must beat.</summary>
    public IReadOnlyDictionary<string, string> Production { get; }

    /// <summary>Where training starts: the production version, or the checkpoint the run continues from.</summary>
    public TrainingState Initial { get; }

    public IReadOnlyList<JsonNode?> TrainItems { get; }

    public IReadOnlyList<string> TrainLabels { get; }

    public IReadOnlyList<(JsonNode? Item, string Label)> ValidationItems { get; }

    public IReadOnlyList<(JsonNode? Item, string Label)> TestItems { get; }

    public int SamplesPerEpoch { get; }

    public int BatchesPerEpoch { get; }

    /// <summary>Whether epoch <paramref name="epoch"/> ends with validation: every <c>validate_every</c> epochs, and always the last.</summary>
    public bool ValidatesAt(int epoch) =>
        ValidationItems.Count > 0 && (epoch % Config.ValidateEvery == 0 || epoch == Config.Epochs);

    /// <summary>The training items (indices into the split) of a batch.</summary>
    public IReadOnlyList<int> BatchOf(int epoch, int batch)
    {
        // Orders are drawn once per epoch, not once per batch.
        if (_batches?.Epoch != epoch)
        {
            _batches = (epoch, Sampler.Batches(_sampler.Order(epoch - 1), Config.BatchSize, Config.DropLast));
        }

        return _batches.Value.Batches[batch];
    }

    public RunCheckpoint Checkpoint(
        string kind, int epoch, int? batch, TrainingState state, RunProgress progress, IReadOnlyDictionary<string, double>? validation, DateTimeOffset now) => new()
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = ProjectId,
            RunId = Run.Id,
            ProgramId = Config.ProgramId,
            Kind = kind,
            Epoch = epoch,
            Batch = batch,
            State = JsonSerializer.Serialize(state, JobEventLog.Json),
            Progress = JsonSerializer.Serialize(progress, JobEventLog.Json),
            Validation = validation is null ? null : JsonSerializer.Serialize(validation),
            Score = validation?.GetValueOrDefault(Config.SelectMetric),
            CostUsd = progress.CostUsd,
            CreatedAt = now,
        };

    public static async Task<TrainingRun> LoadAsync(AfnioDbContext db, Job job, CancellationToken ct)
    {
        var arguments = JsonSerializer.Deserialize<TrainingJobArguments>(job.Arguments!, JobEventLog.Json)
            ?? throw new InvalidOperationException("The job has no arguments.");
        var run = await db.Runs.AsNoTracking().SingleOrDefaultAsync(r => r.Id == arguments.RunId && r.ProjectId == job.ProjectId, ct)
            ?? throw RunStepKeys.Missing("run", arguments.RunId, PrefixedId.Run);
        var config = JsonSerializer.Deserialize<TrainingRunConfig>(run.Config!, JobEventLog.Json)!;
        var program = await db.Programs.AsNoTracking().SingleOrDefaultAsync(p => p.Id == config.ProgramId && p.ProjectId == run.ProjectId, ct)
            ?? throw RunStepKeys.Missing("program", config.ProgramId, PrefixedId.Program);
        var definition = ProgramParser.Parse(JsonDocument.Parse(program.Definition).RootElement);
        var version = await db.ProgramVersions.AsNoTracking().SingleAsync(v => v.ProgramId == program.Id && v.Version == config.ProgramVersion, ct);
        var production = JsonSerializer.Deserialize<Dictionary<string, string>>(version.Parameters)!;
        var initial = TrainingState.Initial(production);
        if (config.FromCheckpointId is { } from)
        {
            var checkpoint = await db.RunCheckpoints.AsNoTracking().SingleOrDefaultAsync(c => c.Id == from && c.ProjectId == run.ProjectId, ct)
                ?? throw RunStepKeys.Missing("starting checkpoint", from, PrefixedId.Checkpoint);
            initial = TrainingJobs.Read<TrainingState>(checkpoint.State);
        }

        var ids = config.Train.Concat(config.Validation).Concat(config.Test).Distinct().ToArray();
        var items = await db.DatasetItems.AsNoTracking().Where(i => ids.Contains(i.Id) && i.DatasetId == config.DatasetId)
            .ToDictionaryAsync(i => i.Id, i => i.Data, ct);
        IReadOnlyList<(JsonNode?, string)> Split(IEnumerable<Guid> split) => [.. split.Select(id => (
            JsonNode.Parse(items.TryGetValue(id, out var data) ? data : throw RunStepKeys.Missing("dataset item", id, PrefixedId.DatasetItem)),
            PrefixedId.Format(PrefixedId.DatasetItem, id)))];
        return new TrainingRun(run, config, definition, production, initial, Split(config.Train), Split(config.Validation), Split(config.Test));
    }
}
