using Afnio.Data;
using Afnio.Migrations;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Afnio.Api.Tests.Infrastructure;

/// <summary>
/// A real PostgreSQL database for this test run, created on the server named by
/// AFNIO_TEST_POSTGRES and brought up to date by the real migrator. scripts/test.sh starts a
/// throwaway server and sets the variable.
/// </summary>
public static class TestDatabase
{
    private static readonly Lazy<Task<string>> Shared = new(() => CreateAsync("afnio_test"));

    /// <summary>The database shared by the tests of this run; tests isolate themselves by project.</summary>
    public static Task<string> GetConnectionStringAsync() => Shared.Value;

    /// <summary>A new, migrated database of its own, for tests that need an empty one; on the run's server unless another is named.</summary>
    public static async Task<string> CreateAsync(string prefix, bool migrate = true, string? server = null)
    {
        server ??= Environment.GetEnvironmentVariable("AFNIO_TEST_POSTGRES")
            ?? throw new InvalidOperationException(
                "AFNIO_TEST_POSTGRES is not set. Run the tests with scripts/test.sh, which starts a throwaway PostgreSQL, " +
                "or set it to a connection string of a server where the user may create databases.");
        var name = $"{prefix}_{Guid.NewGuid():N}"[..40];
        await using (var connection = new NpgsqlConnection(server))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await create.ExecuteNonQueryAsync();
        }

        var connectionString = new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
        if (migrate)
        {
            await DatabaseMigrator.MigrateAsync(connectionString);
        }

        return connectionString;
    }

    /// <summary>A DbContext on a test database, for arranging states and checking what was stored.</summary>
    public static AfnioDbContext CreateDbContext(string connectionString)
    {
        var options = new DbContextOptionsBuilder<AfnioDbContext>();
        AfnioDataSetup.ConfigureDbContext(options, connectionString);
        return new AfnioDbContext(options.Options);
    }
}
