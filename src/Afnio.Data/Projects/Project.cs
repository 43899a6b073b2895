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
}

public sealed class ProjectConfiguration : IEntityTypeConfiguration<Project>
{
    public void Configure(EntityTypeBuilder<Project> builder)
    {
        builder.HasKey(p => p.Id);
        builder.Property(p => p.Name).HasMaxLength(200);
        builder.Property(p => p.BackwardCompletionArgs).HasColumnType("jsonb");
        builder.HasOne<LanguageModels.ModelClient>().WithMany().HasForeignKey(p => p.BackwardModelId).OnDelete(DeleteBehavior.SetNull);
    }
}
