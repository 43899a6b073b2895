using Npgsql;

namespace Afnio.Data;

/// <summary>
/// One LISTEN connection on a PostgreSQL channel, outside the pools, kept open until
/// <c>stoppingToken</c> fires. After a failure it reconnects a second later; <c>connected</c> runs on
/// every (re)connection, since notifications sent while it was away are lost.
/// </summary>
public static class PostgresListener
{
    public static async Task ListenAsync(
        string connectionString, string applicationName, string channel, Action<string> notified, Action connected, Action<Exception> lost,
        TimeProvider clock, CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString)
                {
                    ApplicationName = applicationName,
                    Pooling = false,
                    KeepAlive = 30,
                }.ConnectionString);
                connection.Notification += (_, e) => notified(e.Payload);
                await connection.OpenAsync(stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                connected();
                while (!stoppingToken.IsCancellationRequested)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                lost(e);
                await Task.Delay(TimeSpan.FromSeconds(1), clock, stoppingToken);
            }
        }
    }
}
