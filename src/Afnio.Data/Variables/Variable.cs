using Afnio.Data.Projects;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Variables;

/// <summary>
/// A stored variable. <see cref="Data"/> is jsonb; <see cref="DataKind"/> keeps Python's type
/// (jsonb normalizes numbers, so <c>1.0</c> alone would not survive as a float).
/// </summary>
public sealed class Variable : IHasId
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Data { get; set; }
    public required string DataKind { get; set; }
    public required string Role { get; set; }
    public required bool RequiresGrad { get; set; }
    public required bool IsParameter { get; init; }
    public bool RetainGrad { get; set; }
    public int OutputNr { get; set; }

    /// <summary>The node that produced this variable, when an operation made it.</summary>
    public Guid? GradFnId { get; set; }

    public required DateTimeOffset CreatedAt { get; init; }

    public bool IsLeaf => VariableRules.IsLeaf(RequiresGrad, GradFnId is not null);

    /// <summary>A new leaf variable of a project.</summary>
    public static Variable Create(
        Guid projectId, VariableData data, string role, bool requiresGrad, bool isParameter, DateTimeOffset now) => new()
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = projectId,
            Data = data.ToJson(),
            DataKind = data.Kind,
            Role = role,
            RequiresGrad = requiresGrad,
            IsParameter = isParameter,
            CreatedAt = now,
        };

    public VariableData GetData() => VariableData.FromStored(DataKind, Data);

    public void SetData(VariableData data)
    {
        Data = data.ToJson();
        DataKind = data.Kind;
    }
}

public sealed class VariableConfiguration : IEntityTypeConfiguration<Variable>
{
    public void Configure(EntityTypeBuilder<Variable> builder)
    {
        builder.HasKey(v => v.Id);
        builder.Property(v => v.Data).HasColumnType("jsonb");
        builder.Property(v => v.DataKind).HasMaxLength(16);
        builder.Ignore(v => v.IsLeaf);
        // Lists are keyset-paged by id inside one project.
        builder.HasIndex(v => new { v.ProjectId, v.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(v => v.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}
