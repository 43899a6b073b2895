using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Afnio.Data;

/// <summary>
/// The <c>Afnio:Database</c> section: how many PostgreSQL connections this process may hold. The
/// pools of every API and Worker process together must stay under the server's max_connections
/// (docs/decisions/016-connection-budget.md).
/// </summary>
public sealed class DatabaseOptions
{
    public const string Section = "Afnio:Database";

    /// <summary>Max Pool Size of the application's pool (EF Core and Npgsql) in this process.</summary>
    public int PoolSize { get; set; } = 30;

    /// <summary>Max Pool Size of Hangfire's pool in this process; by default computed from the Hangfire servers it runs.</summary>
    public int? HangfirePoolSize { get; set; }

    /// <summary>How long a request waits for a free pooled connection before it is refused (503 database_busy).</summary>
    public int AcquireTimeoutSeconds { get; set; } = 5;
}

/// <summary>A Hangfire server this process runs, registered so the storage's pool can be sized for it.</summary>
public sealed record HangfireServerDemand(string Name, int Workers);

/// <summary>The connection arithmetic of docs/decisions/016-connection-budget.md.</summary>
public static class ConnectionBudget
{
    /// <summary>Enqueues and state reads by request threads and jobs (Hangfire's client), at once.</summary>
    public const int HangfireClientConnections = 10;

    /// <summary>A server's own processes (heartbeat, watchdog, schedulers, expiration, counters, cancellation watcher).</summary>
    public const int HangfireServerProcesses = 7;

    /// <summary>
    /// With long polling each idle worker holds a LISTEN connection and takes a second one for each
    /// fetch; the server's own processes take one each.
    /// </summary>
    public static int HangfireServerConnections(int workers) => (2 * workers) + HangfireServerProcesses;

    /// <summary>The Hangfire pool this process needs for its servers (or the configured size).</summary>
    public static int HangfirePoolSize(DatabaseOptions options, IEnumerable<HangfireServerDemand> servers) =>
        options.HangfirePoolSize ?? HangfireClientConnections + servers.Sum(s => HangfireServerConnections(s.Workers));

    public static DatabaseOptions Options(IConfiguration configuration) =>
        configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();

    /// <summary>The connection string of this process's application pool: the configured one, sized by <see cref="DatabaseOptions"/>.</summary>
    public static string DataConnectionString(IConfiguration configuration)
    {
        var options = Options(configuration);
        return Sized(configuration.GetPostgresConnectionString(), options.PoolSize, options.AcquireTimeoutSeconds);
    }

    /// <summary>Sets Max Pool Size and the acquire timeout; settings win over the connection string, so the budget holds.</summary>
    public static string Sized(string connectionString, int poolSize, int acquireTimeoutSeconds) =>
        new NpgsqlConnectionStringBuilder(connectionString)
        {
            MaxPoolSize = Math.Max(1, poolSize),
            MinPoolSize = 0,
            Timeout = Math.Max(1, acquireTimeoutSeconds),
        }.ConnectionString;
}
