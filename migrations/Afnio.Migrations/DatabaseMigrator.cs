using Afnio.Data;
using Hangfire.PostgreSql;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Afnio.Migrations;

/// <summary>
/// Brings a database to the current schema: EF Core migrations for our tables, then the Hangfire
/// schema. The only code that changes the schema; API and Worker never do.
/// </summary>
public static class DatabaseMigrator
{
    public static async Task MigrateAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        var options = new DbContextOptionsBuilder<AfnioDbContext>();
        AfnioDataSetup.ConfigureDbContext(options, connectionString);
        await using (var db = new AfnioDbContext(options.Options))
        {
            await db.Database.MigrateAsync(cancellationToken);
        }

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        PostgreSqlObjectsInstaller.Install(connection, AfnioDataSetup.HangfireSchema);
    }
}
