using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Afnio.Api.Tests.Infrastructure;
using Npgsql;

namespace Afnio.Bench;

/// <summary>
/// The rows of issue 19, as the client sees them: the first job after start-up (C1), trivial jobs
/// end to end and the CPU they cost (P3, S3), one project's start delay beside another's training
/// runs (F1), one Worker's throughput on provider-bound jobs (S2), and two Workers against one (S1).
/// Every time is measured in this process, from a request to the response that shows the result.
/// </summary>
internal static class ScaleBench
{
    private static readonly TimeSpan Latency = TimeSpan.FromMilliseconds(200);

    internal sealed record Row(string Id, string Measure, string Goal, string Result, bool Met);

    /// <summary>A row that could not be measured: shown as such, never as a figure.</summary>
    internal static Row NotMeasured(string id, string measure, string goal, string why) => new(id, measure, goal, $"not measured: {why}", false);

    /// <summary>Prints the machine's cores and load; the figures only mean something on an idle machine.</summary>
    public static string Machine()
    {
        var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "unknown";
        return $"{Environment.ProcessorCount} cores, load average at start {load}";
    }

    /// <summary>Waits until <paramref name="count"/> dispatchers listen on the queue (each Worker opens one once it has warmed up).</summary>
    public static async Task WaitForDispatchersAsync(string database, int count, Process? starting = null)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        for (var i = 0; i < 240; i++)
        {
            await using var command = new NpgsqlCommand(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'afnio-dispatcher'", connection);
            if ((long)(await command.ExecuteScalarAsync())! >= count)
            {
                return;
            }

            if (starting?.HasExited == true)
            {
                throw new InvalidOperationException("a Worker process exited while starting");
            }

            await Task.Delay(250);
        }

        throw new InvalidOperationException($"{count} job dispatchers did not start");
    }

    // C1: the first backward with one provider call after start-up, against the median of five warm ones.
    public static async Task<Row> FirstJobAsync(HttpClient http, string database)
    {
        const string measure = "first job after start ÷ warm job (backward, one 200 ms call, POST → terminal seen)";
        await WaitForDispatchersAsync(database, 1);
        await using var fake = await LanguageModelBench.StartFakeAsync();
        var model = await LanguageModelBench.RegisterModelAsync(http, fake);
        var times = new List<double>();
        for (var i = 0; i < 6; i++)
        {
            var root = (await OneCallRootsAsync(http, model, 1))[0];
            var watch = Stopwatch.StartNew();
            var job = await BenchProgram.PostAsync(http, "/v1/backward", new { variables = new[] { root } });
            await SucceededAsync(http, job.GetProperty("id").GetString()!);
            times.Add(watch.Elapsed.TotalMilliseconds);
        }

        var warm = times.Skip(1).Order().ElementAt(2);
        Console.WriteLine();
        Console.WriteLine(F($"C1: first backward after start {times[0]:F0} ms; the next five {string.Join(", ", times.Skip(1).Select(t => t.ToString("F0", CultureInfo.InvariantCulture)))} ms (median {warm:F0})"));
        return new Row("C1", measure, "≤ 2", F($"{times[0]:F0} ÷ {warm:F0} ms = {times[0] / warm:F2}"), times[0] / warm <= 2);
    }

    /// <summary>What <see cref="TrivialJobsAsync"/> measured.</summary>
    public sealed record TrivialJobs(Row Latency, Row Cpu);

