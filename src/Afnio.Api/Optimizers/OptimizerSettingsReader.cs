using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Models;
using Afnio.Data;
using Afnio.Data.Optimizers;
using Afnio.Data.Variables;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Optimizers;
using Afnio.Domain.Variables;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Optimizers;

/// <summary>
/// Reads TGD settings and parameter lists from requests, filling what a group leaves out from the
/// defaults, and checks every reference against the caller's project: the model client, the
/// variables of messages, inputs and constraints, and the parameters themselves.
/// </summary>
internal sealed class OptimizerSettingsReader(AfnioDbContext db, ProjectContext project)
{
    private const int MaxMomentum = 100;
    private const int MaxConstraints = 100;
    private const int MaxMessages = 100;
    private const int MaxInputs = 100;

    /// <summary>
    /// The settings of <paramref name="request"/>, with <paramref name="defaults"/> under them (none for
    /// the defaults themselves). <paramref name="prefix"/> says where the settings are in the body
    /// (e.g. <c>param_groups[1].</c>), for error params.
    /// </summary>
    public async Task<TgdGroupSettings> ReadAsync(
        OptimizerSettingsRequest request, TgdGroupSettings? defaults, string prefix, CancellationToken ct)
    {
        var modelId = await ModelIdAsync(request.ModelId, defaults, prefix, ct);
        var messages = request.Messages is { } custom ? Messages(custom, prefix) : defaults?.Messages;
        var inputs = request.Inputs.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null
            ? defaults?.Inputs ?? new Dictionary<string, string>()
            : Inputs(request.Inputs, prefix);
        var constraints = request.Constraints is { } given ? Constraints(given, prefix) : defaults?.Constraints ?? [];
        var momentum = request.Momentum switch
        {
            null => defaults?.Momentum ?? 0,
            < 0 or > MaxMomentum => throw ApiException.BadRequest("invalid_momentum",
                $"momentum must be between 0 and {MaxMomentum} (the number of past iterations each parameter keeps).", prefix + "momentum"),
            { } k => k,
        };
        var args = request.CompletionArgs.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null
            ? defaults?.CompletionArgs.DeepClone().AsObject() ?? []
            : ModelsApi.ReadArgs(request.CompletionArgs, prefix + "completion_args");

        var settings = new TgdGroupSettings(PrefixedId.Format(PrefixedId.Model, modelId), messages, inputs, constraints, momentum, args);
        await CheckVariablesAsync(settings, prefix, ct);
        return settings;
    }

    /// <summary>
    /// Checks a group's parameters: a non-empty list of this project's leaf Parameters holding text,
    /// none repeated and none already in <paramref name="taken"/> (which gains them).
    /// </summary>
    public async Task<IReadOnlyList<Guid>> ParamsAsync(IReadOnlyList<string>? ids, string param, HashSet<Guid> taken, CancellationToken ct)
    {
        if (ids is null || ids.Count == 0)
        {
            throw ApiException.BadRequest("empty_parameter_list", "optimizer got an empty parameter list", param);
        }

        var guids = ids.Select((id, i) => VariableId(id, $"{param}[{i}]")).ToList();
        var found = await db.Variables.AsNoTracking()
            .Where(v => v.ProjectId == project.ProjectId && guids.Contains(v.Id))
            .ToDictionaryAsync(v => v.Id, ct);
        for (var i = 0; i < guids.Count; i++)
        {
            var at = $"{param}[{i}]";
            var variable = found.GetValueOrDefault(guids[i]) ?? throw ApiException.NotFound("variable", at);
            // An operation's output is never a Parameter: name what it really is, a non-leaf.
            if (!variable.IsLeaf)
            {
                throw ApiException.BadRequest("non_leaf_parameter", "can't optimize a non-leaf Variable", at);
            }

            if (!variable.IsParameter)
            {
                throw ApiException.BadRequest("not_a_parameter",
                    $"{at} ({ids[i]}) is not a Parameter; optimizers update Parameters only (create it with is_parameter: true).", at);
            }

            if (variable.DataKind != "str")
            {
                throw ApiException.BadRequest("unsupported_parameter_type",
                    $"{at} ({ids[i]}) holds {variable.DataKind} data; TGD rewrites text, so a parameter must hold a string.", at);
            }

            if (!taken.Add(guids[i]))
            {
                throw ApiException.BadRequest("duplicate_parameter", "some parameters appear in more than one parameter group", at);
            }
        }

        return guids;
    }

