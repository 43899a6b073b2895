using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests;

public sealed class ArchitectureTests
{
    [Fact]
    public void Domain_ReferencesNoInfrastructurePackages()
    {
        var references = typeof(VariableData).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();

        Assert.Contains("System.Text.Json", references);
        Assert.DoesNotContain(references, r => r.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal)
            || r.StartsWith("Microsoft.EntityFrameworkCore", StringComparison.Ordinal)
            || r.StartsWith("Hangfire", StringComparison.Ordinal)
            || r.StartsWith("Npgsql", StringComparison.Ordinal));
    }
}
