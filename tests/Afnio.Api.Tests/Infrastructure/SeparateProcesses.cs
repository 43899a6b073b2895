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
    private readonly Dictionary<string, string> _apiEnvironment;
    private readonly int _port;
    private readonly List<ProcessHost> _workers = [];
    private ProcessHost _api;

    private SeparateProcesses(
        string connectionString, Dictionary<string, string> environment, Dictionary<string, string> apiEnvironment, int port, HttpClient admin)
    {
        ConnectionString = connectionString;
        _environment = environment;
        _apiEnvironment = apiEnvironment;
        _port = port;
        _api = StartApi(apiEnvironment, port);
        Admin = admin;
    }

    public string ConnectionString { get; }

    /// <summary>A client of the API without a key; <see cref="CreateProjectAsync"/> gives keyed ones.</summary>
    public HttpClient Admin { get; }

    /// <summary>The Worker running now (the last one started).</summary>
    public ProcessHost Worker => _workers[^1];

    /// <summary>Every Worker started, in order.</summary>
    public IReadOnlyList<ProcessHost> Workers => _workers;

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
        var apiEnvironment = new Dictionary<string, string>(environment)
        {
            ["Afnio__AdminKey"] = AdminKey,
            ["Afnio__Worker__InProcess"] = "false",
            ["Afnio__RateLimit__TokenLimit"] = "100000",
            ["Afnio__RateLimit__TokensPerSecond"] = "100000",
            ["Afnio__KeyLookups__BurstPerAddress"] = "100000",
            ["Afnio__KeyLookups__PerSecondPerAddress"] = "100000",
        };
        var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
        var processes = new SeparateProcesses(connectionString, environment, apiEnvironment, port, admin);
        processes.StartWorker();
        await processes._api.WaitUntilReadyAsync(admin);
        return processes;
    }

    /// <summary>The API process running now.</summary>
    public ProcessHost Api => _api;

    /// <summary>Kills the API process at once, as a crash would, and starts a new one on the same port.</summary>
    public async Task RestartApiAfterKillAsync()
    {
        _api.Kill();
        await _api.DisposeAsync();
        _api = StartApi(_apiEnvironment, _port);
        await _api.WaitUntilReadyAsync(Admin);
    }

    private static ProcessHost StartApi(Dictionary<string, string> environment, int port) =>
        ProcessHost.Start("src/Afnio.Api", environment, "--urls", $"http://127.0.0.1:{port}");

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
