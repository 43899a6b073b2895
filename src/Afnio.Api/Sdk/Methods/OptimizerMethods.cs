using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Jobs;
using Afnio.Api.Optimizers;
using Afnio.Api.Sdk.Rpc;
using Afnio.Api.Variables;
using Afnio.Data.Optimizers;
using Afnio.Domain.Common;
using Hangfire;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Sdk.Methods;

/// <summary>
/// TGD over the afnio protocol (semantics §4): optimizers and parameter groups through the v1
/// handlers, and steps (<c>run_step</c>, the functional <c>run_optimizer_tgd</c>) as the same durable
/// step job. After a step the connection pushes each momentum snapshot (<c>create_variable</c>), the
/// optimizer model's usage, each new value (<c>update_variable</c>) and <c>clear_step</c>, then replies
/// with the state.
/// </summary>
public static class OptimizerMethods
{
    public const string StepSucceeded = "Optimizer step executed successfully.";
    public const string FunctionalStepSucceeded = "Functional TGD optimization step executed successfully.";

    // What afnio's TGD sends in place of its prompts: these two texts mean the server's own TGD prompts.
    private const string SystemPlaceholder = "Placeholder for Textual Gradient Descent optimizer system prompt";
    private const string UserPlaceholder = "Placeholder for Textual Gradient Descent optimizer user prompt";

    private static readonly HashSet<string> SettingKeys = new(StringComparer.Ordinal)
    {
        "model_client", "messages", "inputs", "constraints", "momentum", "completion_args",
    };

    public static async Task<JsonNode?> CreateOptimizerAsync(SdkCall call)
    {
        var name = call.RequiredString("optimizer_name");
        if (name != "TGD")
        {
            throw RpcException.InvalidParams($"Unknown optimizer: '{name}'. The server runs: TGD.", "optimizer_name", "unsupported_optimizer");
        }

        var defaults = call.Required("defaults") as JsonObject
            ?? throw RpcException.InvalidParams("'defaults' must be an object of TGD settings.", "defaults", "invalid_type");
        var parameters = call.Required("params") as JsonArray
            ?? throw RpcException.InvalidParams("'params' must be a list of parameters or of parameter groups.", "params", "invalid_type");
        var settings = await ReadSettingsAsync(call, defaults, "defaults", groupKeys: false);

        var groups = parameters.Count > 0 && parameters.All(p => p is JsonObject o && !SdkRefs.IsVariableRef(o));
        var request = new CreateOptimizerRequest
        {
            Type = Optimizer.Tgd,
            ModelId = settings.ModelId,
            Messages = settings.Messages,
            Inputs = settings.Inputs,
            Constraints = settings.Constraints,
            Momentum = settings.Momentum,
            CompletionArgs = settings.CompletionArgs,
            Params = groups ? null : await ParamIdsAsync(call, parameters, "params"),
            ParamGroups = groups ? await GroupsAsync(call, parameters) : null,
        };
        var created = (await OptimizersApi.CreateOptimizer(request, call.Db, call.Project, call.Get<TimeProvider>(), call.Cancellation)).Value!;

        // The client keeps what it sent, with every group filled from the defaults.
        var clientGroups = groups
            ? parameters.Select(g => (JsonNode)Merge(defaults, (JsonObject)g!)).ToList()
            : [Merge(defaults, new JsonObject { ["params"] = parameters.DeepClone() })];
        return new JsonObject
        {
            ["optimizer_id"] = created.Id,
            ["defaults"] = defaults.DeepClone(),
            ["state"] = new JsonArray(),
            ["param_groups"] = new JsonArray([.. clientGroups]),
        };
    }