    public static Guid VariableId(string? id, string param) =>
        PrefixedId.TryParse(PrefixedId.Variable, id, out var guid)
            ? guid
            : throw ApiException.BadRequest("invalid_id", $"{param} must be a variable id (var_…); got '{id}'.", param);

    private async Task<Guid> ModelIdAsync(string? given, TgdGroupSettings? defaults, string prefix, CancellationToken ct)
    {
        var param = prefix + "model_id";
        var id = given ?? defaults?.ModelId
            ?? throw ApiException.BadRequest("missing_field", "'model_id' is required: the optimizer's model client (mdl_…).", param);
        if (!PrefixedId.TryParse(PrefixedId.Model, id, out var guid))
        {
            throw ApiException.BadRequest("invalid_id", $"{param} must be a model id (mdl_…); got '{id}'.", param);
        }

        return given is null || await db.Models.AnyAsync(m => m.Id == guid && m.ProjectId == project.ProjectId, ct)
            ? guid
            : throw ApiException.NotFound("model", param);
    }

    private static List<TgdMessageSpec> Messages(IReadOnlyList<OptimizerMessage> messages, string prefix)
    {
        if (messages.Count is 0 or > MaxMessages)
        {
            throw ApiException.BadRequest("invalid_messages",
                $"messages must hold 1 to {MaxMessages} messages; leave it out for the built-in TGD prompts.", prefix + "messages");
        }

        return [.. messages.Select((m, i) =>
        {
            var at = $"{prefix}messages[{i}]";
            if (m is null)
            {
                throw ApiException.BadRequest("invalid_type", $"{at} must be an object with 'role' and 'content'.", at);
            }

            var role = string.IsNullOrEmpty(m.Role)
                ? throw ApiException.BadRequest("missing_field", $"{at}.role must be a non-empty string, e.g. \"system\" or \"user\".", at + ".role")
                : StorableText.Check(m.Role, "invalid_role", at + ".role");
            if (m.Content is not { Count: > 0 } content)
            {
                throw ApiException.BadRequest("missing_field", $"{at}.content must be a non-empty list of variable ids (var_…).", at + ".content");
            }

            foreach (var (id, j) in content.Select((id, j) => (id, j)))
            {
                VariableId(id, $"{at}.content[{j}]");
            }

            return new TgdMessageSpec(role, content);
        })];
    }

    private static Dictionary<string, string> Inputs(JsonElement inputs, string prefix)
    {
        var param = prefix + "inputs";
        if (inputs.ValueKind != JsonValueKind.Object)
        {
            throw ApiException.BadRequest("invalid_type", $"{param} must be an object mapping placeholder names to text or variable ids.", param);
        }

        // Names and values are read as .NET strings: no NUL and no lone surrogate anywhere first.
        StorableJson.Check(inputs, "invalid_input", param);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in inputs.EnumerateObject())
        {
            var at = $"{param}.{property.Name}";
            if (TgdConversation.ReservedNames.Contains(property.Name, StringComparer.Ordinal))
            {
                throw ApiException.BadRequest("reserved_input",
                    $"The input name '{property.Name}' is reserved: the optimizer fills '{{{property.Name}}}' itself. Rename the input.", at);
            }

            if (PromptTemplate.Placeholders("{" + property.Name + "}").Count != 1)
            {
                throw ApiException.BadRequest("invalid_input_name", $"'{property.Name}' is not a placeholder name: use letters, digits and _ only.", at);
            }

            if (property.Value.ValueKind != JsonValueKind.String)
            {
                throw ApiException.BadRequest("invalid_type", $"{at} must be text or a variable id (var_…).", at);
            }

            if (!result.TryAdd(property.Name, StorableText.Check(property.Value.GetString()!, "invalid_input", at)))
            {
                throw ApiException.BadRequest("duplicate_input", $"The input '{property.Name}' is given twice.", at);
            }
        }

