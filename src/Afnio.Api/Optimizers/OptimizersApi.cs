using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Jobs;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Optimizers;
using Afnio.Domain.Common;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Optimizers;

/// <summary>
/// TGD optimizers (semantics §4): parameter groups filled with the defaults, <c>clear_grad</c>, a
/// state dict that is read and loaded on the server, and steps that run as durable jobs.
/// </summary>
public static class OptimizersApi
{
    public const string GradientsCleared = "Gradients cleared successfully.";
    private const int MaxGroups = 100;
    private const int MaxGroupsJson = 4 * 1024 * 1024;

    public static RouteGroupBuilder MapOptimizers(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/optimizers").WithTags("Optimizers");
        group.MapPost("/", CreateOptimizer).WithName("createOptimizer")
            .WithDescription("Creates a TGD optimizer over parameters or parameter groups, as afnio's TGD(params, model_client, …).");
        group.MapGet("/", ListOptimizers).WithName("listOptimizers");
        group.MapGet("/{id}", GetOptimizer).WithName("retrieveOptimizer");
        group.MapDelete("/{id}", DeleteOptimizer).WithName("deleteOptimizer").ProducesProblem(StatusCodes.Status409Conflict);
        group.MapPost("/{id}/param_groups", AddParamGroup).WithName("addOptimizerParamGroup").ProducesProblem(StatusCodes.Status409Conflict)
            .WithDescription("Adds a parameter group; what it leaves out comes from the defaults.");
        group.MapPost("/{id}/clear_grad", ClearGrad).WithName("clearOptimizerGrad")
            .WithDescription("Empties the gradient list of every parameter of every group.");
        group.MapGet("/{id}/state_dict", GetStateDict).WithName("retrieveOptimizerStateDict");
        group.MapPut("/{id}/state_dict", LoadStateDict).WithName("loadOptimizerStateDict").ProducesProblem(StatusCodes.Status409Conflict)
            .WithDescription("Loads a state dict into the optimizer on the server: group settings and every parameter's momentum window.");
        group.MapPost("/{id}/step", Step).WithName("stepOptimizer").ProducesProblem(StatusCodes.Status409Conflict)
            .WithDescription("Rewrites every parameter that has gradients, as a job. Gradients are not cleared.");
        return v1;
    }

    public static async Task<Created<OptimizerResponse>> CreateOptimizer(
        CreateOptimizerRequest request, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var type = request.Type ?? throw ApiException.BadRequest("missing_field", "'type' is required: \"tgd\".", "type");
        if (type != Optimizer.Tgd)
        {
            throw ApiException.BadRequest("unsupported_optimizer", $"Unknown optimizer type: '{type}'. Supported: tgd.", "type");
        }

        if (request.Params is not null && request.ParamGroups is not null)
        {
            throw ApiException.BadRequest("invalid_params", "Give either 'params' or 'param_groups', not both.", "params");
        }

        var reader = new OptimizerSettingsReader(db, project);
        var defaults = await reader.ReadAsync(request, null, "", ct);
        var taken = new HashSet<Guid>();
        var groups = new List<(TgdGroupSettings Settings, IReadOnlyList<Guid> Params)>();
        if (request.ParamGroups is { } requested)
        {
            if (requested.Count == 0)
            {
                throw ApiException.BadRequest("empty_parameter_list", "optimizer got an empty parameter list", "param_groups");
            }

            if (requested.Count > MaxGroups)
            {
                throw ApiException.BadRequest("too_many_param_groups", $"An optimizer has at most {MaxGroups} parameter groups.", "param_groups");
            }

            for (var i = 0; i < requested.Count; i++)
            {
                var groupRequest = requested[i] ?? throw ApiException.BadRequest("invalid_type", $"param_groups[{i}] must be an object.", $"param_groups[{i}]");
                groups.Add((await reader.ReadAsync(groupRequest, defaults, $"param_groups[{i}].", ct),
                    await reader.ParamsAsync(groupRequest.Params, $"param_groups[{i}].params", taken, ct)));
            }
        }
        else
        {
            groups.Add((defaults, await reader.ParamsAsync(request.Params, "params", taken, ct)));
        }

        var optimizer = new Optimizer
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = project.ProjectId,
            Type = Optimizer.Tgd,
            Defaults = defaults.ToJson(),
            ParamGroups = CheckSize([.. groups.Select(g => g.Settings)], "param_groups"),
            CreatedAt = clock.GetUtcNow(),
        };
        db.Optimizers.Add(optimizer);
        db.OptimizerParams.AddRange(groups.SelectMany((g, i) => g.Params.Select((p, j) =>
            new OptimizerParam { OptimizerId = optimizer.Id, VariableId = p, GroupIndex = i, Position = j })));
        await db.SaveChangesAsync(ct);
        var response = await ToResponseAsync(db, optimizer, ct);
        return TypedResults.Created($"/v1/optimizers/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<OptimizerResponse>>> ListOptimizers(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var (rows, limit) = await db.Optimizers.AsNoTracking().Where(o => o.ProjectId == project.ProjectId)
            .FetchPageAsync(PrefixedId.Optimizer, page, ct);
        var responses = new List<OptimizerResponse>(rows.Count);
        foreach (var row in rows)
        {
            responses.Add(await ToResponseAsync(db, row, ct));
        }

        return TypedResults.Ok(Paging.ToList(responses, limit, o => o.Id));
    }

