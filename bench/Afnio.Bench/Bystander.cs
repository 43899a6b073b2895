using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Afnio.Bench;

/// <summary>
/// Another project's client, reading one of its variables in a loop for as long as it runs: what an
/// attack by one tenant costs everyone else, as that other tenant sees it.
/// </summary>
internal sealed class Bystander : IAsyncDisposable
{
    private readonly HttpClient _client;
    private readonly string _path;
    private readonly ConcurrentQueue<(long At, double Ms, int Status)> _calls = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    private Bystander(HttpClient client, string path)
    {
        _client = client;
        _path = path;
        _loop = Task.Run(LoopAsync);
    }

    public static async Task<Bystander> StartAsync(HttpClient client)
    {
        var variable = await BenchProgram.PostAsync(client, "/v1/variables", new { data = "the other project's prompt", role = "system prompt" });
        return new Bystander(client, $"/v1/variables/{variable.GetProperty("id").GetString()}");
    }

    public static long Now => Stopwatch.GetTimestamp();

    /// <summary>The other project's calls that started between two timestamps: "p50/p99/max ms, errors".</summary>
    public string Summary(long from, long to)
    {
        var calls = _calls.Where(c => c.At >= from && c.At <= to).ToList();
        if (calls.Count == 0)
        {
            return "no calls";
        }

        var ms = calls.Select(c => c.Ms).Order().ToArray();
        double P(double q) => ms[Math.Min(ms.Length - 1, (int)Math.Ceiling(q * ms.Length) - 1)];
        var errors = calls.Count(c => c.Status is < 200 or >= 300);
        return string.Create(CultureInfo.InvariantCulture, $"{P(0.5):F1}/{P(0.99):F1}/{ms[^1]:F0} ms, {errors} of {calls.Count} failed");
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var at = Now;
            int status;
            try
            {
                using var response = await _client.GetAsync(_path, _stop.Token);
                status = (int)response.StatusCode;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                status = 0;
            }

            _calls.Enqueue((at, Stopwatch.GetElapsedTime(at).TotalMilliseconds, status));
            await Task.Delay(10);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