    public static async Task<JsonNode?> AddParamGroupAsync(SdkCall call)
    {
        var optimizer = SdkRefs.OptimizerId(call.Required("optimizer_id"), "optimizer_id");
        await call.EnsureOptimizerAsync(optimizer, "optimizer_id");
        var group = call.Required("param_group") as JsonObject
            ?? throw RpcException.InvalidParams("'param_group' must be an object with 'params' and the settings that differ.", "param_group", "invalid_type");
        var settings = await ReadSettingsAsync(call, group, "param_group", groupKeys: true);
        var id = PrefixedId.Format(PrefixedId.Optimizer, optimizer);
        await OptimizersApi.AddParamGroup(id, new ParamGroupRequest
        {
            ModelId = settings.ModelId,
            Messages = settings.Messages,
            Inputs = settings.Inputs,
            Constraints = settings.Constraints,
            Momentum = settings.Momentum,
            CompletionArgs = settings.CompletionArgs,
            Params = await ParamIdsAsync(call, group["params"] as JsonArray
                ?? throw RpcException.InvalidParams("'param_group.params' must be a list of parameters.", "param_group.params", "invalid_type"), "param_group.params"),
        }, call.Db, call.Project, call.Cancellation);

        // Settings the group leaves out are the optimizer's defaults; the client sent its defaults' messages along.
        var stored = (await OptimizersApi.GetOptimizer(id, call.Db, call.Project, call.Cancellation)).Value!.Defaults;
        var filled = await ClientSettingsAsync(call, stored, call.Optional("messages"));
        return new JsonObject { ["param_group"] = Merge(filled, group) };
    }

    public static async Task<JsonNode?> ClearGradAsync(SdkCall call)
    {
        var optimizer = SdkRefs.OptimizerId(call.Required("optimizer_id"), "optimizer_id");
        await call.EnsureOptimizerAsync(optimizer, "optimizer_id");
        var cleared = (await OptimizersApi.ClearGrad(PrefixedId.Format(PrefixedId.Optimizer, optimizer), call.Db, call.Project, call.Cancellation)).Value!;
        return new JsonObject { ["message"] = cleared.Message };
    }

    public static async Task<JsonNode?> RunStepAsync(SdkCall call)
    {
        var optimizer = SdkRefs.OptimizerId(call.Required("optimizer_id"), "optimizer_id");
        await call.EnsureOptimizerAsync(optimizer, "optimizer_id");
        var id = PrefixedId.Format(PrefixedId.Optimizer, optimizer);
        var state = await StepAsync(call, id, gradients: null);
        return new JsonObject
        {
            ["message"] = StepSucceeded,
            ["state"] = new JsonArray([.. state.Where(s => s.Buffer.Count > 0).Select(s => (JsonNode)new JsonObject
            {
                ["key"] = s.Parameter,
                ["value"] = new JsonObject { ["momentum_buffer"] = Buffer(s.Buffer) },
            })]),
        };
    }

    /// <summary>
    /// afnio's functional <c>tgd(params, grads, momentum_buffer_list, …)</c>: one step of a transient
    /// optimizer over the given parameters, gradients and momentum windows, run as the same durable job.
    /// </summary>
    public static async Task<JsonNode?> RunOptimizerTgdAsync(SdkCall call)
    {
        var parameters = call.Required("params") as JsonArray
            ?? throw RpcException.InvalidParams("'params' must be a list of parameters.", "params", "invalid_type");
        var paramIds = parameters.Select((p, i) => SdkRefs.Variable(p, $"params[{i}]")).ToList();
        var grads = call.Required("grads") as JsonArray
            ?? throw RpcException.InvalidParams("'grads' must be a list of gradient lists, one per parameter.", "grads", "invalid_type");
        var buffers = call.Optional("momentum_buffer_list") as JsonArray ?? [];
        if (grads.Count != paramIds.Count || (buffers.Count > 0 && buffers.Count != paramIds.Count))
        {
            throw RpcException.InvalidParams(
                $"'grads' and 'momentum_buffer_list' must have one entry per parameter ({paramIds.Count}).", "grads", "invalid_params");
        }

        var gradients = new Dictionary<Guid, IReadOnlyList<Guid>>();
        for (var i = 0; i < paramIds.Count; i++)
        {
            gradients[paramIds[i]] = grads[i] switch
            {
                JsonArray list => [.. list.Select((g, j) => SdkRefs.Variable(g, $"grads[{i}][{j}]"))],
                null => [],
                var single => [SdkRefs.Variable(single, $"grads[{i}]")],
            };
        }

        var settingsObject = new JsonObject();
        foreach (var key in SettingKeys.Where(call.Params.ContainsKey))
        {
            settingsObject[key] = call.Params[key]?.DeepClone();
        }

        var settings = await ReadSettingsAsync(call, settingsObject, "params", groupKeys: false);
        await call.EnsureVariablesAsync([.. paramIds, .. gradients.Values.SelectMany(g => g)], "grads");
        var created = (await OptimizersApi.CreateOptimizer(new CreateOptimizerRequest
        {
            Type = Optimizer.Tgd,
            ModelId = settings.ModelId,
            Messages = settings.Messages,
            Inputs = settings.Inputs,
            Constraints = settings.Constraints,
            Momentum = settings.Momentum,
            CompletionArgs = settings.CompletionArgs,
            Params = [.. paramIds.Select(VariableId)],
        }, call.Db, call.Project, call.Get<TimeProvider>(), call.Cancellation)).Value!;
        try
        {
            if (buffers.Any(b => b is JsonArray { Count: > 0 }))
            {
                await LoadBuffersAsync(call, created, settings, buffers);
            }

            var state = await StepAsync(call, created.Id, gradients);
            var byParameter = state.ToDictionary(s => s.ParameterId);
            return new JsonObject
            {
                ["message"] = FunctionalStepSucceeded,
                ["momentum_buffer_list"] = new JsonArray([.. paramIds.Select(p => (JsonNode)Buffer(byParameter.TryGetValue(p, out var s) ? s.Buffer : []))]),
            };
        }
        finally
        {
            // The transient optimizer goes; its parameters, snapshots and gradients are variables of the project and stay.
            await call.Db.Optimizers.Where(o => o.Id == SdkRefs.GuidOf(PrefixedId.Optimizer, created.Id)).ExecuteDeleteAsync(CancellationToken.None);
        }
    }

