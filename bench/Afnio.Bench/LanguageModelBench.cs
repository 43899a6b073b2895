using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Afnio.Api.Tests.Infrastructure;
using Npgsql;

namespace Afnio.Bench;

/// <summary>
/// A backward pass over 64 parallel chat-completion nodes (and chains of two), with a fake provider
/// that takes 200 ms per feedback call. Ideal wall time is depth × latency: the pass should overlap
/// every independent call. Reports wall ÷ (depth × latency); the goal is at most 1.10.
/// </summary>
internal static class LanguageModelBench
{
    private const int Width = 64;
    private static readonly TimeSpan Latency = TimeSpan.FromMilliseconds(200);

    public static async Task RunAsync(HttpClient http, int repetitions = 5)
    {
        await using var fake = await StartFakeAsync();
        var model = await RegisterModelAsync(http, fake);
        Console.WriteLine();
        Console.WriteLine($"backward through {Width} parallel chat_completion nodes, fake provider latency {Latency.TotalMilliseconds:F0} ms per feedback call, " +
            $"{repetitions} passes each after one warm-up pass (first connections, JIT)");
        Console.WriteLine($"{"depth",5} {"calls",6} {"job p50 ms",11} {"job max ms",11} {"ratio p50",10} {"ratio max",10} {"client p50 ms",14} {"peak",5}");
        foreach (var depth in new[] { 1, 2 })
        {
            var m = await MeasureAsync(http, fake, model, depth, repetitions);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{depth,5} {m.Calls,6} {m.JobP50,11:F1} {m.JobMax,11:F1} {m.JobP50 / m.Ideal,10:F3} {m.JobMax / m.Ideal,10:F3} {m.ClientP50,14:F1} {m.Peak,5}"));
        }

        Console.WriteLine("job ms: claimed by the worker → finished (jobs table); client ms: POST /v1/backward → job seen succeeded.");
        Console.WriteLine("last pass, ms after the job was claimed: " + await PhasesAsync("backward"));
    }

    /// <summary>The fake provider: 200 ms per feedback call, forward calls answered at once.</summary>
    public static async Task<FakeOpenAiServer> StartFakeAsync()
    {
        var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = request => request.GetProperty("messages").EnumerateArray()
            .Any(m => m.GetProperty("content").GetString()!.Contains("<VARIABLE>", StringComparison.Ordinal))
                ? FakeReply.Text("Be more specific.", Latency)
                : FakeReply.Text("an answer");
        return fake;
    }

    /// <summary>Registers a model client on the fake provider and makes it the project's backward model.</summary>
    public static async Task<string> RegisterModelAsync(HttpClient http, FakeOpenAiServer fake)
    {
        var model = (await BenchProgram.PostAsync(http, "/v1/models", new
        {
            provider = "openai",
            base_url = fake.Endpoint.ToString(),
            api_key = "sk-bench",
            default_completion_args = new { model = "gpt-4o-mini" },
            max_concurrency = Width,
        })).GetProperty("id").GetString()!;
        using var put = await http.PutAsync("/v1/backward_model", System.Net.Http.Json.JsonContent.Create(new { model_id = model, completion_args = new { model = "gpt-4o" } }));
        put.EnsureSuccessStatusCode();
        return model;
    }

    /// <summary>What <see cref="MeasureAsync"/> found: per-pass milliseconds and the ideal depth × latency.</summary>
    public sealed record Measurement(int Calls, double JobP50, double JobMax, double ClientP50, double Ideal, int Peak);