    public static async Task<Ok<OptimizerResponse>> GetOptimizer(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct) =>
        TypedResults.Ok(await ToResponseAsync(db, await FindAsync(db, project, id, ct), ct));

    public static async Task<NoContent> DeleteOptimizer(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var optimizer = await LockAsync(db, project, id, ct);
        await EnsureIdleAsync(db, optimizer.Id, ct);
        // Parameters, their snapshots and gradients stay: they are variables of the project.
        await db.Optimizers.Where(o => o.Id == optimizer.Id).ExecuteDeleteAsync(ct);
        await tx.CommitAsync(ct);
        return TypedResults.NoContent();
    }

    public static async Task<Ok<ParamGroupResponse>> AddParamGroup(
        string id, ParamGroupRequest request, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var optimizer = await LockAsync(db, project, id, ct);
        await EnsureIdleAsync(db, optimizer.Id, ct);
        var reader = new OptimizerSettingsReader(db, project);
        var settings = await reader.ReadAsync(request, TgdGroupSettings.FromJson(optimizer.Defaults), "", ct);
        var taken = (await db.OptimizerParams.Where(p => p.OptimizerId == optimizer.Id).Select(p => p.VariableId).ToListAsync(ct)).ToHashSet();
        var parameters = await reader.ParamsAsync(request.Params, "params", taken, ct);

        var groups = TgdGroupSettings.ListFromJson(optimizer.ParamGroups).Append(settings).ToList();
        var index = groups.Count - 1;
        await db.Optimizers.Where(o => o.Id == optimizer.Id)
            .ExecuteUpdateAsync(s => s.SetProperty(o => o.ParamGroups, CheckSize(groups, "params")), ct);
        db.OptimizerParams.AddRange(parameters.Select((p, j) =>
            new OptimizerParam { OptimizerId = optimizer.Id, VariableId = p, GroupIndex = index, Position = j }));
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return TypedResults.Ok(ToGroupResponse(settings, [.. parameters.Select(p => PrefixedId.Format(PrefixedId.Variable, p))]));
    }

    public static async Task<Ok<ClearGradResponse>> ClearGrad(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var optimizer = await FindAsync(db, project, id, ct);
        var parameters = db.OptimizerParams.Where(p => p.OptimizerId == optimizer.Id).Select(p => p.VariableId);
        var count = await parameters.CountAsync(ct);
        var removed = await db.VariableGradients.Where(g => parameters.Contains(g.VariableId)).ExecuteDeleteAsync(ct);
        return TypedResults.Ok(new ClearGradResponse(GradientsCleared, count, removed));
    }

