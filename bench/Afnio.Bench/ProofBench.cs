using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Afnio.Api.Tests.Infrastructure;
using Afnio.Demo;
using Npgsql;
using Row = Afnio.Bench.ScaleBench.Row;

namespace Afnio.Bench;

/// <summary>
/// The service's performance claims (P1–P6, and issue 19's S1–S3, C1, F1 in <see cref="ScaleBench"/>),
/// measured side by side in one run over loopback against
/// the service as <c>scripts/run.sh</c> starts it, with the fake OpenAI-compatible provider at a fixed
/// latency. Prints each measurement's details, then one Markdown table.
/// </summary>
internal static partial class ProofBench
{
    private static readonly TimeSpan Latency = TimeSpan.FromMilliseconds(200);
    private static readonly int[] SplitSizes = [66, 66, 68];

    /// <summary>Runs every row, or only <paramref name="only"/> (ids such as <c>P1,S3</c>; for working on one row).</summary>
    public static async Task<int> RunAsync(HttpClient http, HttpClient other, IReadOnlySet<string>? only = null)
    {
        var database = Environment.GetEnvironmentVariable("AFNIO_BENCH_DATABASE")
            ?? throw new InvalidOperationException("AFNIO_BENCH_DATABASE is not set (bench/run.sh sets it).");
        var machine = ScaleBench.Machine();
        Console.WriteLine($"Afnio benchmark on {machine}");
        var rows = new List<Row>();
        bool Wanted(params string[] ids) => only is null || ids.Any(only.Contains);

        // C1 first: it needs the Worker as it starts.
        if (Wanted("C1"))
        {
            rows.Add(await ScaleBench.FirstJobAsync(http, database));
        }

        // P5 next, so the worker's peak memory is its own and not left over from other measurements.
        if (Wanted("P5"))
        {
            var graph = await BackwardBench.RunAsync(http, 10_000, 16);
            rows.Add(new Row("P5", "backward over a 10,000-node graph without LLM: wall time, Worker peak memory", "≤ 10 s, ≤ 300 MB",
                F($"{graph.Seconds:F2} s ({graph.Nodes} nodes), ") + (graph.WorkerPeakMegabytes is { } mb ? F($"{mb:F0} MB") : "memory not readable"),
                graph.Seconds <= 10 && graph.WorkerPeakMegabytes is <= 300));
        }

        if (Wanted("P1"))
        {
            rows.Add(await ParallelBackwardAsync(http));
        }

        if (Wanted("P2", "P6"))
        {
            rows.AddRange(await TrainingAsync(http, database));
        }

        if (Wanted("P3", "S3"))
        {
            var trivial = await ScaleBench.TrivialJobsAsync(http);
            rows.Add(trivial.Latency);
            rows.Add(trivial.Cpu);
        }

        if (Wanted("P4"))
        {
            rows.Add(await InsertsAsync(http, database));
        }

        if (Wanted("F1"))
        {
            rows.Add(await ScaleBench.FairnessAsync(http, other, database, FacilityRunsAsync));
        }

        if (Wanted("S2"))
        {
            rows.Add(await ScaleBench.OneWorkerThroughputAsync(http));
        }

        if (Wanted("S1"))
        {
            rows.Add(await ScaleBench.TwoWorkersAsync(http, database));
        }

        Console.WriteLine();
        Console.WriteLine($"## Afnio benchmark, {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC, {machine}, fake provider at {Latency.TotalMilliseconds:F0} ms");
        Console.WriteLine();
        Console.WriteLine("| # | measure | goal | result | met |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var row in rows.OrderBy(r => r.Id, StringComparer.Ordinal))
        {
            Console.WriteLine($"| {row.Id} | {row.Measure} | {row.Goal} | {row.Result} | {(row.Met ? "yes" : "**no**")} |");
        }

        return 0;
    }

    // P1: 64 parallel chat nodes; the pass should take one provider latency per level of the graph.
    private static async Task<Row> ParallelBackwardAsync(HttpClient http)
    {
        await using var fake = await LanguageModelBench.StartFakeAsync();
        var model = await LanguageModelBench.RegisterModelAsync(http, fake);
        Console.WriteLine();
        Console.WriteLine("P1: backward through 64 parallel chat_completion nodes at 200 ms per feedback call, 5 passes per depth after a warm-up");
        var results = new List<(int Depth, LanguageModelBench.Measurement M)>();
        foreach (var depth in new[] { 1, 2 })
        {
            var m = await LanguageModelBench.MeasureAsync(http, fake, model, depth, 5);
            results.Add((depth, m));
            Console.WriteLine(F($"  depth {depth}: {m.Calls} calls, job p50 {m.JobP50:F0} ms (max {m.JobMax:F0}), ideal {m.Ideal:F0} ms, client p50 {m.ClientP50:F0} ms, provider peak concurrency {m.Peak}"));
        }

        Console.WriteLine("  last pass, ms after the job was claimed: " + await LanguageModelBench.PhasesAsync("backward"));
        var one = results[0].M;
        return new Row("P1", "backward over 64 parallel chat nodes, client-observed (POST → terminal seen, p50) ÷ 200 ms", "≤ 1.3",
            F($"{one.ClientP50:F0} ms ÷ 200 = {one.ClientP50 / one.Ideal:F2} (inside the job {one.JobP50 / one.Ideal:F2}; depth 2: {results[1].M.ClientP50 / results[1].M.Ideal:F2})"),
            one.ClientP50 / one.Ideal <= 1.3);
    }

    // P2 and P6: the Facility Support training (66 training samples, batches of 33) on the simulated model.
    private static async Task<Row[]> TrainingAsync(HttpClient http, string database)
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = request => FakeReply.Text(
            SimulatedModel.Complete(request)["choices"]![0]!["message"]!["content"]!.GetValue<string>(), Latency);
        const int epochs = 3;
        var run = await (await FacilityRunsAsync(http, fake, epochs))();
        var runId = Id(run);
        var jobId = run.GetProperty("job_id").GetString()!;
        Console.WriteLine();
        Console.WriteLine($"P2/P6: Facility Support training, simulated model at {Latency.TotalMilliseconds:F0} ms per call, {epochs} epochs of 2 batches of 33, validation on 66");
        var done = await BackwardBench.WaitAsync(http, jobId);
        if (done.GetProperty("status").GetString() != "succeeded")
        {
            throw new InvalidOperationException($"the training run did not succeed: {done}");
        }

        // Wall time of an epoch: from the previous epoch's (or the baseline's) checkpoint to its own.
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        var ends = new List<(int Epoch, DateTimeOffset At)>();
        await using (var command = new NpgsqlCommand(
            "SELECT epoch, created_at FROM run_checkpoints WHERE run_id = @run AND kind IN ('baseline', 'epoch') ORDER BY epoch", connection))
        {
            command.Parameters.AddWithValue("run", Guid.ParseExact(runId["run_".Length..], "N"));
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                ends.Add((reader.GetInt32(0), reader.GetFieldValue<DateTimeOffset>(1)));
            }
        }

