using Afnio.Data.Projects;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Datasets;

/// <summary>
/// A dataset: JSON objects that only ever grow. Every upload makes a new version, and version
/// <c>v</c> is the items added up to it, in the order they came; a run records the version it used.
/// </summary>
public sealed class Dataset : IHasId
{
    public required Guid Id { get; init; }
    public required Guid ProjectId { get; init; }
    public required string Name { get; set; }
    public string? Description { get; set; }

    /// <summary>The latest version (1 for a new dataset).</summary>
    public int Version { get; set; }

    /// <summary>Items in the latest version.</summary>
    public int ItemCount { get; set; }

    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>One version of a dataset: how many items it holds and when it was made.</summary>
public sealed class DatasetVersion
{
    public required Guid DatasetId { get; init; }
    public required int Version { get; init; }
    public required int ItemCount { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

/// <summary>An item: a JSON object, its place in the dataset, and the version that added it.</summary>
public sealed class DatasetItem : IHasId
{
    public required Guid Id { get; init; }
    public required Guid DatasetId { get; init; }
    public required int Position { get; init; }
    public required int Version { get; init; }
    public required string Data { get; init; }
}

public sealed class DatasetConfiguration : IEntityTypeConfiguration<Dataset>
{
    public void Configure(EntityTypeBuilder<Dataset> builder)
    {
        builder.HasKey(d => d.Id);
        builder.Property(d => d.Name).HasMaxLength(200);
        builder.Property(d => d.Description).HasMaxLength(2000);
        builder.HasIndex(d => new { d.ProjectId, d.Id });
        builder.HasOne<Project>().WithMany().HasForeignKey(d => d.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class DatasetVersionConfiguration : IEntityTypeConfiguration<DatasetVersion>
{
    public void Configure(EntityTypeBuilder<DatasetVersion> builder)
    {
        builder.HasKey(v => new { v.DatasetId, v.Version });
        builder.HasOne<Dataset>().WithMany().HasForeignKey(v => v.DatasetId).OnDelete(DeleteBehavior.Cascade);
    }
}

public sealed class DatasetItemConfiguration : IEntityTypeConfiguration<DatasetItem>
{
    public void Configure(EntityTypeBuilder<DatasetItem> builder)
    {
        builder.HasKey(i => i.Id);
        builder.Property(i => i.Data).HasColumnType("jsonb");
        builder.HasIndex(i => new { i.DatasetId, i.Position }).IsUnique();
        builder.HasOne<Dataset>().WithMany().HasForeignKey(i => i.DatasetId).OnDelete(DeleteBehavior.Cascade);
    }
}