    public static async Task<Ok<StateDictResponse>> GetStateDict(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var optimizer = await FindAsync(db, project, id, ct);
        var groups = TgdGroupSettings.ListFromJson(optimizer.ParamGroups);
        var parameters = await ParamsAsync(db, optimizer.Id, ct);
        var state = new Dictionary<string, ParamStateDict>();
        for (var i = 0; i < parameters.Count; i++)
        {
            if (parameters[i].MomentumBuffer is { } buffer)
            {
                state[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new ParamStateDict(Entries(buffer));
            }
        }

        var next = 0;
        var groupResponses = groups.Select((g, gi) =>
        {
            var indices = parameters.Where(p => p.GroupIndex == gi).Select(_ => next++).ToList();
            return new StateDictGroupResponse(indices, g.ModelId, Messages(g), Inputs(g), g.Constraints, g.Momentum, g.CompletionArgs);
        }).ToList();
        return TypedResults.Ok(new StateDictResponse(PrefixedId.Format(PrefixedId.Optimizer, optimizer.Id), state, groupResponses));
    }

    public static async Task<Ok<OptimizerResponse>> LoadStateDict(
        string id, StateDictRequest request, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var optimizer = await LockAsync(db, project, id, ct);
        await EnsureIdleAsync(db, optimizer.Id, ct);
        var current = TgdGroupSettings.ListFromJson(optimizer.ParamGroups);
        var parameters = await ParamsAsync(db, optimizer.Id, ct);
        var loaded = request.ParamGroups ?? throw ApiException.BadRequest("missing_field", "'param_groups' is required.", "param_groups");
        if (loaded.Count != current.Count)
        {
            throw ApiException.BadRequest("state_dict_group_count", "Loaded state dict has a different number of parameter groups.", "param_groups");
        }

        // Saved indices map, in order, onto the optimizer's parameters (as PyTorch's load_state_dict maps them).
        var byIndex = new Dictionary<int, OptimizerParam>();
        var reader = new OptimizerSettingsReader(db, project);
        // A saved group without messages had the built-in prompts, whatever this optimizer's defaults are.
        var defaults = TgdGroupSettings.FromJson(optimizer.Defaults) with { Messages = null };
        var settings = new List<TgdGroupSettings>();
        for (var g = 0; g < loaded.Count; g++)
        {
            var group = loaded[g] ?? throw ApiException.BadRequest("invalid_type", $"param_groups[{g}] must be an object.", $"param_groups[{g}]");
            var members = parameters.Where(p => p.GroupIndex == g).ToList();
            if (group.Params is null || group.Params.Count != members.Count)
            {
                throw ApiException.BadRequest("state_dict_group_size",
                    "Loaded state dict contains a parameter group that doesn't match the size of optimizer's group.", $"param_groups[{g}].params");
            }

            for (var j = 0; j < members.Count; j++)
            {
                if (!byIndex.TryAdd(group.Params[j], members[j]))
                {
                    throw ApiException.BadRequest("duplicate_parameter",
                        $"Parameter index {group.Params[j]} appears twice in the state dict.", $"param_groups[{g}].params[{j}]");
                }
            }

            settings.Add(await reader.ReadAsync(group, defaults, $"param_groups[{g}].", ct));
        }

        var buffers = await ReadStateAsync(db, project, request.State, byIndex, settings, ct);
        await db.Optimizers.Where(o => o.Id == optimizer.Id)
            .ExecuteUpdateAsync(s => s.SetProperty(o => o.ParamGroups, CheckSize(settings, "param_groups")), ct);
        foreach (var parameter in parameters)
        {
            var buffer = buffers.GetValueOrDefault(parameter.VariableId);
            await db.OptimizerParams.Where(p => p.OptimizerId == optimizer.Id && p.VariableId == parameter.VariableId)
                .ExecuteUpdateAsync(s => s.SetProperty(p => p.MomentumBuffer, buffer), ct);
        }

        await tx.CommitAsync(ct);
        optimizer.ParamGroups = TgdGroupSettings.ListToJson(settings);
        return TypedResults.Ok(await ToResponseAsync(db, optimizer, ct));
    }

    public static Task<Accepted<JobResponse>> Step(
        string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct) =>
        StartStepAsync(id, null, db, project, clock, ct);

    /// <summary>
    /// Queues a step over every parameter that has gradients: its gradient lists, or the gradients
    /// given in <paramref name="gradients"/> (afnio's functional <c>tgd(params, grads, …)</c>).
    /// </summary>
    public static async Task<Accepted<JobResponse>> StartStepAsync(
        string id, IReadOnlyDictionary<Guid, IReadOnlyList<Guid>>? gradients, AfnioDbContext db, ProjectContext project,
        TimeProvider clock, CancellationToken ct)
    {
        // The row lock orders this step with loads, new groups and deletes of the same optimizer: the
        // Worker reads settings and state that were committed before the step was.
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var optimizer = await LockAsync(db, project, id, ct);
        var parameters = await ParamsAsync(db, optimizer.Id, ct);
        var ids = parameters.Select(p => p.VariableId).ToList();
        var lists = gradients is not null
            ? parameters.SelectMany(p => gradients.GetValueOrDefault(p.VariableId, []).Select(g => (p.VariableId, GradientId: g))).ToLookup(g => g.VariableId, g => g.GradientId)
            : (await db.VariableGradients.AsNoTracking().Where(g => ids.Contains(g.VariableId))
                .OrderBy(g => g.Seq).Select(g => new { g.VariableId, g.GradientId }).ToListAsync(ct))
                .ToLookup(g => g.VariableId, g => g.GradientId);
        var stepped = parameters.Where(p => lists[p.VariableId].Any())
            .Select(p => new StepParameter(p.VariableId, p.GroupIndex, [.. lists[p.VariableId]]))
            .ToList();
        var arguments = new OptimizerStepJobArguments(optimizer.Id, stepped, parameters.Count - stepped.Count);
        Job job;
        try
        {
            job = await JobScheduling.AddAsync(db, project.ProjectId, OptimizerStepJobArguments.JobType,
                JsonSerializer.Serialize(arguments, JobEventLog.Json), clock.GetUtcNow(), ct, OptimizerStepJobArguments.LockKeyFor(optimizer.Id));
        }
        catch (JobLockedException)
        {
            throw Busy();
        }

        await tx.CommitAsync(ct);
        var response = JobResponse.From(job);
        return TypedResults.Accepted($"/v1/jobs/{response.Id}", response);
    }

    private static async Task<Dictionary<Guid, string?>> ReadStateAsync(
        AfnioDbContext db, ProjectContext project, IReadOnlyDictionary<string, StateDictParamState>? state,
        Dictionary<int, OptimizerParam> byIndex, List<TgdGroupSettings> settings, CancellationToken ct)
    {
        var result = new Dictionary<Guid, string?>();
        var references = new List<(Guid Id, string Param)>();
        foreach (var (key, value) in state ?? new Dictionary<string, StateDictParamState>())
        {
            var at = $"state.{key}";
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index)
                || index.ToString(System.Globalization.CultureInfo.InvariantCulture) != key || !byIndex.TryGetValue(index, out var parameter))
            {
                throw ApiException.BadRequest("unknown_parameter_index",
                    $"state has an entry for '{key}', which is not a parameter index of the loaded param_groups.", at);
            }

            var entries = value?.MomentumBuffer ?? [];
            var k = settings[parameter.GroupIndex].Momentum;
            if (entries.Count > k)
            {
                throw ApiException.BadRequest("momentum_buffer_too_long",
                    $"{at}.momentum_buffer has {entries.Count} entries, more than its group's momentum ({k}).", $"{at}.momentum_buffer");
            }

            var buffer = new List<MomentumEntry>();
            for (var i = 0; i < entries.Count; i++)
            {
                var entryAt = $"{at}.momentum_buffer[{i}]";
                var entry = entries[i] ?? throw ApiException.BadRequest("invalid_type", $"{entryAt} must be an object.", entryAt);
                var snapshot = OptimizerSettingsReader.VariableId(entry.SnapshotId, entryAt + ".snapshot_id");
                references.Add((snapshot, entryAt + ".snapshot_id"));
                var gradientIds = entry.GradientIds ?? throw ApiException.BadRequest("missing_field", $"{entryAt}.gradient_ids is required.", entryAt + ".gradient_ids");
                references.AddRange(gradientIds.Select((g, j) => (OptimizerSettingsReader.VariableId(g, $"{entryAt}.gradient_ids[{j}]"), $"{entryAt}.gradient_ids[{j}]")));
                buffer.Add(new MomentumEntry(entry.SnapshotId!, gradientIds));
            }

            result[parameter.VariableId] = MomentumEntry.ListToJson(buffer);
        }

