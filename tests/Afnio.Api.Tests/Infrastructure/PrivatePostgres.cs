using System.Diagnostics;
using Npgsql;

namespace Afnio.Api.Tests.Infrastructure;

/// <summary>
/// A PostgreSQL server of one test's own, from the machine's binaries (scripts/lib/postgres.sh), for
/// tests that stop and restart the database under a running service without disturbing the others.
/// </summary>
public sealed class PrivatePostgres : IAsyncDisposable
{
    private readonly string _folder;
    private readonly int _port;

    private PrivatePostgres(string folder, int port) => (_folder, _port) = (folder, port);

    /// <summary>A connection string to the server's maintenance database, for creating test databases.</summary>
    public string ServerConnectionString => $"Host=127.0.0.1;Port={_port};Database=postgres;Username=afnio;Password=afnio";

    public static async Task<PrivatePostgres> StartAsync()
    {
        // Readable by all: as root, the server runs as 'postgres', which must reach its folder.
        var folder = Directory.CreateTempSubdirectory("afnio-private-pg-").FullName;
        await ShellAsync($"chmod 755 '{folder}'");
        var server = new PrivatePostgres(folder, ProcessHost.FreePort());
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Starts the server (again): clients reconnect to the same port.</summary>
    public Task StartAgainAsync() =>
        ShellAsync($"pg_start '{_folder}/pg/data' {_port} '-c fsync=off -c synchronous_commit=off -c max_connections=200'");

    /// <summary>Stops the server as an operator's restart does (fast shutdown: sessions are cut, transactions rolled back).</summary>
    public async Task StopAsync()
    {
        await ShellAsync($"pg_stop '{_folder}/pg/data'");
        NpgsqlConnection.ClearAllPools();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Directory.Delete(_folder, recursive: true);
    }

    private static async Task ShellAsync(string command)
    {
        var start = new ProcessStartInfo("bash", ["-c", $"source scripts/lib/postgres.sh && {command}"])
        {
            WorkingDirectory = RepoPaths.Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var shell = Process.Start(start)!;
        var output = shell.StandardOutput.ReadToEndAsync();
        var error = shell.StandardError.ReadToEndAsync();
        await shell.WaitForExitAsync();
        if (shell.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{command}' failed ({shell.ExitCode}): {await output}{await error}");
        }
    }
}