    private sealed record ParameterState(Guid ParameterId, JsonObject Parameter, IReadOnlyList<MomentumEntryResponse> Buffer);

    /// <summary>Runs one step job to its end and pushes what it changed; answers every parameter's state.</summary>
    private static async Task<List<ParameterState>> StepAsync(SdkCall call, string optimizerId, IReadOnlyDictionary<Guid, IReadOnlyList<Guid>>? gradients)
    {
        var started = (await OptimizersApi.StartStepAsync(optimizerId, gradients, call.Db, call.Project,
            call.Get<TimeProvider>(), call.Cancellation)).Value!;
        var job = await SdkJobs.WaitAsync(call, started.Id);
        var jobId = SdkRefs.GuidOf(PrefixedId.Job, job.Id);

        // What was committed, by this delivery or an earlier one of the same job.
        var outcomes = (await call.Db.JobSteps.AsNoTracking().Where(s => s.JobId == jobId).Select(s => s.Result).ToListAsync(call.Cancellation))
            .Select(r => JsonSerializer.Deserialize<StepOutcome>(r, Data.Jobs.JobEventLog.Json)!).ToList();
        var optimizer = (await OptimizersApi.GetOptimizer(optimizerId, call.Db, call.Project, call.Cancellation)).Value!;

        var snapshots = outcomes.Select(o => o.SnapshotId).OfType<string>().Select(s => SdkRefs.GuidOf(PrefixedId.Variable, s)).ToList();
        await SdkPushes.EnsureClientHasAsync(call, snapshots);
        foreach (var model in optimizer.ParamGroups.Select(g => g.ModelId).Distinct())
        {
            await ModelMethods.PushUsageAsync(call, SdkRefs.GuidOf(PrefixedId.Model, model));
        }

        var updated = outcomes.Where(o => o.Status == "updated").Select(o => SdkRefs.GuidOf(PrefixedId.Variable, o.ParameterId))
            .Where(call.Session.KnownVariables.Contains).ToList();
        var values = await call.Db.Variables.AsNoTracking().Where(v => v.ProjectId == call.Project.ProjectId && updated.Contains(v.Id))
            .ToDictionaryAsync(v => v.Id, call.Cancellation);
        foreach (var parameter in updated.Where(values.ContainsKey))
        {
            await call.PushAsync("update_variable", new JsonObject
            {
                ["variable_id"] = VariableId(parameter),
                ["field"] = "data",
                ["value"] = JsonNode.Parse(values[parameter].Data),
            });
        }

        var all = optimizer.ParamGroups.SelectMany(g => g.Params).Select(p => SdkRefs.GuidOf(PrefixedId.Variable, p)).ToList();
        await call.PushAsync("clear_step", new JsonObject
        {
            ["variable_ids"] = new JsonArray([.. all.Where(call.Session.KnownVariables.Contains).Select(p => (JsonNode)VariableId(p))]),
        });
        SdkJobs.EnsureSucceeded(job);

        var referenced = optimizer.State.SelectMany(s => s.MomentumBuffer.SelectMany(e => e.GradientIds.Prepend(e.SnapshotId)))
            .Select(v => SdkRefs.GuidOf(PrefixedId.Variable, v)).ToList();
        await SdkPushes.EnsureClientHasAsync(call, referenced);
        var kinds = await SdkPushes.ParameterFlagsAsync(call, [.. all, .. referenced]);
        var buffers = optimizer.State.ToDictionary(s => SdkRefs.GuidOf(PrefixedId.Variable, s.ParamId), s => s.MomentumBuffer);
        return [.. all.Select(p => new ParameterState(p, SdkRefs.VariableRef(p, kinds.GetValueOrDefault(p)),
            buffers.TryGetValue(p, out var buffer) ? buffer : []))];
    }

