using Afnio.Data;
using Microsoft.Extensions.Configuration;

namespace Afnio.Migrations;

/// <summary>The migrator process: applies the schema, prints one line, exits.</summary>
public static class MigratorProgram
{
    public static async Task<int> Main(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();

        var started = DateTimeOffset.UtcNow;
        await DatabaseMigrator.MigrateAsync(configuration.GetPostgresConnectionString());
        Console.WriteLine($"afnio-migrator: database is up to date ({(DateTimeOffset.UtcNow - started).TotalMilliseconds:F0} ms).");
        return 0;
    }
}