        if (ends.Count == 0 || ends[0].Epoch != 0)
        {
            // Without promotion there is no baseline validation: epoch 1 starts when the job does.
            await using var started = new NpgsqlCommand("SELECT started_at FROM jobs WHERE id = @job", connection);
            started.Parameters.AddWithValue("job", Guid.ParseExact(jobId["job_".Length..], "N"));
            ends.Insert(0, (0, new DateTimeOffset((DateTime)(await started.ExecuteScalarAsync())!)));
        }

        // The LLM critical path of an epoch: its pieces of work run one after another, and inside each,
        // the calls of one phase (forward, evaluator feedback, backward, optimizer step) are independent,
        // so a phase costs its slowest call. Phases come from the journal's step keys.
        var calls = new List<(string Key, int LatencyMs)>();
        await using (var command = new NpgsqlCommand("SELECT step_key, latency_ms FROM model_calls WHERE job_id = @job", connection))
        {
            command.Parameters.AddWithValue("job", Guid.ParseExact(jobId["job_".Length..], "N"));
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                calls.Add((reader.GetString(0), reader.GetInt32(1)));
            }
        }

        var phases = calls.GroupBy(c => Phase(c.Key)).Select(g => (Phase: g.Key, Calls: g.Count(), Max: g.Max(c => c.LatencyMs))).OrderBy(p => p.Phase, StringComparer.Ordinal).ToList();
        Console.WriteLine("  phases of epoch 1 (step key pattern: calls, slowest ms): " +
            string.Join("; ", phases.Where(p => p.Phase.StartsWith("fit/e1/", StringComparison.Ordinal)).Select(p => $"{p.Phase}: {p.Calls}, {p.Max}")));
        var ratios = new List<(int Epoch, double Ratio)>();
        for (var e = 1; e < ends.Count; e++)
        {
            var epoch = ends[e].Epoch;
            var wall = (ends[e].At - ends[e - 1].At).TotalMilliseconds;
            var critical = phases.Where(p => p.Phase.StartsWith($"fit/e{epoch}/", StringComparison.Ordinal)).Sum(p => (double)p.Max);
            var rounds = phases.Count(p => p.Phase.StartsWith($"fit/e{epoch}/", StringComparison.Ordinal));
            ratios.Add((epoch, wall / critical));
            Console.WriteLine(F($"  epoch {epoch}: wall {wall:F0} ms, LLM critical path {critical:F0} ms ({rounds} sequential call phases), ratio {wall / critical:F3}"));
        }

        var summary = JsonDocument.Parse(await http.GetStringAsync($"/v1/runs/{runId}")).RootElement
            .GetProperty("training").GetProperty("summary").GetProperty("usage");
        var max = summary.GetProperty("max_calls_per_batch").GetInt32();
        var bound = summary.GetProperty("call_bound_per_batch").GetInt32();
        Console.WriteLine(F($"  calls per training batch: max {max}, mean {summary.GetProperty("mean_calls_per_batch").GetDouble():F1}, bound B + 2P + 1 = {bound}; {summary.GetProperty("calls").GetInt32()} calls in all"));
        return
        [
            new Row("P2", "training epoch wall ÷ LLM critical path, Facility sim (66 samples, batch 33)", "≤ 1.10",
                string.Join(" · ", ratios.Select(r => F($"epoch {r.Epoch}: {r.Ratio:F2}"))), ratios.Count > 0 && ratios.All(r => r.Ratio <= 1.10)),
            new Row("P6", "LLM calls per training batch (B = 33 samples, P = 1 parameter)", "≤ B + 2P + 1",
                F($"max {max} ≤ {bound}"), max <= bound),
        ];
    }

    private static Task<Func<Task<JsonElement>>> FacilityRunsAsync(HttpClient http, FakeOpenAiServer fake) => FacilityRunsAsync(http, fake, 3);

    // The Facility Support dataset, program and a model on the fake provider; returns a function that starts one training run.
    private static async Task<Func<Task<JsonElement>>> FacilityRunsAsync(HttpClient http, FakeOpenAiServer fake, int epochs)
    {
        var root = RepoRoot();
        using var items = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(root, "data", "facility-support", "dataset.json")));
        using var definition = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(root, "data", "facility-support", "program.json")));
        var dataset = Id(await BenchProgram.PostAsync(http, "/v1/datasets", new { name = "facility support", items = items.RootElement }));
        var program = Id(await BenchProgram.PostAsync(http, "/v1/programs", new { name = "facility support analyzer", definition = definition.RootElement }));
        var model = Id(await BenchProgram.PostAsync(http, "/v1/models", new
        {
            provider = "openai",
            base_url = fake.Endpoint.ToString(),
            api_key = "sk-bench",
            default_completion_args = new { model = "gpt-4o-mini" },
            max_concurrency = 64,
        }));
        return () => BenchProgram.PostAsync(http, "/v1/runs", new
        {
            program_id = program,
            dataset = new { id = dataset, split = new { method = "sizes", sizes = SplitSizes, seed = 0 } },
            models = new { forward = model, backward = model, optimizer = model },
            optimizer = new { momentum = 3 },
            epochs,
            batch_size = 33,
            promote = false,
            test = false,
        });
    }

    // A call's phase: its step key without the per-item and per-attempt parts.
    private static string Phase(string stepKey) => PerItem().Replace(stepKey, "/*");

    [GeneratedRegex(@"/\d+(?=/|$)")]
    private static partial Regex PerItem();

    // P4: POST /v1/variables against pgbench's single-row inserts, same PostgreSQL, same concurrency.
    private static async Task<Row> InsertsAsync(HttpClient http, string database)
    {
        const int concurrency = 16;
        const int requests = 6000;
        Console.WriteLine();
        Console.WriteLine($"P4: {requests} POST /v1/variables at concurrency {concurrency}, then pgbench single-row inserts for 10 s at {concurrency} clients");
        await BenchProgram.RunQuietlyAsync(500, concurrency, async i =>
            await BenchProgram.PostAsync(http, "/v1/variables", new { data = "warm-up", role = "bench" }));
        var watch = Stopwatch.StartNew();
        await BenchProgram.RunQuietlyAsync(requests, concurrency, async i =>
            await BenchProgram.PostAsync(http, "/v1/variables", new { data = $"a prompt to optimize, number {i}", role = "system prompt", requires_grad = true }));
        var api = requests / watch.Elapsed.TotalSeconds;
        Console.WriteLine(F($"  API, from this .NET client: {api:F0} requests/s"));

        // pgbench is a native client; so is wrk, when the machine has it: the fairer pair for the ratio.
        if (await WrkAsync(http, concurrency) is { } native)
        {
            Console.WriteLine(F($"  API, from wrk: {native:F0} requests/s"));
            api = native;
        }

        var settings = new NpgsqlConnectionStringBuilder(database);
        await using (var connection = new NpgsqlConnection(database))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand("""
                DROP TABLE IF EXISTS bench_inserts;
                CREATE TABLE bench_inserts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), data jsonb NOT NULL, role text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())
                """, connection);
            await create.ExecuteNonQueryAsync();
        }

        var script = Path.GetTempFileName();
        await File.WriteAllTextAsync(script, "INSERT INTO bench_inserts (data, role) VALUES ('\"a prompt to optimize\"', 'system prompt');\n");
        var start = new ProcessStartInfo("pgbench",
            ["-n", "-c", $"{concurrency}", "-j", "2", "-T", "10", "-f", script, "-h", settings.Host!, "-p", $"{settings.Port}", "-U", settings.Username!, settings.Database!])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["PGPASSWORD"] = settings.Password;
        using var pgbench = Process.Start(start)!;
        var output = await pgbench.StandardOutput.ReadToEndAsync();
        await pgbench.WaitForExitAsync();
        File.Delete(script);
        var tps = Tps().Match(output);
        if (!tps.Success)
        {
            Console.WriteLine("  pgbench failed: " + output + await pgbench.StandardError.ReadToEndAsync());
            return new Row("P4", "POST /v1/variables req/s ÷ pgbench single-row inserts/s", "≥ 0.5", "pgbench failed", false);
        }

        var inserts = double.Parse(tps.Groups[1].Value, CultureInfo.InvariantCulture);
        Console.WriteLine(F($"  pgbench: {inserts:F0} inserts/s"));
        return new Row("P4", "POST /v1/variables req/s ÷ pgbench single-row inserts/s (same PostgreSQL, 16 clients)", "≥ 0.5",
            F($"{api:F0} ÷ {inserts:F0} = {api / inserts:F2}"), api / inserts >= 0.5);
    }

    // POST /v1/variables for 10 s from wrk at the given connections; null when wrk is not installed.
    private static async Task<double?> WrkAsync(HttpClient http, int connections)
    {
        var script = Path.GetTempFileName();
        var key = http.DefaultRequestHeaders.Authorization!.Parameter;
        await File.WriteAllTextAsync(script, $$"""
            wrk.method = "POST"
            wrk.body = '{"data": "a prompt to optimize", "role": "system prompt", "requires_grad": true}'
            wrk.headers["Content-Type"] = "application/json"
            wrk.headers["Authorization"] = "Bearer {{key}}"
            """);
        try
        {
            var start = new ProcessStartInfo("wrk", ["-t2", $"-c{connections}", "-d10s", "-s", script, new Uri(http.BaseAddress!, "/v1/variables").ToString()])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var wrk = Process.Start(start)!;
            var output = await wrk.StandardOutput.ReadToEndAsync();
            await wrk.WaitForExitAsync();
            var rate = WrkRate().Match(output);
            if (output.Contains("Non-2xx", StringComparison.Ordinal) || !rate.Success)
            {
                Console.WriteLine("  wrk failed or got errors: " + output);
                return null;
            }

            return double.Parse(rate.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // not installed
        }
        finally
        {
            File.Delete(script);
        }
    }

    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex WrkRate();

    [GeneratedRegex(@"tps = ([0-9.]+) \(without initial connection time\)")]
    private static partial Regex Tps();

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Afnio.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Afnio.sln not found above the benchmark's folder.");
    }

    private static string Id(JsonElement response) => response.GetProperty("id").GetString()!;

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
