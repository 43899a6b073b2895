using System.Text.Json;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Optimizers;
using Afnio.Data.Variables;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Archives;

/// <summary>A variable as an optimizer archive carries it, under its old id; <see cref="Grad"/> lists its gradients' old ids.</summary>
public sealed record ArchivedVariable(string Ref, JsonElement Data, string DataKind, string Role, bool RequiresGrad, bool IsParameter, IReadOnlyList<string> Grad);

/// <summary>A parameter of an archived optimizer: its group, place and momentum window (old ids).</summary>
public sealed record ArchivedOptimizerParam(string Variable, int Group, int Position, IReadOnlyList<MomentumEntry>? MomentumBuffer);

/// <summary>
/// An optimizer with everything its state names: parameters with their gradient lists, momentum
/// snapshots and their gradients, and the variables its custom messages, inputs and constraints use.
/// </summary>
public sealed record ArchivedOptimizer(
    string Type, TgdGroupSettings Defaults, IReadOnlyList<TgdGroupSettings> ParamGroups, IReadOnlyList<ArchivedOptimizerParam> Params,
    IReadOnlyList<ArchivedVariable> Variables);

/// <summary>Export and import of optimizers: the variables they name get new ids on import, and the groups a model of the target project.</summary>
public static class OptimizerArchives
{
    /// <summary>Reads an optimizer of the caller's project with every variable its settings and state name.</summary>
    public static async Task<ArchivedOptimizer> ExportAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct)
    {
        var optimizer = PrefixedId.TryParse(PrefixedId.Optimizer, id, out var guid)
            ? await db.Optimizers.AsNoTracking().SingleOrDefaultAsync(o => o.Id == guid && o.ProjectId == project.ProjectId, ct) ?? throw ApiException.NotFound("optimizer", "id")
            : throw ApiException.NotFound("optimizer", "id");
        var defaults = TgdGroupSettings.FromJson(optimizer.Defaults);
        var groups = TgdGroupSettings.ListFromJson(optimizer.ParamGroups);
        var parameters = await db.OptimizerParams.AsNoTracking().Where(p => p.OptimizerId == optimizer.Id)
            .OrderBy(p => p.GroupIndex).ThenBy(p => p.Position).ToListAsync(ct);
        var paramIds = parameters.Select(p => p.VariableId).ToList();
        var grads = (await db.VariableGradients.AsNoTracking().Where(g => paramIds.Contains(g.VariableId)).OrderBy(g => g.Seq).ToListAsync(ct))
            .ToLookup(g => g.VariableId, g => g.GradientId);
        var named = new HashSet<Guid>(paramIds.Concat(grads.SelectMany(g => g)));
        foreach (var reference in parameters.SelectMany(p => MomentumEntry.ListFromJson(p.MomentumBuffer)).SelectMany(e => e.GradientIds.Append(e.SnapshotId))
            .Concat(groups.Append(defaults).SelectMany(SettingsVariables)))
        {
            if (PrefixedId.TryParse(PrefixedId.Variable, reference, out var variable))
            {
                named.Add(variable);
            }
        }

        var rows = await db.Variables.AsNoTracking().Where(v => v.ProjectId == project.ProjectId && named.Contains(v.Id)).OrderBy(v => v.Id).ToListAsync(ct);
        return new ArchivedOptimizer(optimizer.Type, defaults, groups,
            [.. parameters.Select(p => new ArchivedOptimizerParam(Ref(p.VariableId), p.GroupIndex, p.Position,
                p.MomentumBuffer is null ? null : MomentumEntry.ListFromJson(p.MomentumBuffer)))],
            [.. rows.Select(v => new ArchivedVariable(Ref(v.Id), JsonDocument.Parse(v.Data).RootElement.Clone(), v.DataKind, v.Role, v.RequiresGrad, v.IsParameter,
                [.. grads[v.Id].Select(Ref)]))]);
    }

    /// <summary>
    /// Restores an archived optimizer in the caller's transaction: new ids for every variable, the
    /// gradient lists and momentum windows remapped, and every group's model set to <paramref name="modelId"/>.
    /// </summary>
    public static async Task<Guid> ImportAsync(
        AfnioDbContext db, ProjectContext project, ArchivedOptimizer archived, string? modelId, DateTimeOffset now, CancellationToken ct)
    {
        if (modelId is null)
        {
            throw ApiException.BadRequest("missing_field",
                "An optimizer archive needs ?model_id=: the model client (mdl_…) of this project its groups will call.", "model_id");
        }

        if (!PrefixedId.TryParse(PrefixedId.Model, modelId, out var model) || !await db.Models.AnyAsync(m => m.Id == model && m.ProjectId == project.ProjectId, ct))
        {
            throw ApiException.NotFound("model", "model_id");
        }

        if (archived.Type != Optimizer.Tgd || archived.Variables.Count > 100_000 || archived.ParamGroups.Count is 0 or > 100
            || archived.Params.Count == 0 || archived.Params.Any(p => p.Group < 0 || p.Group >= archived.ParamGroups.Count)
            || archived.Params.Select(p => (p.Group, p.Position)).Distinct().Count() != archived.Params.Count)
        {
            throw Invalid("The archived optimizer's type, groups or parameters are not consistent.");
        }

        var map = new Dictionary<string, Guid>(StringComparer.Ordinal);
        var rows = new List<Variable>();
        foreach (var v in archived.Variables)
        {
            VariableData data;
            try
            {
                StorableJson.Check(v.Data, "invalid_archive", "data");
                data = VariableData.FromStored(v.DataKind, v.Data.GetRawText());
            }
            catch (Exception e) when (e is AfnioException or JsonException or InvalidOperationException or ArgumentException or FormatException)
            {
                throw Invalid($"The archived variable {v.Ref} holds data that cannot be restored: {e.Message}");
            }

            if (v.Role.Length > 10_000 || v.Role.Contains('\0', StringComparison.Ordinal) || !map.TryAdd(v.Ref, PrefixedId.NewGuid()))
            {
                throw Invalid($"The archived variable {v.Ref} has an unstorable role or appears twice.");
            }

            var row = Variable.Create(project.ProjectId, data, v.Role, v.RequiresGrad, v.IsParameter, now);
            rows.Add(new Variable
            {
                Id = map[v.Ref],
                ProjectId = row.ProjectId,
                Data = row.Data,
                DataKind = row.DataKind,
                Role = row.Role,
                RequiresGrad = row.RequiresGrad,
                IsParameter = row.IsParameter,
                CreatedAt = now,
            });
        }

        Guid RemapId(string reference) => map.TryGetValue(reference, out var id) ? id
            : throw Invalid($"The archive names the variable {reference} but does not hold it.");
        string Remap(string reference) => PrefixedId.Format(PrefixedId.Variable, RemapId(reference));
        string RemapSetting(string value) => PrefixedId.TryParse(PrefixedId.Variable, value, out _) ? Remap(value) : value;
        TgdGroupSettings Settings(TgdGroupSettings g) => g with
        {
            ModelId = modelId,
            Messages = g.Messages?.Select(m => m with { Content = [.. m.Content.Select(Remap)] }).ToList(),
            Inputs = g.Inputs.ToDictionary(i => i.Key, i => RemapSetting(i.Value)),
            Constraints = [.. g.Constraints.Select(RemapSetting)],
        };

        var optimizer = new Optimizer
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = project.ProjectId,
            Type = Optimizer.Tgd,
            Defaults = Settings(archived.Defaults).ToJson(),
            ParamGroups = TgdGroupSettings.ListToJson(archived.ParamGroups.Select(Settings)),
            CreatedAt = now,
        };
        var parameters = archived.Params.Select(p => new OptimizerParam
        {
            OptimizerId = optimizer.Id,
            VariableId = RemapId(p.Variable),
            GroupIndex = p.Group,
            Position = p.Position,
            MomentumBuffer = p.MomentumBuffer is null ? null
                : MomentumEntry.ListToJson(p.MomentumBuffer.Select(e => new MomentumEntry(Remap(e.SnapshotId), [.. e.GradientIds.Select(Remap)]))),
        }).ToList();
        if (parameters.Select(p => p.VariableId).Distinct().Count() != parameters.Count
            || parameters.Any(p => rows.Single(r => r.Id == p.VariableId) is not { IsParameter: true, RequiresGrad: true }))
        {
            throw Invalid("Every archived optimizer parameter must be a distinct parameter that requires grad.");
        }

        var gradients = archived.Variables.SelectMany(v => v.Grad.Select(g => new VariableGradient { VariableId = map[v.Ref], GradientId = RemapId(g) })).ToList();
        await db.InsertAsync(rows);
        db.VariableGradients.AddRange(gradients);
        db.Optimizers.Add(optimizer);
        db.OptimizerParams.AddRange(parameters);
        await db.SaveChangesAsync(ct);
        return optimizer.Id;
    }

    private static IEnumerable<string> SettingsVariables(TgdGroupSettings g) =>
        (g.Messages?.SelectMany(m => m.Content) ?? []).Concat(g.Inputs.Values).Concat(g.Constraints);

    private static string Ref(Guid id) => PrefixedId.Format(PrefixedId.Variable, id);

    private static ApiException Invalid(string message) => ApiException.BadRequest("invalid_archive", message);
}