    // P3 and S3: sequential trivial jobs (backward through one add node, no provider), POST → terminal
    // seen through wait_seconds; and the CPU time the API, the Worker and PostgreSQL spent on them.
    public static async Task<TrivialJobs> TrivialJobsAsync(HttpClient http)
    {
        const int jobs = 200;
        const string p3 = "trivial job, client-observed POST → terminal seen, p50 / p99 (200 sequential)";
        const string s3 = "CPU s of API + Worker + PostgreSQL per trivial job";
        var x = await BackwardBench.VariableAsync(http, "x", "x");
        var z = BackwardBench.Id(await BenchProgram.PostAsync(http, "/v1/functions/add", new { x, y = x }), "outputs");
        for (var i = 0; i < 20; i++)
        {
            await TrivialAsync(http, z);
        }

        var probes = CpuProbes();
        var before = probes.Select(p => p.Cpu()).ToArray();
        var latencies = new List<double>();
        for (var i = 0; i < jobs; i++)
        {
            var watch = Stopwatch.StartNew();
            await TrivialAsync(http, z);
            latencies.Add(watch.Elapsed.TotalMilliseconds);
        }

        var after = probes.Select(p => p.Cpu()).ToArray();
        latencies.Sort();
        double P(double q) => latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(q * latencies.Count) - 1)];
        Console.WriteLine();
        Console.WriteLine(F($"P3: {jobs} sequential trivial backward jobs, POST /v1/backward → job seen succeeded: p50 {P(0.5):F1} ms, p99 {P(0.99):F1} ms, max {latencies[^1]:F1} ms"));
        var latency = new Row("P3", p3, "≤ 30 ms / ≤ 100 ms", F($"{P(0.5):F1} ms / {P(0.99):F1} ms"), P(0.5) <= 30 && P(0.99) <= 100);
        var missing = probes.Where(p => !p.Known).Select(p => p.Name).ToList();
        if (missing.Count > 0)
        {
            return new TrivialJobs(latency, NotMeasured("S3", s3, "≤ 10 ms", $"no /proc entry for {string.Join(", ", missing)}"));
        }

        var spent = probes.Select((p, i) => (p.Name, Ms: (after[i] - before[i]) * 1000 / jobs)).ToList();
        var total = spent.Sum(s => s.Ms);
        Console.WriteLine("S3: CPU per trivial job: " + string.Join(", ", spent.Select(s => F($"{s.Name} {s.Ms:F1} ms"))) + F($"; {total:F1} ms in all (ticks of 10 ms)"));
        return new TrivialJobs(latency, new Row("S3", s3, "≤ 10 ms", F($"{total:F1} ms (") + string.Join(", ", spent.Select(s => F($"{s.Name} {s.Ms:F1}"))) + ")", total <= 10));
    }

    private static async Task TrivialAsync(HttpClient http, string root)
    {
        var job = await BenchProgram.PostAsync(http, "/v1/backward", new { variables = new[] { root }, retain_graph = true });
        await SucceededAsync(http, job.GetProperty("id").GetString()!);
    }

    // F1: a second project's backward jobs while the first has 20 training runs queued.
    public static async Task<Row> FairnessAsync(HttpClient http, HttpClient other, string database, Func<HttpClient, FakeOpenAiServer, Task<Func<Task<JsonElement>>>> trainingRun)
    {
        const string measure = "project B's backward start delay while project A has 20 training runs queued, p50";
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = request => FakeReply.Text(
            Afnio.Demo.SimulatedModel.Complete(request)["choices"]![0]!["message"]!["content"]!.GetValue<string>(), Latency);
        var start = await trainingRun(http, fake);
        var runs = new List<JsonElement>();
        for (var i = 0; i < 20; i++)
        {
            runs.Add(await start());
        }

        var x = await BackwardBench.VariableAsync(other, "x", "x");
        var z = BackwardBench.Id(await BenchProgram.PostAsync(other, "/v1/functions/add", new { x, y = x }), "outputs");
        var ids = new List<Guid>();
        var busy = new List<long>();
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        for (var i = 0; i < 10; i++)
        {
            busy.Add(await UnfinishedRunsAsync(connection, runs));
            var job = await BenchProgram.PostAsync(other, "/v1/backward", new { variables = new[] { z }, retain_graph = true });
            var id = job.GetProperty("id").GetString()!;
            await SucceededAsync(other, id);
            ids.Add(Guid.ParseExact(id["job_".Length..], "N"));
            await Task.Delay(200);
        }

        await using var command = new NpgsqlCommand(
            "SELECT EXTRACT(EPOCH FROM (started_at - created_at)) * 1000 FROM jobs WHERE id = ANY(@ids) ORDER BY 1", connection);
        command.Parameters.AddWithValue("ids", ids.ToArray());
        var delays = new List<double>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                delays.Add(Convert.ToDouble(reader.GetValue(0), CultureInfo.InvariantCulture));
            }
        }

        foreach (var run in runs)
        {
            using var _ = await http.PostAsync($"/v1/jobs/{run.GetProperty("job_id").GetString()}/cancel", null);
        }

        foreach (var run in runs)
        {
            await BackwardBench.WaitAsync(http, run.GetProperty("job_id").GetString()!);
        }

        var p50 = delays[delays.Count / 2];
        Console.WriteLine();
        Console.WriteLine(F($"F1: project B's 10 backward jobs started {string.Join(", ", delays.Select(d => d.ToString("F1", CultureInfo.InvariantCulture)))} ms after they were queued; project A's training runs unfinished at each submission: {string.Join(", ", busy)}"));
        return busy.Min() < 20
            ? NotMeasured("F1", measure, "≤ 100 ms", F($"project A's runs finished too soon ({busy.Min()} of 20 left)"))
            : new Row("F1", measure, "≤ 100 ms", F($"{p50:F1} ms (max {delays[^1]:F1})"), p50 <= 100);
    }

    private static async Task<long> UnfinishedRunsAsync(NpgsqlConnection connection, List<JsonElement> runs)
    {
        await using var command = new NpgsqlCommand("SELECT count(*) FROM jobs WHERE id = ANY(@ids) AND status IN ('queued', 'running')", connection);
        command.Parameters.AddWithValue("ids", runs.Select(r => Guid.ParseExact(r.GetProperty("job_id").GetString()!["job_".Length..], "N")).ToArray());
        return (long)(await command.ExecuteScalarAsync())!;
    }

    // S2: one Worker (the service's own, default slots), 256 one-call jobs, the model allowing 64 calls at once.
    public static async Task<Row> OneWorkerThroughputAsync(HttpClient http)
    {
        const int jobs = 256;
        await using var fake = await LanguageModelBench.StartFakeAsync();
        var model = await LanguageModelBench.RegisterModelAsync(http, fake);
        await BurstAsync(http, model, 16);
        var rate = await BurstAsync(http, model, jobs);
        Console.WriteLine();
        Console.WriteLine(F($"S2: {jobs} backward jobs, one feedback call each at {Latency.TotalMilliseconds:F0} ms, model max_concurrency 64, one Worker: {rate:F1} jobs/s (first POST → last job seen succeeded), provider peak concurrency {fake.PeakConcurrency}"));
        return new Row("S2", "one Worker, 256 one-call jobs at 200 ms, provider concurrency 64 (first POST → last terminal seen)", "≥ 100 jobs/s",
            F($"{rate:F1} jobs/s"), rate >= 100);
    }

    // S1: the same burst with one Worker process, then two. The service's own Worker is paused; the
    // two measured Workers have 8 slots each, so each is bound by its slots and not by the two cores.
    public static async Task<Row> TwoWorkersAsync(HttpClient http, string database)
    {
        const int jobs = 160;
        const string measure = "job throughput, 2 Worker processes ÷ 1 (8 slots each), one-call jobs at 200 ms";
        var dll = Environment.GetEnvironmentVariable("AFNIO_BENCH_WORKER_DLL");
        var servicePid = ProcessProbe.Pid("AFNIO_BENCH_WORKER_PID");
        if (string.IsNullOrEmpty(dll) || !File.Exists(dll) || servicePid is null)
        {
            return NotMeasured("S1", measure, "≥ 1.8", "AFNIO_BENCH_WORKER_DLL or AFNIO_BENCH_WORKER_PID not set (bench/run.sh sets them)");
        }

        await using var fake = await LanguageModelBench.StartFakeAsync();
        var model = await LanguageModelBench.RegisterModelAsync(http, fake);
        Signal("STOP", servicePid.Value);
        Process? first = null, second = null;
        try
        {
            first = StartWorker(dll, database);
            await WaitForDispatchersAsync(database, 2, first);
            await BurstAsync(http, model, 16);
            var one = await BurstAsync(http, model, jobs);
            second = StartWorker(dll, database);
            await WaitForDispatchersAsync(database, 3, second);
            await BurstAsync(http, model, 16);
            var two = await BurstAsync(http, model, jobs);
            var shares = await SharesAsync(database, [first.Id, second.Id]);
            Console.WriteLine();
            Console.WriteLine(F($"S1: {jobs} one-call backward jobs submitted at once; one Worker (8 slots) {one:F1} jobs/s, two Workers {two:F1} jobs/s; jobs run by each of the two: {shares}"));
            return new Row("S1", measure, "≥ 1.8", F($"{two:F1} ÷ {one:F1} jobs/s = {two / one:F2}"), two / one >= 1.8);
        }
        finally
        {
            foreach (var worker in new[] { first, second }.OfType<Process>())
            {
                worker.Kill(entireProcessTree: true);
                await worker.WaitForExitAsync();
                worker.Dispose();
            }

            Signal("CONT", servicePid.Value);
        }
    }

    private static Process StartWorker(string dll, string database)
    {
        var start = new ProcessStartInfo("dotnet", [dll]) { WorkingDirectory = Path.GetDirectoryName(dll)!, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["ConnectionStrings__Postgres"] = database;
        start.Environment["Afnio__Jobs__Slots"] = "8";
        start.Environment["Afnio__Housekeeping__Schedule"] = "never";
        var worker = Process.Start(start)!;
        worker.OutputDataReceived += (_, _) => { };
        worker.ErrorDataReceived += (_, _) => { };
        worker.BeginOutputReadLine();
        worker.BeginErrorReadLine();
        return worker;
    }

    private static void Signal(string signal, int pid)
    {
        using var kill = Process.Start("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    // How many of the last burst's jobs each Worker ran (executed_by ends with the process id).
    private static async Task<string> SharesAsync(string database, int[] pids)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        var parts = new List<string>();
        foreach (var pid in pids)
        {
            await using var command = new NpgsqlCommand(
                "SELECT count(*) FROM jobs WHERE executed_by LIKE @suffix AND created_at > now() - interval '1 minute'", connection);
            command.Parameters.AddWithValue("suffix", $"%:{pid}");
            parts.Add(F($"pid {pid}: {(long)(await command.ExecuteScalarAsync())!}"));
        }

        return string.Join(", ", parts);
    }

    /// <summary>
    /// Builds one-call graphs, then submits a backward job for each at once and returns jobs per
    /// second from the first POST to the moment the last job is seen succeeded.
    /// </summary>
    public static async Task<double> BurstAsync(HttpClient http, string model, int jobs)
    {
        var roots = await OneCallRootsAsync(http, model, jobs);
        var watch = Stopwatch.StartNew();
        var ids = new string[jobs];
        await BenchProgram.RunQuietlyAsync(jobs, 16, async i =>
            ids[i] = (await BenchProgram.PostAsync(http, "/v1/backward", new { variables = new[] { roots[i] } })).GetProperty("id").GetString()!);
        // 16 long polls at once: a key may hold 20 (Afnio:Streams:MaxPerKey).
        await BenchProgram.RunQuietlyAsync(jobs, 16, i => SucceededAsync(http, ids[i]));
        return jobs / watch.Elapsed.TotalSeconds;
    }

    private static async Task<string[]> OneCallRootsAsync(HttpClient http, string model, int count)
    {
        var roots = new string[count];
        await BenchProgram.RunQuietlyAsync(count, 16, async i =>
        {
            var instruction = await BackwardBench.VariableAsync(http, $"instruction {i}", $"instruction {i}");
            roots[i] = BackwardBench.Id(await BenchProgram.PostAsync(http, "/v1/functions/chat_completion", new
            {
                model_id = model,
                messages = new[] { new { role = "user", content = new[] { instruction } } },
            }), "outputs");
        });
        return roots;
    }

    private static async Task SucceededAsync(HttpClient http, string jobId)
    {
        var done = await BackwardBench.WaitAsync(http, jobId);
        if (done.GetProperty("status").GetString() != "succeeded")
        {
            throw new InvalidOperationException($"a job did not succeed: {done}");
        }
    }

    // The API, the Worker and PostgreSQL (the postmaster, its exited children and its live ones).
    private static List<CpuProbe> CpuProbes() =>
    [
        new("API", () => ProcessCpu(ProcessProbe.Pid("AFNIO_BENCH_API_PID"), children: false)),
        new("Worker", () => ProcessCpu(ProcessProbe.Pid("AFNIO_BENCH_WORKER_PID"), children: false)),
        new("PostgreSQL", () => PostgresCpu(ProcessProbe.Pid("AFNIO_BENCH_PG_PID"))),
    ];

    private sealed record CpuProbe(string Name, Func<double?> Read)
    {
        public bool Known => Read() is not null;

        public double Cpu() => Read() ?? 0;
    }

    private static double? PostgresCpu(int? postmaster)
    {
        if (ProcessCpu(postmaster, children: true) is not { } own)
        {
            return null;
        }

        // A child that exits moves its time into the postmaster's children's counters, so the sum stays right.
        var live = 0.0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid) && Stat(pid) is { } fields
                && fields[1] == postmaster!.Value.ToString(CultureInfo.InvariantCulture))
            {
                live += Ticks(fields, 11) + Ticks(fields, 12);
            }
        }

        return own + (live / 100.0);
    }

    // utime + stime (and the reaped children's cutime + cstime), in seconds.
    private static double? ProcessCpu(int? pid, bool children)
    {
        if (pid is null || Stat(pid.Value) is not { } fields)
        {
            return null;
        }

        var ticks = Ticks(fields, 11) + Ticks(fields, 12) + (children ? Ticks(fields, 13) + Ticks(fields, 14) : 0);
        return ticks / 100.0; // USER_HZ
    }

    // The fields of /proc/PID/stat after the command name: state is [0], ppid [1], utime [11], stime [12].
    private static string[]? Stat(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static long Ticks(string[] fields, int index) => long.Parse(fields[index], CultureInfo.InvariantCulture);

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
