using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Afnio.Data.Variables;

/// <summary>
/// One entry of a variable's gradient list. Gradients are appended, never merged; the identity
/// column orders them, so concurrent appends need no read-modify-write.
/// </summary>
public sealed class VariableGradient
{
    public long Seq { get; init; }
    public required Guid VariableId { get; init; }
    public required Guid GradientId { get; init; }
}

public sealed class VariableGradientConfiguration : IEntityTypeConfiguration<VariableGradient>
{
    public void Configure(EntityTypeBuilder<VariableGradient> builder)
    {
        builder.HasKey(g => g.Seq);
        builder.Property(g => g.Seq).UseIdentityAlwaysColumn();
        builder.HasIndex(g => new { g.VariableId, g.Seq });
        builder.HasIndex(g => g.GradientId);
        builder.HasOne<Variable>().WithMany().HasForeignKey(g => g.VariableId).OnDelete(DeleteBehavior.Cascade);
        // Deleting a gradient variable removes it from every list it was in.
        builder.HasOne<Variable>().WithMany().HasForeignKey(g => g.GradientId).OnDelete(DeleteBehavior.Cascade);
    }
}