    /// <summary>One warm-up pass, then <paramref name="repetitions"/> measured passes of the given depth.</summary>
    public static async Task<Measurement> MeasureAsync(HttpClient http, FakeOpenAiServer fake, string model, int depth, int repetitions)
    {
        var jobMs = new List<double>();
        var clientMs = new List<double>();
        var peak = 0;
        var before = 0;
        for (var r = -1; r < repetitions; r++)
        {
            var (root, feedback) = await BuildAsync(http, model, depth);
            before = r == 0 ? fake.Requests.Count - (Width * depth) : before;
            var watch = Stopwatch.StartNew();
            var job = await BenchProgram.PostAsync(http, "/v1/backward", new { variables = new[] { root }, grad_variables = new[] { feedback } });
            var done = await BackwardBench.WaitAsync(http, job.GetProperty("id").GetString()!);
            var client = watch.Elapsed.TotalMilliseconds;
            if (done.GetProperty("status").GetString() != "succeeded")
            {
                throw new InvalidOperationException($"the pass did not succeed: {done}");
            }

            if (r >= 0)
            {
                clientMs.Add(client);
                jobMs.Add(await JobMillisecondsAsync(job.GetProperty("id").GetString()!));
                peak = Math.Max(peak, fake.PeakConcurrency);
            }
        }

        jobMs.Sort();
        clientMs.Sort();
        return new Measurement((fake.Requests.Count - before) / repetitions, jobMs[jobMs.Count / 2], jobMs[^1], clientMs[clientMs.Count / 2],
            depth * Latency.TotalMilliseconds, peak);
    }

    // sum over i of chat(chat(…chat(p_i))) with `depth` chat nodes per chain: the feedback calls of one
    // level are independent, so a pass needs `depth` rounds of provider latency.
    private static async Task<(string Root, string Feedback)> BuildAsync(HttpClient http, string model, int depth)
    {
        var outputs = new string[Width];
        await BenchProgram.RunQuietlyAsync(Width, 16, async i =>
        {
            var current = await BackwardBench.VariableAsync(http, $"instruction {i}", $"instruction {i}");
            for (var d = 0; d < depth; d++)
            {
                current = BackwardBench.Id(await BenchProgram.PostAsync(http, "/v1/functions/chat_completion", new
                {
                    model_id = model,
                    messages = new[] { new { role = "user", content = new[] { current } } },
                }), "outputs");
            }

            outputs[i] = current;
        });
        var root = BackwardBench.Id(await BenchProgram.PostAsync(http, "/v1/functions/sum", new { x = outputs }), "outputs");
        return (root, await BackwardBench.VariableAsync(http, "The answers are too vague.", "feedback"));
    }

    // Where the last pass spent its time: from the job's row, its journaled calls and its committed steps.
    internal static async Task<string> PhasesAsync(string jobType)
    {
        await using var connection = new NpgsqlConnection(Environment.GetEnvironmentVariable("AFNIO_BENCH_DATABASE"));
        await using var command = new NpgsqlCommand("""
            WITH j AS (SELECT id, started_at, finished_at FROM jobs WHERE type = @type ORDER BY id DESC LIMIT 1)
            SELECT EXTRACT(EPOCH FROM (MIN(c.created_at - c.latency_ms * interval '1 millisecond') - j.started_at)) * 1000,
                   EXTRACT(EPOCH FROM (MAX(c.created_at - c.latency_ms * interval '1 millisecond') - j.started_at)) * 1000,
                   EXTRACT(EPOCH FROM (MAX(c.created_at) - j.started_at)) * 1000,
                   (SELECT EXTRACT(EPOCH FROM (MAX(s.created_at) - j.started_at)) * 1000 FROM job_steps s WHERE s.job_id = j.id),
                   EXTRACT(EPOCH FROM (j.finished_at - j.started_at)) * 1000,
                   AVG(c.latency_ms)
            FROM j JOIN model_calls c ON c.job_id = j.id
            GROUP BY j.id, j.started_at, j.finished_at
            """, connection);
        command.Parameters.AddWithValue("type", jobType);
        await connection.OpenAsync();
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        double At(int i) => Convert.ToDouble(reader.GetValue(i), CultureInfo.InvariantCulture);
        return string.Create(CultureInfo.InvariantCulture,
            $"first call sent {At(0):F0}, last call sent {At(1):F0}, last reply journaled {At(2):F0}, last step committed {At(3):F0}, finished {At(4):F0}; mean call {At(5):F0}");
    }

    internal static async Task<double> JobMillisecondsAsync(string jobId)
    {
        var database = Environment.GetEnvironmentVariable("AFNIO_BENCH_DATABASE")
            ?? throw new InvalidOperationException("AFNIO_BENCH_DATABASE is not set (scripts/bench.sh sets it).");
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000 FROM jobs WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", Guid.ParseExact(jobId["job_".Length..], "N"));
        return Convert.ToDouble(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
