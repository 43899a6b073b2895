using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Data.Projects;
using Afnio.Data.Variables;
using Afnio.Domain.Autodiff;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Graph;

/// <summary>
/// A stored backward node. <see cref="NextFunctions"/> is a jsonb array of
/// <c>{"node_id": uuid|null, "output_nr": n}</c> in argument order, so one row holds a whole node
/// and a recursive query can walk the graph. AccumulateGrad nodes name their leaf in
/// <see cref="VariableId"/>, unique: one per leaf.
/// </summary>
public sealed class Node : IHasId
{
    private static readonly JsonSerializerOptions EdgeJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Name { get; init; }
    public required string NextFunctions { get; init; }
    public string? SavedContext { get; set; }
    public bool Released { get; set; }

    /// <summary>The backward job that consumed the graph here (a pass without retain_graph claims its nodes as it starts).</summary>
    public Guid? ReleasedByJobId { get; set; }

    /// <summary>For AccumulateGrad: the leaf it appends to; null once that variable is deleted.</summary>
    public Guid? VariableId { get; set; }

    public required DateTimeOffset CreatedAt { get; init; }

    public static Node From(GraphNode node, Guid projectId, DateTimeOffset now) => new()
    {
        Id = node.Id,
        ProjectId = projectId,
        Name = node.Name,
        NextFunctions = JsonSerializer.Serialize(node.NextFunctions, EdgeJson),
        SavedContext = node.SavedContext?.ToJsonString(),
        Released = node.Released,
        VariableId = node.VariableId,
        CreatedAt = now,
    };

    public IReadOnlyList<GraphEdge> GetNextFunctions() => JsonSerializer.Deserialize<List<GraphEdge>>(NextFunctions, EdgeJson) ?? [];

    /// <summary>The engine's view of the node; nodes claimed by <paramref name="job"/> itself still count as usable for it.</summary>
    public GraphNode ToGraphNode(Guid? job = null) => new(
        Id, Name, GetNextFunctions(), SavedContext is null ? null : JsonNode.Parse(SavedContext)!.AsObject(),
        Released && (job is null || ReleasedByJobId != job), VariableId);
}

public sealed class NodeConfiguration : IEntityTypeConfiguration<Node>
{
    public void Configure(EntityTypeBuilder<Node> builder)
    {
        builder.HasKey(n => n.Id);
        builder.Property(n => n.Name).HasMaxLength(128);
        builder.Property(n => n.NextFunctions).HasColumnType("jsonb");
        builder.Property(n => n.SavedContext).HasColumnType("jsonb");
        builder.HasIndex(n => new { n.ProjectId, n.Id });
        builder.HasIndex(n => n.VariableId).IsUnique();
        builder.HasOne<Project>().WithMany().HasForeignKey(n => n.ProjectId).OnDelete(DeleteBehavior.Cascade);
        // A deleted leaf keeps its AccumulateGrad node (edges still lead to it); gradients for it are dropped.
        builder.HasOne<Variable>().WithMany().HasForeignKey(n => n.VariableId).OnDelete(DeleteBehavior.SetNull);
    }
}