    // A momentum window as afnio holds it: [snapshot, [gradients]] pairs; snapshots are Parameters, gradients are not.
    private static JsonArray Buffer(IReadOnlyList<MomentumEntryResponse> entries) =>
        new([.. entries.Select(e => (JsonNode)new JsonArray(
            SdkRefs.VariableRef(SdkRefs.GuidOf(PrefixedId.Variable, e.SnapshotId), true),
            new JsonArray([.. e.GradientIds.Select(g => (JsonNode)SdkRefs.VariableRef(SdkRefs.GuidOf(PrefixedId.Variable, g), false))])))]);

    private sealed record StepOutcome(string ParameterId, string Status, string? SnapshotId);

    private sealed record Settings(
        string? ModelId, IReadOnlyList<OptimizerMessage>? Messages, JsonElement Inputs, IReadOnlyList<string>? Constraints, int? Momentum,
        JsonElement CompletionArgs);

    /// <summary>afnio's TGD settings in the REST form: references become ids; afnio's placeholder prompts mean the built-in ones.</summary>
    private static async Task<Settings> ReadSettingsAsync(SdkCall call, JsonObject settings, string param, bool groupKeys)
    {
        if (settings.Select(kv => kv.Key).FirstOrDefault(k => !SettingKeys.Contains(k) && !(groupKeys && k == "params")) is { } unknown)
        {
            throw RpcException.InvalidParams($"TGD does not take the setting '{unknown}'. It takes: {string.Join(", ", SettingKeys)}.", $"{param}.{unknown}", "unknown_field");
        }

        string? model = null;
        if (settings["model_client"] is { } modelRef)
        {
            var id = SdkRefs.Model(modelRef, $"{param}.model_client");
            await call.EnsureModelAsync(id, $"{param}.model_client");
            model = PrefixedId.Format(PrefixedId.Model, id);
        }

        var variables = new List<Guid>();
        IReadOnlyList<OptimizerMessage>? messages = null;
        if (settings["messages"] is JsonArray list && !await IsPlaceholderAsync(call, list, $"{param}.messages"))
        {
            messages = [.. list.Select((m, i) => m is JsonObject message
                ? new OptimizerMessage
                {
                    Role = (message["role"] as JsonValue)?.ToString(),
                    Content = message["content"] is JsonArray content
                        ? [.. content.Select((c, j) => Track(SdkRefs.Variable(c, $"{param}.messages[{i}].content[{j}]"), variables))]
                        : throw RpcException.InvalidParams($"'{param}.messages[{i}].content' must be a list of variables.", $"{param}.messages[{i}].content", "invalid_type"),
                }
                : throw RpcException.InvalidParams($"'{param}.messages[{i}]' must be an object with 'role' and 'content'.", $"{param}.messages[{i}]", "invalid_type"))];
        }

        JsonElement inputs = default;
        if (settings["inputs"] is JsonObject given)
        {
            inputs = JsonSerializer.SerializeToElement(SdkRefs.ToRest(given, $"{param}.inputs", variables));
        }

        IReadOnlyList<string>? constraints = null;
        if (settings["constraints"] is JsonArray rules)
        {
            constraints = [.. rules.Select((c, i) => SdkRefs.IsVariableRef(c)
                ? Track(SdkRefs.Variable(c, $"{param}.constraints[{i}]"), variables)
                : c is JsonValue text && text.GetValueKind() == JsonValueKind.String
                    ? text.GetValue<string>()
                    : throw RpcException.InvalidParams($"'{param}.constraints[{i}]' must be a string or a variable.", $"{param}.constraints[{i}]", "invalid_type"))];
        }

        int? momentum = settings["momentum"] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var k) => k,
            _ => throw RpcException.InvalidParams($"'{param}.momentum' must be an integer.", $"{param}.momentum", "invalid_type"),
        };
        JsonElement completionArgs = settings["completion_args"] is JsonObject args ? JsonSerializer.SerializeToElement(args) : default;
        await call.EnsureVariablesAsync(variables, param);
        return new Settings(model, messages, inputs, constraints, momentum, completionArgs);
    }

    private static string Track(Guid id, List<Guid> variables)
    {
        variables.Add(id);
        return VariableId(id);
    }

    /// <summary>True when the messages are afnio's two TGD placeholders, which stand for the server's own prompts.</summary>
    private static async Task<bool> IsPlaceholderAsync(SdkCall call, JsonArray messages, string param)
    {
        if (messages.Count != 2 || messages.Any(m => m is not JsonObject { } o || o["content"] is not JsonArray { Count: 1 }))
        {
            return false;
        }

        var ids = messages.Select((m, i) => SdkRefs.Variable(m!["content"]![0], $"{param}[{i}].content[0]")).ToList();
        var texts = await call.Db.Variables.AsNoTracking().Where(v => v.ProjectId == call.Project.ProjectId && ids.Contains(v.Id))
            .ToDictionaryAsync(v => v.Id, v => v.GetData(), call.Cancellation);
        return (messages[0]!["role"] as JsonValue)?.ToString() == "system" && (messages[1]!["role"] as JsonValue)?.ToString() == "user"
            && texts.TryGetValue(ids[0], out var system) && system.ToString() == SystemPlaceholder
            && texts.TryGetValue(ids[1], out var user) && user.ToString() == UserPlaceholder;
    }

    private static async Task<List<string>> ParamIdsAsync(SdkCall call, JsonArray parameters, string param)
    {
        var ids = parameters.Select((p, i) => SdkRefs.Variable(p, $"{param}[{i}]")).ToList();
        await call.EnsureVariablesAsync(ids, param);
        return [.. ids.Select(VariableId)];
    }

    private static async Task<List<ParamGroupRequest>> GroupsAsync(SdkCall call, JsonArray groups)
    {
        var result = new List<ParamGroupRequest>();
        for (var i = 0; i < groups.Count; i++)
        {
            var group = (JsonObject)groups[i]!;
            var settings = await ReadSettingsAsync(call, group, $"params[{i}]", groupKeys: true);
            result.Add(new ParamGroupRequest
            {
                ModelId = settings.ModelId,
                Messages = settings.Messages,
                Inputs = settings.Inputs,
                Constraints = settings.Constraints,
                Momentum = settings.Momentum,
                CompletionArgs = settings.CompletionArgs,
                Params = await ParamIdsAsync(call, group["params"] as JsonArray
                    ?? throw RpcException.InvalidParams($"'params[{i}].params' must be a list of parameters.", $"params[{i}].params", "invalid_type"), $"params[{i}].params"),
            });
        }

        return result;
    }

    /// <summary>Loads the momentum windows the functional call brought into the transient optimizer.</summary>
    private static async Task LoadBuffersAsync(SdkCall call, OptimizerResponse optimizer, Settings settings, JsonArray buffers)
    {
        var state = new Dictionary<string, StateDictParamState>();
        for (var i = 0; i < buffers.Count; i++)
        {
            if (buffers[i] is not JsonArray { Count: > 0 } entries)
            {
                continue;
            }

            state[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new StateDictParamState
            {
                MomentumBuffer = [.. entries.Select((e, j) => e is JsonArray { Count: 2 } pair
                    ? new StateDictMomentumEntry
                    {
                        SnapshotId = VariableId(SdkRefs.Variable(pair[0], $"momentum_buffer_list[{i}][{j}][0]")),
                        GradientIds = pair[1] is JsonArray g
                            ? [.. g.Select((x, k) => VariableId(SdkRefs.Variable(x, $"momentum_buffer_list[{i}][{j}][1][{k}]")))]
                            : throw RpcException.InvalidParams($"'momentum_buffer_list[{i}][{j}][1]' must be a list of gradients.", "momentum_buffer_list", "invalid_type"),
                    }
                    : throw RpcException.InvalidParams($"'momentum_buffer_list[{i}][{j}]' must be a [parameter, gradients] pair.", "momentum_buffer_list", "invalid_type"))],
            };
        }

        var group = optimizer.ParamGroups[0];
        await OptimizersApi.LoadStateDict(optimizer.Id, new StateDictRequest
        {
            State = state,
            ParamGroups =
            [
                new StateDictGroup
                {
                    Params = [.. Enumerable.Range(0, group.Params.Count)],
                    ModelId = settings.ModelId,
                    Messages = settings.Messages,
                    Inputs = settings.Inputs,
                    Constraints = settings.Constraints,
                    Momentum = settings.Momentum,
                    CompletionArgs = settings.CompletionArgs,
                },
            ],
        }, call.Db, call.Project, call.Cancellation);
    }

    /// <summary>Stored settings in the client's form: ids become references the client holds.</summary>
    private static async Task<JsonObject> ClientSettingsAsync(SdkCall call, OptimizerSettings settings, JsonNode? messages)
    {
        var referenced = settings.Inputs.Select(kv => kv.Value?.ToString()).Concat(settings.Constraints)
            .Where(v => v is not null && PrefixedId.TryParse(PrefixedId.Variable, v, out _)).Select(v => SdkRefs.GuidOf(PrefixedId.Variable, v!)).ToList();
        var kinds = await SdkPushes.ParameterFlagsAsync(call, referenced);
        JsonNode? Ref(string? text) => text is not null && PrefixedId.TryParse(PrefixedId.Variable, text, out var id)
            ? SdkRefs.VariableRef(id, kinds.GetValueOrDefault(id))
            : text;
        return new JsonObject
        {
            ["model_client"] = SdkRefs.ModelRef(SdkRefs.GuidOf(PrefixedId.Model, settings.ModelId)),
            ["messages"] = settings.Messages is null
                ? messages?.DeepClone()
                : new JsonArray([.. settings.Messages.Select(m => (JsonNode)new JsonObject
                {
                    ["role"] = m.Role,
                    ["content"] = new JsonArray([.. m.Content.Select(c => Ref(c))]),
                })]),
            ["inputs"] = new JsonObject(settings.Inputs.Select(kv => KeyValuePair.Create(kv.Key, Ref(kv.Value?.ToString())))),
            ["constraints"] = new JsonArray([.. settings.Constraints.Select(Ref)]),
            ["momentum"] = settings.Momentum,
            ["completion_args"] = settings.CompletionArgs.DeepClone(),
        };
    }

    private static JsonObject Merge(JsonObject defaults, JsonObject group)
    {
        var merged = (JsonObject)defaults.DeepClone();
        foreach (var (key, value) in group)
        {
            merged[key] = value?.DeepClone();
        }

        return merged;
    }

    private static string VariableId(Guid id) => PrefixedId.Format(PrefixedId.Variable, id);
}

