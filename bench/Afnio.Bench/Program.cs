using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Afnio.Bench;

/// <summary>
/// Load over loopback against a running Afnio: bounded request counts, fixed concurrency, and a
/// latency table at the end. Usage: Afnio.Bench BASE_URL ADMIN_KEY [REQUESTS] [CONCURRENCY].
/// </summary>
public static class BenchProgram
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: Afnio.Bench BASE_URL ADMIN_KEY [REQUESTS=2000] [CONCURRENCY=16]");
            return 2;
        }

        var baseUrl = new Uri(args[0]);
        if (args.Length > 2 && args[2] == "proof")
        {
            // Every claim with a Markdown table: bench/run.sh
            using var owner = Client(baseUrl, args[1]);
            using var project = await ProjectClientAsync(owner, baseUrl);
            using var other = await ProjectClientAsync(owner, baseUrl);
            return await ProofBench.RunAsync(project, other, args.Length > 3 ? args[3].Split(',').ToHashSet(StringComparer.Ordinal) : null);
        }

        if (args.Length > 2 && args[2] == "adversarial")
        {
            // The adversarial findings at full size (or scaled down): scripts/bench.sh adversarial [SCALE]
            using var attacks = Client(baseUrl, args[1]);
            return await AdversarialBench.RunAsync(attacks, baseUrl, args.Length > 3 ? double.Parse(args[3], CultureInfo.InvariantCulture) : 1.0);
        }

        if (args.Length > 2 && args[2] is "llm" or "optimizer")
        {
            // One language-model scenario only: scripts/bench.sh llm | optimizer
            using var owner = Client(baseUrl, args[1]);
            using var project = await ProjectClientAsync(owner, baseUrl);
            await (args[2] == "llm" ? LanguageModelBench.RunAsync(project) : OptimizerBench.RunAsync(project));
            return 0;
        }

        var requests = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2000;
        var concurrency = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 16;
        using var admin = Client(baseUrl, args[1]);
        using var http = await ProjectClientAsync(admin, baseUrl);

        Console.WriteLine($"Afnio benchmark: {requests} requests per scenario, concurrency {concurrency}, {baseUrl}");
        Console.WriteLine($"{"scenario",-34} {"req/s",8} {"p50 ms",8} {"p95 ms",8} {"p99 ms",8} {"max ms",8}");

        var ids = new string[requests];
        await RunAsync("create variable (POST)", requests, concurrency, async i =>
            ids[i] = (await PostAsync(http, "/v1/variables",
                new { data = new[] { 1, 2, 3.5 }, role = "bench input", requires_grad = true })).GetProperty("id").GetString()!);
        await RunAsync("retrieve variable (GET)", requests, concurrency, async i =>
            (await http.GetAsync($"/v1/variables/{ids[i]}")).EnsureSuccessStatusCode());
        await RunAsync("append gradient (POST grad)", requests, concurrency, async i =>
            await PostAsync(http, $"/v1/variables/{ids[i % 50]}/grad", new { variable_id = ids[(i + 1) % requests] }));
        await RunAsync("list page of 100 (GET list)", requests / 4, concurrency, async _ =>
            (await http.GetAsync("/v1/variables?limit=100")).EnsureSuccessStatusCode());
        async Task PostWithKeyAsync(int i)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/variables") { Content = JsonContent.Create(new { data = "x" }) };
            request.Headers.Add("Idempotency-Key", $"bench-{i}");
            (await http.SendAsync(request)).EnsureSuccessStatusCode();
        }

        await RunAsync("create with Idempotency-Key (POST)", requests, concurrency, PostWithKeyAsync);
        await RunAsync("idempotent replay (POST, same key)", requests, concurrency, PostWithKeyAsync);

        // A job's round trip: the API enqueues, a worker process picks it up and finishes it.
        var jobs = Math.Max(10, requests / 100);
        await RunAsync("job round trip (enqueue→done)", jobs, 1, async _ =>
        {
            var job = await PostAsync(admin, "/v1/admin/housekeeping", new { });
            var done = JsonDocument.Parse(await admin.GetStringAsync(
                $"/v1/admin/jobs/{job.GetProperty("id").GetString()}?wait_seconds=30")).RootElement;
            if (done.GetProperty("status").GetString() != "succeeded")
            {
                throw new InvalidOperationException($"job did not succeed: {done}");
            }
        });

        var nodes = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 10_000;
        await BackwardBench.RunAsync(http, nodes, concurrency);
        await BackwardBench.PickupLatencyAsync(http);
        await LanguageModelBench.RunAsync(http);
        await OptimizerBench.RunAsync(http);
        return 0;
    }

    internal static async Task RunAsync(string name, int count, int concurrency, Func<int, Task> call)
    {
        var latencies = new double[count];
        var next = -1;
        var total = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var watch = Stopwatch.StartNew();
                await call(i);
                latencies[i] = watch.Elapsed.TotalMilliseconds;
            }
        }));
        total.Stop();
        Array.Sort(latencies);
        double P(double q) => latencies[Math.Min(count - 1, (int)Math.Ceiling(q * count) - 1)];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name,-34} {count / total.Elapsed.TotalSeconds,8:F0} {P(0.50),8:F1} {P(0.95),8:F1} {P(0.99),8:F1} {latencies[^1],8:F1}"));
    }

    /// <summary>Runs <paramref name="call"/> for 0..count-1 at the given concurrency, printing nothing.</summary>
    internal static Task RunQuietlyAsync(int count, int concurrency, Func<int, Task> call)
    {
        var next = -1;
        return Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                await call(i);
            }
        }));
    }

    private static async Task<HttpClient> ProjectClientAsync(HttpClient admin, Uri baseUrl)
    {
        var project = await PostAsync(admin, "/v1/projects", new { name = "bench" });
        var key = await PostAsync(admin, $"/v1/projects/{project.GetProperty("id").GetString()}/api_keys", new { name = "bench" });
        return Client(baseUrl, key.GetProperty("key").GetString()!);
    }

    private static HttpClient Client(Uri baseUrl, string key)
    {
        var client = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    internal static async Task<JsonElement> PostAsync(HttpClient client, string path, object body)
    {
        using var response = await client.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        return response.IsSuccessStatusCode
            ? JsonDocument.Parse(text).RootElement.Clone()
            : throw new InvalidOperationException($"{(int)response.StatusCode} POST {path}: {text}");
    }
}
