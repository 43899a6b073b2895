using Afnio.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Afnio.Migrations;

/// <summary>Lets <c>dotnet ef migrations add</c> build the model without a running database.</summary>
public sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<AfnioDbContext>
{
    public AfnioDbContext CreateDbContext(string[] args)
    {
        var options = new DbContextOptionsBuilder<AfnioDbContext>();
        AfnioDataSetup.ConfigureDbContext(options,
            Environment.GetEnvironmentVariable("ConnectionStrings__Postgres") ?? "Host=127.0.0.1;Database=afnio_design");
        return new AfnioDbContext(options.Options);
    }
}
