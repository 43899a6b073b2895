using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Npgsql;

namespace Afnio.Bench;

/// <summary>
/// Backward passes through the worker process: wall time and worker peak memory for one pass over
/// a large graph, and how long a queued job waits before a worker starts it.
/// </summary>
internal static class BackwardBench
{
    /// <summary>What one pass over the large graph took.</summary>
    public sealed record PassResult(int Nodes, double Seconds, double? WorkerPeakMegabytes);

    public static async Task<PassResult> RunAsync(HttpClient http, int nodes, int concurrency)
    {
        // sum(add(a_i, b_i) for i in 1..n): 2n AccumulateGrad + n AddBackward0 + 1 SumBackward0 nodes.
        var pairs = Math.Max(1, (nodes - 1) / 3);
        var total = 3 * pairs + 1;
        Console.WriteLine();
        Console.WriteLine($"backward pass over sum(add(a_i, b_i)), {pairs} pairs = {total} nodes, built over HTTP at concurrency {concurrency}");
        var adds = new string[pairs];
        var build = Stopwatch.StartNew();
        await BenchProgram.RunAsync("build graph (2 variables + add)", pairs, concurrency, async i =>
        {
            var a = await VariableAsync(http, $"a{i}", $"a{i}");
            var b = await VariableAsync(http, $"b{i}", $"b{i}");
            adds[i] = Id(await BenchProgram.PostAsync(http, "/v1/functions/add", new { x = a, y = b }), "outputs");
        });
        var root = Id(await BenchProgram.PostAsync(http, "/v1/functions/sum", new { x = adds }), "outputs");
        var feedback = await VariableAsync(http, "The answers are too long.", "feedback");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"graph built in {build.Elapsed.TotalSeconds:F1} s"));

        // The worker's peak memory is read for this pass only: the kernel resets its high-water mark on request.
        ResetWorkerPeak();
        var pass = Stopwatch.StartNew();
        var job = await BenchProgram.PostAsync(http, "/v1/backward", new { variables = new[] { root }, grad_variables = new[] { feedback } });
        var done = await WaitAsync(http, job.GetProperty("id").GetString()!);
        pass.Stop();
        if (done.GetProperty("status").GetString() != "succeeded")
        {
            throw new InvalidOperationException($"the pass did not succeed: {done}");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"backward pass: {done.GetProperty("progress").GetProperty("total").GetInt32()} nodes, " +
            $"{done.GetProperty("result").GetProperty("gradients_appended").GetInt32()} gradients, " +
            $"wall time {pass.Elapsed.TotalSeconds:F2} s (POST /v1/backward → job seen succeeded)"));
        var peak = WorkerPeakMegabytes();
        if (peak is { } megabytes)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"worker peak memory during the pass (VmHWM): {megabytes:F0} MB"));
        }

        return new PassResult(done.GetProperty("progress").GetProperty("total").GetInt32(), pass.Elapsed.TotalSeconds, peak);
    }

    // Sequential tiny passes: each waits only for a worker to notice it. The times come from the
    // jobs table (created by the API, claimed by the worker), with microsecond resolution.
    public static async Task<(double P50, double P99)?> PickupLatencyAsync(HttpClient http)
    {
        var database = Environment.GetEnvironmentVariable("AFNIO_BENCH_DATABASE");
        if (string.IsNullOrEmpty(database))
        {
            Console.WriteLine("enqueue-to-start latency: skipped (AFNIO_BENCH_DATABASE not set)");
            return null;
        }

        const int jobs = 200;
        var x = await VariableAsync(http, "x", "x");
        var z = Id(await BenchProgram.PostAsync(http, "/v1/functions/add", new { x, y = x }), "outputs");
        var ids = new List<Guid>();
        for (var i = 0; i < jobs; i++)
        {
            var job = await BenchProgram.PostAsync(http, "/v1/backward", new { variables = new[] { z }, retain_graph = true });
            var id = job.GetProperty("id").GetString()!;
            await WaitAsync(http, id);
            ids.Add(Guid.ParseExact(id["job_".Length..], "N"));
        }

        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT EXTRACT(EPOCH FROM (started_at - created_at)) * 1000 FROM jobs WHERE id = ANY(@ids)", connection);
        command.Parameters.AddWithValue("ids", ids.ToArray());
        var latencies = new List<double>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                latencies.Add(Convert.ToDouble(reader.GetValue(0), CultureInfo.InvariantCulture));
            }
        }

        latencies.Sort();
        double P(double q) => latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(q * latencies.Count) - 1)];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"enqueue-to-start latency over {latencies.Count} sequential jobs: p50 {P(0.50):F1} ms, p99 {P(0.99):F1} ms, max {latencies[^1]:F1} ms"));

        return (P(0.50), P(0.99));
    }

    private static void ResetWorkerPeak()
    {
        var pid = Environment.GetEnvironmentVariable("AFNIO_BENCH_WORKER_PID");
        if (!string.IsNullOrEmpty(pid) && File.Exists($"/proc/{pid}/clear_refs"))
        {
            try
            {
                File.WriteAllText($"/proc/{pid}/clear_refs", "5");
            }
            catch (IOException)
            {
                // Not allowed here: the figure is then the peak since the worker started.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    private static double? WorkerPeakMegabytes()
    {
        var pid = Environment.GetEnvironmentVariable("AFNIO_BENCH_WORKER_PID");
        var status = $"/proc/{pid}/status";
        if (string.IsNullOrEmpty(pid) || !File.Exists(status))
        {
            return null;
        }

        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? null : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }

    internal static async Task<JsonElement> WaitAsync(HttpClient http, string jobId)
    {
        while (true)
        {
            var job = JsonDocument.Parse(await http.GetStringAsync($"/v1/jobs/{jobId}?wait_seconds=30")).RootElement.Clone();
            if (job.GetProperty("status").GetString() is "succeeded" or "failed" or "cancelled")
            {
                return job;
            }
        }
    }

    internal static async Task<string> VariableAsync(HttpClient http, string data, string role) =>
        (await BenchProgram.PostAsync(http, "/v1/variables", new { data, role, requires_grad = true })).GetProperty("id").GetString()!;

    internal static string Id(JsonElement response, string list) => response.GetProperty(list)[0].GetProperty("id").GetString()!;
}
