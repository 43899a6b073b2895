using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Afnio.Api.Auth;
using Afnio.Api.Datasets;
using Afnio.Api.Infrastructure;
using Afnio.Api.Jobs;
using Afnio.Api.Models;
using Afnio.Api.Programs;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Runs;
using Afnio.Domain.Common;
using Afnio.Domain.Datasets;
using Afnio.Domain.Programs;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Runs;

/// <summary>The data a server-driven run trains on: a dataset version and its splits.</summary>
public sealed record RunDatasetRequest
{
    /// <summary>The dataset (<c>ds_…</c>).</summary>
    public string? Id { get; init; }

    /// <summary>The version to pin; the latest by default.</summary>
    public int? Version { get; init; }

    /// <summary>How to split it, as <c>POST /v1/datasets/{id}/split</c> takes it (the version above applies).</summary>
    public SplitRequest? Split { get; init; }

    /// <summary>Or explicit splits: item ids under <c>train</c>, <c>validation</c> and <c>test</c>.</summary>
    public Dictionary<string, List<string>>? Splits { get; init; }
}

/// <summary>The TGD optimizer of a run.</summary>
public sealed record RunOptimizerRequest
{
    /// <summary>Past iterations each parameter keeps (default 0).</summary>
    public int? Momentum { get; init; }

    /// <summary>Rules every new value must respect.</summary>
    public List<string>? Constraints { get; init; }

    /// <summary>Arguments for the optimizer model's calls.</summary>
    public JsonElement? CompletionArgs { get; init; }
}

/// <summary>How a run orders its training items.</summary>
public sealed record RunSamplerRequest
{
    /// <summary><c>sequential</c> (default), <c>random</c> (seeded permutation per epoch) or <c>weighted</c> (with replacement).</summary>
    public string? Type { get; init; }

    /// <summary>For <c>weighted</c>: one weight per training item, in split order.</summary>
    public List<double>? Weights { get; init; }

    /// <summary>For <c>weighted</c> without weights: class-balancing weights from this field (dotted path) of each item.</summary>
    public string? LabelField { get; init; }

    /// <summary>With <see cref="LabelField"/>: a field inside the JSON text there (the Facility answers).</summary>
    public string? LabelJsonField { get; init; }

    /// <summary>For <c>weighted</c>: draws per epoch (default: the training split's size).</summary>
    public int? NumSamples { get; init; }
}

/// <summary>What a server-driven run shows besides a client-driven run's fields.</summary>
public sealed record RunTrainingResponse(
    string ProgramId, int ProgramVersion, string? FromCheckpointId, string DatasetId, int DatasetVersion,
    IReadOnlyDictionary<string, int> Splits, [property: JsonConverter(typeof(UserKeysConverter))] IReadOnlyDictionary<string, string> Models, JsonElement Settings, RunSummary? Summary);

/// <summary>A checkpoint: where a run stood after a batch, an epoch or (the baseline) before training.</summary>
public sealed record CheckpointResponse(
    [property: JsonPropertyOrder(-2)] string Id, string? RunId, string? ProgramId, string Kind, int Epoch, int? Batch,
    IReadOnlyDictionary<string, double>? Validation, double? Score, decimal CostUsd, [property: JsonConverter(typeof(UserKeysConverter))] IReadOnlyDictionary<string, string> Parameters,
    JsonElement? State, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "checkpoint";
}

/// <summary>
/// Server-driven runs: the service runs afnio's <c>Trainer.fit</c> over a program and a dataset as a
/// durable job, checkpointing every batch.
/// </summary>
public static class TrainingRunsApi
{
    /// <summary>The most training batches one run may plan (epochs × batches per epoch).</summary>
    public const int MaxBatchesPerRun = 100_000;

    private static readonly string[] SplitNames = ["train", "validation", "test"];