        return result.Count <= MaxInputs
            ? result
            : throw ApiException.BadRequest("invalid_inputs", $"{param} holds at most {MaxInputs} inputs.", param);
    }

    private static List<string> Constraints(IReadOnlyList<string> constraints, string prefix)
    {
        if (constraints.Count > MaxConstraints)
        {
            throw ApiException.BadRequest("invalid_constraints", $"constraints holds at most {MaxConstraints} rules.", prefix + "constraints");
        }

        return [.. constraints.Select((c, i) => c is null || c.Length == 0
            ? throw ApiException.BadRequest("invalid_constraint", $"{prefix}constraints[{i}] must be non-empty text or a variable id.", $"{prefix}constraints[{i}]")
            : StorableText.Check(c, "invalid_constraint", $"{prefix}constraints[{i}]"))];
    }

    /// <summary>
    /// Every variable the settings name exists in this project, and every placeholder of custom
    /// messages is an input or a reserved name.
    /// </summary>
    private async Task CheckVariablesAsync(TgdGroupSettings settings, string prefix, CancellationToken ct)
    {
        var references = new List<(Guid Id, string Param)>();
        foreach (var (message, i) in (settings.Messages ?? []).Select((m, i) => (m, i)))
        {
            references.AddRange(message.Content.Select((id, j) => (VariableId(id, ""), $"{prefix}messages[{i}].content[{j}]")));
        }

        references.AddRange(settings.Inputs.Where(kv => IsVariableId(kv.Value))
            .Select(kv => (VariableId(kv.Value, ""), $"{prefix}inputs.{kv.Key}")));
        references.AddRange(settings.Constraints.Select((c, i) => (c, i)).Where(x => IsVariableId(x.c))
            .Select(x => (VariableId(x.c, ""), $"{prefix}constraints[{x.i}]")));
        if (references.Count == 0)
        {
            return;
        }

        var ids = references.Select(r => r.Id).Distinct().ToList();
        var found = await db.Variables.AsNoTracking()
            .Where(v => v.ProjectId == project.ProjectId && ids.Contains(v.Id))
            .ToDictionaryAsync(v => v.Id, ct);
        if (references.FirstOrDefault(r => !found.ContainsKey(r.Id)) is { Param: not null } missing)
        {
            throw ApiException.NotFound("variable", missing.Param);
        }

        if (settings.Messages is null)
        {
            return;
        }

        foreach (var (message, i) in settings.Messages.Select((m, i) => (m, i)))
        {
            var text = string.Join("\n", message.Content.Select(id => Text(found[VariableId(id, "")].GetData())));
            var unknown = PromptTemplate.Placeholders(text).FirstOrDefault(name =>
                !settings.Inputs.ContainsKey(name) && !TgdConversation.ReservedNames.Contains(name, StringComparer.Ordinal));
            if (unknown is not null)
            {
                throw ApiException.BadRequest("missing_input",
                    $"{prefix}messages[{i}] has a placeholder '{{{unknown}}}' that is neither an input nor one of the reserved names " +
                    $"({string.Join(", ", TgdConversation.ReservedNames)}). Pass it in 'inputs', or write '{{{{{unknown}}}}}' for literal braces.",
                    $"{prefix}messages[{i}]");
            }
        }
    }

    public static bool IsVariableId(string text) => PrefixedId.TryParse(PrefixedId.Variable, text, out _);

    /// <summary>A variable's text as a prompt shows it: a string as it is, anything else as Python prints it.</summary>
    public static string Text(VariableData data) => data.ToString();
}
