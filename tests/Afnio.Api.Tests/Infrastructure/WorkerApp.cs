namespace Afnio.Api.Tests.Infrastructure;

/// <summary>
/// The API hosting the Hangfire server in-process, on a database of its own (so its server never
/// runs other tests' jobs), with short leases so recovery is quick.
/// </summary>
public class WorkerApp : AfnioApiFactory
{
    private string _ownDatabase = string.Empty;

    public override async Task InitializeAsync() => _ownDatabase = await TestDatabase.CreateAsync("afnio_worker");

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["ConnectionStrings:Postgres"] = _ownDatabase,
        ["Afnio:Worker:InProcess"] = "true",
        ["Afnio:Housekeeping:Schedule"] = "never",
        ["Afnio:Jobs:LeaseSeconds"] = "3",
        ["Afnio:Jobs:MonitorIntervalMs"] = "100",
        ["Afnio:Jobs:RecoveryIntervalSeconds"] = "1",
        // Each waiting Hangfire worker holds a connection (long polling); the test server's are counted.
        ["Afnio:Webhooks:WorkerCount"] = "2",
    };

    protected override async Task DisposeFixtureAsync()
    {
        await base.DisposeFixtureAsync();
        // The host's pools stay open after it stops; on a database used by no one else they only hold connections.
        Npgsql.NpgsqlConnection.ClearAllPools();
    }

    /// <summary>The connection string of this host's own database.</summary>
    public string OwnDatabase => _ownDatabase;

    public override Data.AfnioDbContext CreateDbContext() => TestDatabase.CreateDbContext(_ownDatabase);
}

/// <summary>
/// Test classes whose host runs a Hangfire server. They run one at a time, after the parallel
/// classes: Hangfire keeps process-wide state (job filters, the queue's wake-up event), and two
/// hosts in one test process would share it. A real process only ever holds one host.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class WorkerHosts
{
    public const string Name = "hosts with a Hangfire server";
}