/// <summary>Pushes that make sure the client holds every variable a reply names.</summary>
public static class SdkPushes
{
    /// <summary>Pushes <c>create_variable</c> for each variable the client does not hold yet (momentum snapshots, …).</summary>
    public static async Task EnsureClientHasAsync(SdkCall call, IReadOnlyCollection<Guid> ids)
    {
        var missing = ids.Distinct().Where(id => !call.Session.KnownVariables.Contains(id)).ToList();
        if (missing.Count == 0)
        {
            return;
        }

        var rows = await call.Db.Variables.AsNoTracking().Where(v => v.ProjectId == call.Project.ProjectId && missing.Contains(v.Id))
            .ToDictionaryAsync(v => v.Id, call.Cancellation);
        foreach (var id in missing.Where(rows.ContainsKey))
        {
            var record = SdkRefs.Record(VariablesApi.ToResponse(rows[id], []));
            record["obj_type"] = rows[id].IsParameter ? SdkRefs.ParameterTag : SdkRefs.VariableTag;
            call.Session.KnownVariables.Add(id);
            await call.PushAsync("create_variable", record);
        }
    }

    /// <summary>Whether each variable is a Parameter, which decides the tag of its reference.</summary>
    public static async Task<Dictionary<Guid, bool>> ParameterFlagsAsync(SdkCall call, IReadOnlyCollection<Guid> ids) =>
        ids.Count == 0
            ? []
            : await call.Db.Variables.AsNoTracking().Where(v => v.ProjectId == call.Project.ProjectId && ids.Contains(v.Id))
                .ToDictionaryAsync(v => v.Id, v => v.IsParameter, call.Cancellation);
}
