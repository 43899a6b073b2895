namespace Afnio.Api.Tests.Infrastructure;

/// <summary>
/// The API and a Worker as separate OS processes on a database of their own, with short leases so a
/// killed Worker's job is picked up again quickly: what the crash tests kill and restart.
/// </summary>
public sealed class SeparateProcesses : IAsyncDisposable
{
    public const string AdminKeyForTests = "separate-processes-admin-key-abcdef";
    private const string AdminKey = AdminKeyForTests;
    private readonly Dictionary<string, string> _environment;
    private readonly ProcessHost _api;
    private readonly List<ProcessHost> _workers = [];

    private SeparateProcesses(string connectionString, Dictionary<string, string> environment, ProcessHost api, HttpClient admin)
    {
        ConnectionString = connectionString;
        _environment = environment;
        _api = api;
        Admin = admin;
    }

    public string ConnectionString { get; }

    /// <summary>A client of the API without a key; <see cref="CreateProjectAsync"/> gives keyed ones.</summary>
    public HttpClient Admin { get; }

    /// <summary>The Worker running now.</summary>
    public ProcessHost Worker => _workers[^1];

    /// <summary>Starts both processes on a fresh database (on <paramref name="server"/> when given); <paramref name="settings"/> go to both.</summary>
    public static async Task<SeparateProcesses> StartAsync(string databasePrefix, IReadOnlyDictionary<string, string> settings, string? server = null)
    {
        var connectionString = await TestDatabase.CreateAsync(databasePrefix, server: server);
        var environment = new Dictionary<string, string>(settings)
        {
            ["ConnectionStrings__Postgres"] = connectionString,
            ["Afnio__Housekeeping__Schedule"] = "never",
            ["Afnio__Jobs__LeaseSeconds"] = "3",
            ["Afnio__Jobs__RecoveryIntervalSeconds"] = "1",
            ["Afnio__Jobs__MonitorIntervalMs"] = "100",
            ["Afnio__Webhooks__WorkerCount"] = "2",
        };
        var port = ProcessHost.FreePort();
        var api = ProcessHost.Start("src/Afnio.Api", new Dictionary<string, string>(environment)
        {
            ["Afnio__AdminKey"] = AdminKey,
            ["Afnio__Worker__InProcess"] = "false",
            ["Afnio__RateLimit__TokenLimit"] = "100000",
            ["Afnio__RateLimit__TokensPerSecond"] = "100000",
            ["Afnio__KeyLookups__BurstPerAddress"] = "100000",
            ["Afnio__KeyLookups__PerSecondPerAddress"] = "100000",
        }, "--urls", $"http://127.0.0.1:{port}");
        var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
        var processes = new SeparateProcesses(connectionString, environment, api, admin);
        processes.StartWorker();
        await api.WaitUntilReadyAsync(admin);
        return processes;
    }

    /// <summary>Creates a project and a key, and returns a client that uses it.</summary>
    public Task<TestProject> CreateProjectAsync(string name) => ProcessHost.CreateProjectAsync(Admin, AdminKey, name);

    /// <summary>Kills the running Worker at once, as a crash would.</summary>
    public void KillWorker() => Worker.Kill();

    /// <summary>Starts another Worker process.</summary>
    public void StartWorker() => _workers.Add(ProcessHost.Start("src/Afnio.Worker", _environment));

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in _workers)
        {
            await worker.DisposeAsync();
        }

        await _api.DisposeAsync();
        Admin.Dispose();
    }
}