        var ids = references.Select(r => r.Id).Distinct().ToList();
        var found = (await db.Variables.AsNoTracking().Where(v => v.ProjectId == project.ProjectId && ids.Contains(v.Id))
            .Select(v => v.Id).ToListAsync(ct)).ToHashSet();
        return references.FirstOrDefault(r => !found.Contains(r.Id)) is { Param: not null } missing
            ? throw ApiException.NotFound("variable", missing.Param)
            : result;
    }

    private static async Task<Optimizer> FindAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct) =>
        PrefixedId.TryParse(PrefixedId.Optimizer, id, out var guid)
            ? await db.Optimizers.AsNoTracking().SingleOrDefaultAsync(o => o.Id == guid && o.ProjectId == project.ProjectId, ct)
                ?? throw ApiException.NotFound("optimizer", "id")
            : throw ApiException.NotFound("optimizer", "id");

    /// <summary>
    /// Finds the caller's optimizer and locks its row until the transaction ends: steps, state loads,
    /// new groups and deletes of one optimizer happen one after another.
    /// </summary>
    private static async Task<Optimizer> LockAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct) =>
        PrefixedId.TryParse(PrefixedId.Optimizer, id, out var guid)
            ? (await db.Optimizers.FromSql($"SELECT * FROM optimizers WHERE id = {guid} AND project_id = {project.ProjectId} FOR UPDATE")
                .AsNoTracking().ToListAsync(ct)).SingleOrDefault() ?? throw ApiException.NotFound("optimizer", "id")
            : throw ApiException.NotFound("optimizer", "id");

    /// <summary>The groups as stored; refused when there are too many or their settings are too large to copy into every group.</summary>
    private static string CheckSize(List<TgdGroupSettings> groups, string param)
    {
        if (groups.Count > MaxGroups)
        {
            throw ApiException.BadRequest("too_many_param_groups", $"An optimizer has at most {MaxGroups} parameter groups.", param);
        }

        var json = TgdGroupSettings.ListToJson(groups);
        return json.Length <= MaxGroupsJson
            ? json
            : throw ApiException.BadRequest("optimizer_too_large",
                $"The groups' settings come to {json.Length} characters of JSON; at most {MaxGroupsJson} are stored. " +
                "Use fewer groups, or shorter messages, constraints and completion_args.", param);
    }

    /// <summary>The optimizer's parameters, numbered as state dicts number them: by group, then place in the group.</summary>
    private static Task<List<OptimizerParam>> ParamsAsync(AfnioDbContext db, Guid optimizerId, CancellationToken ct) =>
        db.OptimizerParams.AsNoTracking().Where(p => p.OptimizerId == optimizerId)
            .OrderBy(p => p.GroupIndex).ThenBy(p => p.Position).ToListAsync(ct);

    /// <summary>Changing groups or state under a running step would mix two versions of the optimizer.</summary>
    private static async Task EnsureIdleAsync(AfnioDbContext db, Guid optimizerId, CancellationToken ct)
    {
        var key = OptimizerStepJobArguments.LockKeyFor(optimizerId);
        if (await db.Jobs.AnyAsync(j => j.LockKey == key
            && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running || j.Status == JobStatus.Cancelling), ct))
        {
            throw Busy();
        }
    }

    private static ApiException Busy() => ApiException.Conflict("optimizer_busy",
        "A step of this optimizer is queued or running; wait for its job to finish (or cancel it) and try again.");

    private static async Task<OptimizerResponse> ToResponseAsync(AfnioDbContext db, Optimizer optimizer, CancellationToken ct)
    {
        var parameters = await ParamsAsync(db, optimizer.Id, ct);
        var defaults = TgdGroupSettings.FromJson(optimizer.Defaults);
        var groups = TgdGroupSettings.ListFromJson(optimizer.ParamGroups)
            .Select((g, i) => ToGroupResponse(g, [.. parameters.Where(p => p.GroupIndex == i).Select(p => PrefixedId.Format(PrefixedId.Variable, p.VariableId))]))
            .ToList();
        var state = parameters.Where(p => p.MomentumBuffer is not null)
            .Select(p => new ParamStateResponse(PrefixedId.Format(PrefixedId.Variable, p.VariableId), Entries(p.MomentumBuffer)))
            .ToList();
        return new OptimizerResponse(PrefixedId.Format(PrefixedId.Optimizer, optimizer.Id), optimizer.Type,
            new OptimizerSettings(defaults.ModelId, Messages(defaults), Inputs(defaults), defaults.Constraints, defaults.Momentum, defaults.CompletionArgs),
            groups, state, UnixTime.Of(optimizer.CreatedAt));
    }

    private static ParamGroupResponse ToGroupResponse(TgdGroupSettings g, IReadOnlyList<string> parameters) =>
        new(parameters, g.ModelId, Messages(g), Inputs(g), g.Constraints, g.Momentum, g.CompletionArgs);

    private static IReadOnlyList<MomentumEntryResponse> Entries(string? buffer) =>
        [.. MomentumEntry.ListFromJson(buffer).Select(e => new MomentumEntryResponse(e.SnapshotId, e.GradientIds))];

    private static List<OptimizerMessageResponse>? Messages(TgdGroupSettings g) =>
        g.Messages?.Select(m => new OptimizerMessageResponse(m.Role, m.Content)).ToList();

    // A JsonObject keeps input names as given (dictionary keys would be snake_cased on the way out).
    private static JsonObject Inputs(TgdGroupSettings g) => new(g.Inputs.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
}