    public static RouteGroupBuilder MapTrainingRuns(this RouteGroupBuilder v1)
    {
        var runs = v1.MapGroup("/runs").WithTags("Runs");
        runs.MapGet("/{id}/checkpoints", ListCheckpoints).WithName("listRunCheckpoints");
        runs.MapPost("/{id}/cancel", CancelRun).WithName("cancelRun").ProducesProblem(StatusCodes.Status409Conflict)
            .WithDescription("Cancels a server-driven run's job: the batch in flight is dropped, the committed checkpoints stay.");
        runs.MapPost("/{id}/test", TestRun).WithName("testRun").ProducesProblem(StatusCodes.Status409Conflict)
            .WithDescription("Runs the test split through the run's best checkpoint (no-grad) as a job; logs test_* metrics.");
        var checkpoints = v1.MapGroup("/checkpoints").WithTags("Runs");
        checkpoints.MapGet("/{id}", GetCheckpoint).WithName("retrieveCheckpoint")
            .WithDescription("A checkpoint with its full training state: parameters, their last gradients, momentum windows.");
        return v1;
    }

    /// <summary>
    /// Checks a server-driven run request and stores the run and its queued job in the caller's
    /// transaction; Workers see the job when it commits.
    /// </summary>
    public static async Task<(Run Run, Job Job)> AddAsync(
        CreateRunRequest request, string name, string? description, AfnioDbContext db, ProjectContext project, DateTimeOffset now, CancellationToken ct)
    {
        var program = await ProgramsApi.FindAsync(db, project, request.ProgramId!, ct, "program_id");
        var definition = ProgramsApi.Definition(program);
        Guid? fromCheckpoint = null;
        if (request.FromCheckpointId is { } from)
        {
            var checkpoint = await FindCheckpointAsync(db, project, from, "from_checkpoint_id", ct);
            if (checkpoint.ProgramId != program.Id)
            {
                throw ApiException.BadRequest("checkpoint_program_mismatch", "The checkpoint belongs to another program.", "from_checkpoint_id");
            }

            fromCheckpoint = checkpoint.Id;
        }

        var (datasetId, version, train, validation, test) = await SplitsAsync(db, project, request.Dataset, ct);
        await CheckItemsAsync(db, definition, train.Concat(validation).Concat(test), ct);
        var models = await ModelsAsync(db, project, definition, request.Models, ct);
        var settings = Settings(request, definition);
        var sampler = await SamplerAsync(db, request.Sampler, train, ct);
        var config = new TrainingRunConfig(
            program.Id, program.CurrentVersion, fromCheckpoint, datasetId, version, train, validation, test, models,
            new RunOptimizerSettings(request.Optimizer?.Momentum ?? 0, request.Optimizer?.Constraints ?? [], Args(request.Optimizer?.CompletionArgs, "optimizer.completion_args")),
            Args(request.BackwardCompletionArgs, "backward_completion_args"),
            settings.Epochs, settings.BatchSize, request.DropLast ?? false, sampler, request.Seed ?? 0, request.MaxCostUsd,
            settings.ValidateEvery, request.Test ?? false, request.Promote ?? false, settings.SelectMetric);
        var samples = sampler.NumSamples ?? train.Count;
        var batches = config.DropLast ? samples / settings.BatchSize : (samples + settings.BatchSize - 1) / settings.BatchSize;
        if (batches == 0)
        {
            throw ApiException.BadRequest("invalid_batch_size", "With drop_last, a batch_size larger than the training split leaves no batch.", "batch_size");
        }

        if ((long)batches * settings.Epochs > MaxBatchesPerRun)
        {
            throw ApiException.BadRequest("run_too_large",
                $"The run would train {(long)batches * settings.Epochs} batches; a run may train at most {MaxBatchesPerRun}. Use fewer epochs or larger batches.", "epochs");
        }

        var run = new Run
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = project.ProjectId,
            Name = name,
            Description = description,
            Status = Run.Running,
            CreatedAt = now,
            UpdatedAt = now,
            ProgramId = program.Id,
            Config = JsonSerializer.Serialize(config, JobEventLog.Json),
        };
        db.Runs.Add(run);
        await db.SaveChangesAsync(ct);
        var job = await JobScheduling.AddAsync(db, project.ProjectId, TrainingJobArguments.FitJobType,
            JsonSerializer.Serialize(new TrainingJobArguments(run.Id), JobEventLog.Json), now, ct, TrainingJobArguments.LockKeyFor(run.Id));
        run.JobId = job.Id;
        await db.SaveChangesAsync(ct);
        return (run, job);
    }

    public static async Task<Ok<JobResponse>> CancelRun(string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var run = await RunsApi.FindAsync(db, project, id, ct);
        if (run.JobId is not { } job)
        {
            throw ApiException.Conflict("run_not_server_driven", "This run is driven by its client; mark it finished with PATCH instead.", "id");
        }

        return await JobsApi.CancelJob(PrefixedId.Format(PrefixedId.Job, job), db, project, clock, ct);
    }

    public static async Task<Accepted<JobResponse>> TestRun(
        string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var run = await RunsApi.FindAsync(db, project, id, ct);
        if (run.Config is null)
        {
            throw ApiException.Conflict("run_not_server_driven", "Only a run the service trained has checkpoints to test.", "id");
        }

        var config = JsonSerializer.Deserialize<TrainingRunConfig>(run.Config, JobEventLog.Json)!;
        if (config.Test.Count == 0)
        {
            throw ApiException.Conflict("no_test_split", "The run has no test split.", "id");
        }

        Job job;
        try
        {
            job = await JobScheduling.AddAsync(db, project.ProjectId, TrainingJobArguments.TestJobType,
                JsonSerializer.Serialize(new TrainingJobArguments(run.Id), JobEventLog.Json), clock.GetUtcNow(), ct, TrainingJobArguments.LockKeyFor(run.Id));
        }
        catch (JobLockedException)
        {
            throw ApiException.Conflict("run_busy", "The run's job is still working; test it when it has finished.", "id");
        }
        var response = JobResponse.From(job);
        return TypedResults.Accepted($"/v1/jobs/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<CheckpointResponse>>> ListCheckpoints(
        string id, [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var run = await RunsApi.FindAsync(db, project, id, ct);
        var (rows, limit) = await db.RunCheckpoints.AsNoTracking().Where(c => c.RunId == run.Id)
            .FetchPageAsync(PrefixedId.Checkpoint, page with { Order = page.Order ?? "asc" }, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(c => ToResponse(c, full: false))], limit, c => c.Id));
    }

    public static async Task<Ok<CheckpointResponse>> GetCheckpoint(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct) =>
        TypedResults.Ok(ToResponse(await FindCheckpointAsync(db, project, id, "id", ct), full: true));

    public static async Task<RunCheckpoint> FindCheckpointAsync(AfnioDbContext db, ProjectContext project, string id, string param, CancellationToken ct) =>
        PrefixedId.TryParse(PrefixedId.Checkpoint, id, out var guid)
            ? await db.RunCheckpoints.AsNoTracking().SingleOrDefaultAsync(c => c.Id == guid && c.ProjectId == project.ProjectId, ct)
                ?? throw ApiException.NotFound("checkpoint", param)
            : throw ApiException.NotFound("checkpoint", param);

    public static CheckpointResponse ToResponse(RunCheckpoint c, bool full)
    {
        using var state = JsonDocument.Parse(c.State);
        var parameters = state.RootElement.GetProperty("parameters").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        return new CheckpointResponse(
            PrefixedId.Format(PrefixedId.Checkpoint, c.Id), PrefixedId.Format(PrefixedId.Run, c.RunId), PrefixedId.Format(PrefixedId.Program, c.ProgramId),
            c.Kind, c.Epoch, c.Batch, c.Validation is null ? null : JsonSerializer.Deserialize<Dictionary<string, double>>(c.Validation), c.Score, c.CostUsd,
            parameters, full ? state.RootElement.Clone() : null, UnixTime.Of(c.CreatedAt));
    }

    /// <summary>The training view of a run, for its response.</summary>
    public static RunTrainingResponse? Training(Run run)
    {
        if (run.Config is null)
        {
            return null;
        }

        var config = JsonSerializer.Deserialize<TrainingRunConfig>(run.Config, JobEventLog.Json)!;
        var settings = JsonSerializer.SerializeToElement(new
        {
            config.Epochs,
            config.BatchSize,
            config.DropLast,
            sampler = config.Sampler.Type,
            config.Seed,
            config.MaxCostUsd,
            config.ValidateEvery,
            test = config.RunTest,
            config.Promote,
            config.SelectMetric,
            optimizer = config.Optimizer,
        }, JobEventLog.Json);
        return new RunTrainingResponse(
            PrefixedId.Format(PrefixedId.Program, config.ProgramId), config.ProgramVersion, PrefixedId.Format(PrefixedId.Checkpoint, config.FromCheckpointId),
            PrefixedId.Format(PrefixedId.Dataset, config.DatasetId), config.DatasetVersion,
            new Dictionary<string, int> { ["train"] = config.Train.Count, ["validation"] = config.Validation.Count, ["test"] = config.Test.Count },
            config.Models.ToDictionary(m => m.Key, m => PrefixedId.Format(PrefixedId.Model, m.Value)), settings,
            run.Summary is null ? null : JsonSerializer.Deserialize<RunSummary>(run.Summary, JobEventLog.Json));
    }

    private sealed record LoopSettings(int Epochs, int BatchSize, int ValidateEvery, string SelectMetric);

    private static LoopSettings Settings(CreateRunRequest request, ProgramDefinition definition)
    {
        static int Range(int? value, int fallback, int min, int max, string param) => (value ?? fallback) is var v && v >= min && v <= max ? v
            : throw ApiException.BadRequest("invalid_" + param, $"'{param}' must be between {min} and {max}.", param);
        var epochs = Range(request.Epochs, 1, 1, 1000, "epochs");
        var batchSize = Range(request.BatchSize, 1, 1, 1000, "batch_size");
        var validateEvery = Range(request.ValidateEvery, 1, 1, 1000, "validate_every");
        if (request.MaxCostUsd is { } max && (max <= 0 || max > 1_000_000))
        {
            throw ApiException.BadRequest("invalid_max_cost_usd", "'max_cost_usd' must be more than 0 (and at most 1,000,000).", "max_cost_usd");
        }

        if (request.Optimizer?.Momentum is < 0 or > 100)
        {
            throw ApiException.BadRequest("invalid_momentum", "'optimizer.momentum' must be between 0 and 100.", "optimizer.momentum");
        }

        if (request.Optimizer?.Constraints is { } constraints && (constraints.Count > 100 || constraints.Any(c => c is null || c.Length > 10_000 || c.Contains('\0', StringComparison.Ordinal))))
        {
            throw ApiException.BadRequest("invalid_constraints", "'optimizer.constraints' must be at most 100 texts of at most 10,000 characters.", "optimizer.constraints");
        }

        string[] metrics = ["loss", .. definition.Metrics];
        var select = request.SelectMetric ?? (definition.Metrics.Contains("accuracy") ? "accuracy" : "loss");
        if (!metrics.Contains(select))
        {
            throw ApiException.BadRequest("invalid_select_metric", $"'select_metric' must be one of the program's metrics: {string.Join(", ", metrics)}.", "select_metric");
        }

        return new LoopSettings(epochs, batchSize, validateEvery, select);
    }

    private static JsonObject? Args(JsonElement? args, string param)
    {
        if (args is not { } value || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return ModelsApi.ReadArgs(value, param);
    }

    private static async Task<(Guid Dataset, int Version, List<Guid> Train, List<Guid> Validation, List<Guid> Test)> SplitsAsync(
        AfnioDbContext db, ProjectContext project, RunDatasetRequest? request, CancellationToken ct)
    {
        if (request?.Id is not { } id)
        {
            throw ApiException.BadRequest("missing_field", "'dataset.id' is required: the dataset to train on.", "dataset.id");
        }

        var dataset = await DatasetsApi.FindAsync(db, project, id, ct, "dataset.id");
        Dictionary<string, List<Guid>> named;
        int version;
        if (request.Split is { } split)
        {
            if (request.Splits is not null)
            {
                throw ApiException.BadRequest("invalid_dataset", "Give 'split' (how to split) or 'splits' (item ids), not both.", "dataset.splits");
            }

            var computed = await DatasetsApi.ComputeSplitAsync(db, dataset, split with { Version = split.Version ?? request.Version }, "dataset.split.", ct);
            version = computed.Version;
            named = computed.Splits.ToDictionary(s => s.Name, s => s.Items.ToList());
        }
        else
        {
            var count = await DatasetsApi.ItemCountAsync(db, dataset, request.Version, ct);
            version = request.Version ?? dataset.Version;
            named = [];
            foreach (var (name, ids) in request.Splits ?? throw ApiException.BadRequest("missing_field",
                "'dataset.split' (how to split) or 'dataset.splits' (item ids per split) is required.", "dataset.splits"))
            {
                var guids = (ids ?? []).Select((item, i) => PrefixedId.TryParse(PrefixedId.DatasetItem, item, out var g) ? g
                    : throw ApiException.BadRequest("invalid_id", $"'{item}' is not an item id (item_…).", $"dataset.splits.{name}[{i}]")).ToList();
                var found = await db.DatasetItems.Where(i => i.DatasetId == dataset.Id && i.Position < count && guids.Contains(i.Id)).Select(i => i.Id).ToListAsync(ct);
                var missing = guids.FindIndex(g => !found.Contains(g));
                if (missing >= 0)
                {
                    throw ApiException.BadRequest("unknown_item",
                        $"'{PrefixedId.Format(PrefixedId.DatasetItem, guids[missing])}' is not an item of version {version} of the dataset.", $"dataset.splits.{name}");
                }

                named[name] = guids;
            }
        }

        if (named.Keys.FirstOrDefault(k => !SplitNames.Contains(k) && k != "val") is { } unknown)
        {
            throw ApiException.BadRequest("invalid_split_name", $"Unknown split '{unknown}': a run uses train, validation (or val) and test.", "dataset");
        }

        var train = named.GetValueOrDefault("train") ?? [];
        if (train.Count == 0)
        {
            throw ApiException.BadRequest("empty_train_split", "The train split is empty: a run needs items to train on.", "dataset");
        }

        return (dataset.Id, version, train, named.GetValueOrDefault("validation") ?? named.GetValueOrDefault("val") ?? [], named.GetValueOrDefault("test") ?? []);
    }

    // Every item a run will read must have the program's inputs and targets: refuse now rather than fail mid-run.
    private static async Task CheckItemsAsync(AfnioDbContext db, ProgramDefinition definition, IEnumerable<Guid> items, CancellationToken ct)
    {
        var ids = items.Distinct().ToArray();
        var rows = await db.DatasetItems.AsNoTracking().Where(i => ids.Contains(i.Id)).Select(i => new { i.Id, i.Data }).ToListAsync(ct);
        foreach (var row in rows.OrderBy(r => r.Id))
        {
            var item = JsonNode.Parse(row.Data);
            foreach (var field in definition.Inputs.Concat(definition.Targets))
            {
                try
                {
                    FieldPath.Read(item, field, PrefixedId.Format(PrefixedId.DatasetItem, row.Id));
                }
                catch (AfnioException e)
                {
                    throw ApiException.BadRequest(e.Code, e.Message, "dataset");
                }
            }
        }
    }

    private static async Task<Dictionary<string, Guid>> ModelsAsync(
        AfnioDbContext db, ProjectContext project, ProgramDefinition definition, Dictionary<string, string>? requested, CancellationToken ct)
    {
        var models = new Dictionary<string, Guid>(StringComparer.Ordinal);
        foreach (var (role, id) in requested ?? [])
        {
            if (!PrefixedId.TryParse(PrefixedId.Model, id, out var guid) || !await db.Models.AnyAsync(m => m.Id == guid && m.ProjectId == project.ProjectId, ct))
            {
                throw ApiException.NotFound("model", $"models.{role}");
            }

            models[role] = guid;
        }

        if (!models.TryGetValue("backward", out var backward))
        {
            backward = models["backward"] = await db.Projects.Where(p => p.Id == project.ProjectId).Select(p => p.BackwardModelId).SingleAsync(ct)
                ?? throw ApiException.BadRequest("missing_model",
                    "'models.backward' is required (the project has no backward model set): the model that writes the feedback.", "models.backward");
        }

        models.TryAdd("optimizer", backward);
        var needed = definition.Steps.Append(definition.Loss).Select(s => s.Model).OfType<string>().FirstOrDefault(m => !models.ContainsKey(m));
        if (needed is not null)
        {
            throw ApiException.BadRequest("missing_model", $"The program's steps call the model '{needed}': give it in 'models.{needed}'.", $"models.{needed}");
        }

        return models;
    }

    private static async Task<SamplerSettings> SamplerAsync(AfnioDbContext db, RunSamplerRequest? request, List<Guid> train, CancellationToken ct)
    {
        var type = request?.Type ?? "sequential";
        switch (type)
        {
            case "sequential" or "random":
                return new SamplerSettings(type, null, null);
            case "weighted":
                var weights = request!.Weights;
                if (weights is null)
                {
                    var field = request.LabelField ?? throw ApiException.BadRequest("missing_field",
                        "A weighted sampler needs 'weights' (one per training item) or 'label_field' (for class-balancing weights).", "sampler.label_field");
                    var mapping = new FieldMapping("label", FieldPath.Check(field, "sampler.label_field"),
                        request.LabelJsonField is { } inner ? FieldPath.Check(inner, "sampler.label_json_field") : null, string.Empty);
                    var rows = await db.DatasetItems.AsNoTracking().Where(i => train.Contains(i.Id)).ToDictionaryAsync(i => i.Id, i => i.Data, ct);
                    var labels = train.Select(id =>
                    {
                        try
                        {
                            return (string?)FieldPath.Read(JsonNode.Parse(rows[id]), mapping, PrefixedId.Format(PrefixedId.DatasetItem, id));
                        }
                        catch (AfnioException)
                        {
                            return null;
                        }
                    }).ToList();
                    weights = [.. Sampler.ClassBalancingWeights(labels)];
                }

                if (weights.Count != train.Count)
                {
                    throw ApiException.BadRequest("invalid_weights", $"'sampler.weights' has {weights.Count} weights for {train.Count} training items.", "sampler.weights");
                }

                if (request.NumSamples is < 1 or > 1_000_000)
                {
                    throw ApiException.BadRequest("invalid_num_samples", "'sampler.num_samples' must be between 1 and 1,000,000.", "sampler.num_samples");
                }

                // Checks the weights now (non-negative, finite, not all zero), with the sampler's own messages.
                try
                {
                    _ = new WeightedRandomSampler(weights, request.NumSamples ?? train.Count, 0);
                }
                catch (AfnioException e)
                {
                    throw new AfnioException(e.Kind, e.Code, e.Message, "sampler.weights");
                }
                return new SamplerSettings(type, weights, request.NumSamples);
            default:
                throw ApiException.BadRequest("invalid_sampler", $"Unknown sampler '{type}': use sequential, random or weighted.", "sampler.type");
        }
    }
}
