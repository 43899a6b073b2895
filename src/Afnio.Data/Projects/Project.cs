using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Projects;

/// <summary>A tenant: every other object belongs to exactly one project.</summary>
public sealed class Project : IHasId
{
    public required Guid Id { get; init; }
    public required string Name { get; set; }
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The model client every backward pass asks for feedback (<c>PUT /v1/backward_model</c>).</summary>
    public Guid? BackwardModelId { get; set; }

    /// <summary>JSON object of completion arguments for backward calls.</summary>
    public string? BackwardCompletionArgs { get; set; }

    /// <summary>The user's or organization's namespace that owns the project; null for projects made by the admin API alone.</summary>
    public Guid? NamespaceId { get; set; }

    /// <summary>The project's slug in its namespace: python-slugify of its name, as the afnio client computes it.</summary>
    public string? Slug { get; set; }

    /// <summary>afnio's visibility (<c>TEAM</c> or <c>RESTRICTED</c>), kept for the client; it grants nothing here.</summary>
    public string? Visibility { get; set; }
}

public sealed class ProjectConfiguration : IEntityTypeConfiguration<Project>
{
    public void Configure(EntityTypeBuilder<Project> builder)
    {
        builder.HasKey(p => p.Id);
        builder.Property(p => p.Name).HasMaxLength(200);
        builder.Property(p => p.BackwardCompletionArgs).HasColumnType("jsonb");
        builder.HasOne<LanguageModels.ModelClient>().WithMany().HasForeignKey(p => p.BackwardModelId).OnDelete(DeleteBehavior.SetNull);
        builder.Property(p => p.Slug).HasMaxLength(200);
        builder.Property(p => p.Visibility).HasMaxLength(16);
        builder.HasIndex(p => new { p.NamespaceId, p.Slug }).IsUnique();
        // A deleted user or organization leaves its projects to the admin API and their project keys.
        builder.HasOne<Accounts.ProjectNamespace>().WithMany().HasForeignKey(p => p.NamespaceId).OnDelete(DeleteBehavior.SetNull);
    }
}
