using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Data.Jobs;
using Afnio.Data.Projects;
using Afnio.Data.Variables;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Optimizers;

/// <summary>A custom optimizer message: a chat role and the variables whose texts make its content.</summary>
public sealed record TgdMessageSpec(string Role, IReadOnlyList<string> Content);

/// <summary>
/// The settings of a TGD parameter group (and an optimizer's defaults), stored as the API shows them:
/// ids in their public form. <see cref="Messages"/> null means the built-in prompts.
/// </summary>
/// <param name="ModelId">The optimizer model client (<c>mdl_…</c>).</param>
/// <param name="Messages">Custom messages, or null for the built-in TGD prompts.</param>
/// <param name="Inputs">Values of the custom messages' placeholders: text, or a variable id (<c>var_…</c>) read at each step.</param>
/// <param name="Constraints">Rules the new value must respect: text, or variable ids read at each step.</param>
/// <param name="Momentum">How many past iterations each parameter keeps (the window <c>k</c>).</param>
/// <param name="CompletionArgs">Provider arguments of every optimizer call.</param>
public sealed record TgdGroupSettings(
    string ModelId,
    IReadOnlyList<TgdMessageSpec>? Messages,
    IReadOnlyDictionary<string, string> Inputs,
    IReadOnlyList<string> Constraints,
    int Momentum,
    JsonObject CompletionArgs)
{
    public string ToJson() => JsonSerializer.Serialize(this, JobEventLog.Json);

    public static TgdGroupSettings FromJson(string json) =>
        JsonSerializer.Deserialize<TgdGroupSettings>(json, JobEventLog.Json) ?? throw new InvalidOperationException("Empty optimizer settings.");

    public static IReadOnlyList<TgdGroupSettings> ListFromJson(string json) =>
        JsonSerializer.Deserialize<List<TgdGroupSettings>>(json, JobEventLog.Json) ?? throw new InvalidOperationException("Empty optimizer groups.");

    public static string ListToJson(IEnumerable<TgdGroupSettings> groups) => JsonSerializer.Serialize(groups.ToList(), JobEventLog.Json);
}

/// <summary>One past iteration kept by TGD momentum: a snapshot of the parameter before a step, and its gradients then.</summary>
/// <param name="SnapshotId">A variable holding the value before the step (<c>var_…</c>).</param>
/// <param name="GradientIds">The gradient variables the parameter had at that step, in list order.</param>
public sealed record MomentumEntry(string SnapshotId, IReadOnlyList<string> GradientIds)
{
    public static IReadOnlyList<MomentumEntry> ListFromJson(string? json) =>
        json is null ? [] : JsonSerializer.Deserialize<List<MomentumEntry>>(json, JobEventLog.Json) ?? [];

    public static string ListToJson(IEnumerable<MomentumEntry> entries) => JsonSerializer.Serialize(entries.ToList(), JobEventLog.Json);
}

/// <summary>
/// A TGD optimizer: its defaults and the settings of each parameter group. Which parameters belong
/// to which group, and each one's momentum state, are rows of <see cref="OptimizerParam"/>.
/// </summary>
public sealed class Optimizer : IHasId
{
    public const string Tgd = "tgd";

    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Type { get; init; }

    /// <summary>The defaults as <see cref="TgdGroupSettings"/> JSON.</summary>
    public required string Defaults { get; set; }

    /// <summary>Each group's settings, defaults filled in, as a JSON array of <see cref="TgdGroupSettings"/>.</summary>
    public required string ParamGroups { get; set; }

    public required DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A parameter of an optimizer: its group, its place in it, and its momentum state.</summary>
public sealed class OptimizerParam
{
    public required Guid OptimizerId { get; init; }
    public required Guid VariableId { get; init; }
    public required int GroupIndex { get; init; }
    public required int Position { get; init; }

    /// <summary>The momentum window as a JSON array of <see cref="MomentumEntry"/>; null until the parameter's first step.</summary>
    public string? MomentumBuffer { get; set; }
}

public sealed class OptimizerConfiguration : IEntityTypeConfiguration<Optimizer>
{
    public void Configure(EntityTypeBuilder<Optimizer> builder)
    {
        builder.HasKey(o => o.Id);
        builder.Property(o => o.Type).HasMaxLength(16);
        builder.Property(o => o.Defaults).HasColumnType("jsonb");
        builder.Property(o => o.ParamGroups).HasColumnType("jsonb");
        builder.HasIndex(o => new { o.ProjectId, o.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(o => o.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class OptimizerParamConfiguration : IEntityTypeConfiguration<OptimizerParam>
{
    public void Configure(EntityTypeBuilder<OptimizerParam> builder)
    {
        // A parameter appears once per optimizer: in one group, at one place.
        builder.HasKey(p => new { p.OptimizerId, p.VariableId });
        builder.HasIndex(p => new { p.OptimizerId, p.GroupIndex, p.Position }).IsUnique();
        builder.Property(p => p.MomentumBuffer).HasColumnType("jsonb");
        builder.HasIndex(p => p.VariableId);
        builder.HasOne<Optimizer>().WithMany().HasForeignKey(p => p.OptimizerId).OnDelete(DeleteBehavior.Cascade);
        // A deleted parameter leaves its group.
        builder.HasOne<Variable>().WithMany().HasForeignKey(p => p.VariableId).OnDelete(DeleteBehavior.Cascade);
    }
}
