using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Tests.Infrastructure;
using Npgsql;

namespace Afnio.Bench;

/// <summary>
/// The adversarial findings at full size, against the service as the run script starts it: one
/// project attacks with an ordinary key while another project reads in a loop. Each row gives what
/// the attacker got back, the API's and the Worker's resident memory before and at its peak (sampled
/// every 20 ms from /proc), the API's CPU time, and the other project's latencies during the attack.
/// <c>scale</c> below 1 shrinks the sizes that grow memory (batches, parallel archives), to run the
/// same attacks against a build without the limits without an OOM kill of the machine.
/// </summary>
internal sealed class AdversarialBench
{
    private const int PromptKiB = 100;
    private static readonly string Big = new('x', PromptKiB * 1000);
    private static readonly string[] JobSucceeded = ["job.succeeded"];

    private readonly HttpClient _admin;
    private readonly Uri _baseUrl;
    private readonly double _scale;
    private readonly ProcessProbe _api = new("API", ProcessProbe.Pid("AFNIO_BENCH_API_PID"));
    private readonly ProcessProbe _worker = new("Worker", ProcessProbe.Pid("AFNIO_BENCH_WORKER_PID"));
    private readonly string? _database = Environment.GetEnvironmentVariable("AFNIO_BENCH_DATABASE");
    private HttpClient _attacker = null!;
    private string _attackerProject = null!;
    private Bystander _bystander = null!;
    private byte[] _bomb = [];
    private string _model = null!;

    private AdversarialBench(HttpClient admin, Uri baseUrl, double scale)
    {
        _admin = admin;
        _baseUrl = baseUrl;
        _scale = scale;
    }

    public static async Task<int> RunAsync(HttpClient admin, Uri baseUrl, double scale)
    {
        var bench = new AdversarialBench(admin, baseUrl, scale);
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = Reply;
        (bench._attacker, bench._attackerProject) = await bench.ProjectAsync("attacker");
        using var attacker = bench._attacker;
        var (other, _) = await bench.ProjectAsync("bystander");
        using var otherClient = other;
        bench._model = await LanguageModelBench.RegisterModelAsync(bench._attacker, fake);
        await using var bystander = await Bystander.StartAsync(other);
        bench._bystander = bystander;
        bench._bomb = ZipBomb();
        await Task.Delay(2000); // a baseline for the other project
        await bench.ReportAsync();
        return 0;
    }

    /// <summary>The fake provider: feedback for a prompt marked to stall waits 90 s, a prompt marked to fail is a 400, the rest answer at once.</summary>
    private static FakeReply Reply(JsonElement request)
    {
        var text = string.Concat(request.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("content").GetString()));
        return text.Contains("please-fail", StringComparison.Ordinal)
            ? new FakeReply { Status = 400, Body = """{"error":{"message":"context length exceeded","type":"invalid_request_error"}}""" }
            : text.Contains("<VARIABLE>", StringComparison.Ordinal) && text.Contains("please-stall", StringComparison.Ordinal)
                ? FakeReply.Text("Be more specific.", TimeSpan.FromSeconds(90))
                : FakeReply.Text("an answer");
    }

    private int Scaled(int size) => Math.Max(1, (int)Math.Round(size * _scale));

    private async Task ReportAsync()
    {
        Console.WriteLine($"adversarial scenarios at scale {_scale.ToString(CultureInfo.InvariantCulture)}, {_baseUrl}; " +
            $"memory of {(_api.Known ? "the API" : "(no API pid)")} and {(_worker.Known ? "the Worker" : "(no Worker pid)")} sampled every 20 ms");
        Console.WriteLine($"other project, before any attack: {_bystander.Summary(0, Bystander.Now)}");
        Console.WriteLine();
        Console.WriteLine("| scenario | attacker got | wall s | API MiB before → peak | Worker MiB before → peak | API CPU s | other project p50/p99/max |");
        Console.WriteLine("|---|---|---|---|---|---|---|");

        var eight = Scaled(8);
        var twenty = Scaled(20);
        await MeasureAsync($"1,000 × {{a}} template, {PromptKiB} KB input, batch of {eight}", () => PlaceholdersAsync(1000, eight));
        await MeasureAsync($"1,000 × {{a}} template, {PromptKiB} KB input, batch of {twenty}", () => PlaceholdersAsync(1000, twenty));
        await MeasureAsync($"256 × {{a}} (the cap), {PromptKiB} KB input, batch of {twenty}", () => PlaceholdersAsync(256, twenty));
        await MeasureAsync($"40 × {{a}}, {PromptKiB} KB input (4 MB per call, legal), batch of 3", () => PlaceholdersAsync(40, 3));
        await MeasureAsync($"training run: 1,000 × {{message}}, {PromptKiB} KB items, batch size {Scaled(4)}", () => TrainingAsync(Scaled(4)));
        await MeasureAsync("failed call with a 4 MB request (call journal row)", FailedCallAsync);
        await MeasureAsync("role of 100,000 characters", RoleAsync);
        await MeasureAsync("split of 40 KB into 20,000 parts, role of 20,000 characters", SplitAsync);
        await MeasureAsync("zip bomb: 16 × 64 MB entries in a 1 MB archive", () => ZipBombAsync(1));
        await MeasureAsync($"zip bomb, {Scaled(3)} in parallel", () => ZipBombAsync(Scaled(3)));
        await MeasureAsync("300 event streams of one project (15 keys × 20), held 20 s", () => StreamsAsync(15, 20));
        await MeasureAsync("300 event streams on one key", () => StreamsAsync(1, 300));
        await MeasureAsync("150 threads × 20 requests with random bearer keys", RandomKeysAsync);
        await MeasureAsync("regex ^(a+)+$ over 20,000 items", () => RegexAsync("^(a+)+$"));
        await MeasureAsync("regex ^(x?)(a+)+\\1$ (backtracking only) over 20,000 items", () => RegexAsync("^(x?)(a+)+\\1$"));
        await MeasureAsync("50 slow webhook endpoints, then the other project's webhook", WebhooksAsync);

        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"high-water marks (VmHWM) at the end: API {_api.HighWaterMiB():F0} MiB, Worker {_worker.HighWaterMiB():F0} MiB"));
        Console.WriteLine("other project: GET /v1/variables/{id} in a loop, latencies of the calls that started during the scenario.");
    }

    private async Task MeasureAsync(string name, Func<Task<string>> attack)
    {
        var apiCpu = _api.CpuSeconds();
        var from = Bystander.Now;
        string outcome;
        double[] before, peaks;
        await using (var sampler = new MemorySampler([_api, _worker]))
        {
            try
            {
                outcome = await attack();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or TimeoutException or InvalidOperationException or JsonException)
            {
                outcome = $"client error: {e.GetType().Name}: {Shorten(e.Message)}";
            }

            before = [.. sampler.Before];
            peaks = [.. sampler.Peaks];
        }

        var to = Bystander.Now;
        var wall = Stopwatch.GetElapsedTime(from).TotalSeconds;
        var alive = _api.Known ? "" : " (API pid unknown)";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {outcome}{alive} | {wall:F1} | {before[0]:F0} → {peaks[0]:F0} | {before[1]:F0} → {peaks[1]:F0} | {_api.CpuSeconds() - apiCpu:F1} | {_bystander.Summary(from, to)} |"));
        await Task.Delay(1000); // let the service settle between scenarios
    }

    private async Task<string> PlaceholdersAsync(int placeholders, int batch)
    {
        // placeholders in all: the 100 KB {a} placeholders - 1 times, and {b}, which makes the batch.
        var template = await VariableAsync(string.Concat(Enumerable.Repeat("{a}", placeholders - 1)) + "{b}", "user message template");
        using var response = await _attacker.PostAsJsonAsync("/v1/functions/chat_completion", new
        {
            model_id = _model,
            messages = new[] { new { role = "user", content = new[] { template } } },
            inputs = new { a = Big, b = Enumerable.Repeat("item", batch).ToArray() },
        });
        return await OutcomeAsync(response);
    }

    private async Task<string> TrainingAsync(int batchSize)
    {
        var program = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine("data", "facility-support", "program.json")))!;
        program["constants"]!["sentiment_user"]!["value"] = string.Concat(Enumerable.Repeat("{message}", 1000));
        var items = Enumerable.Range(0, 2 * batchSize + 2)
            .Select(i => new { fields = new { input = $"{i} {Big}" }, answer = """{"sentiment":"neutral"}""" });
        var dataset = await IdAsync("/v1/datasets", new { name = "amplifier", items });
        var programId = await IdAsync("/v1/programs", new { name = "amplifier", definition = program });
        var run = await BenchProgram.PostAsync(_attacker, "/v1/runs", new
        {
            program_id = programId,
            dataset = new { id = dataset, split = new { method = "sizes", sizes = new[] { 2 * batchSize, 1, 1 }, seed = 0 } },
            models = new { forward = _model, backward = _model, optimizer = _model },
            epochs = 1,
            batch_size = batchSize,
        });
        var job = await WaitForJobAsync(run.GetProperty("job_id").GetString()!, 600);
        return JobOutcome(job);
    }

    private async Task<string> FailedCallAsync()
    {
        var template = await VariableAsync("please-fail " + string.Concat(Enumerable.Repeat("{a}", 40)), "user message template");
        using var response = await _attacker.PostAsJsonAsync("/v1/functions/chat_completion", new
        {
            model_id = _model,
            messages = new[] { new { role = "user", content = new[] { template } } },
            inputs = new { a = Big },
        });
        var outcome = await OutcomeAsync(response);
        if (_database is null)
        {
            return outcome;
        }

        await using var connection = new NpgsqlConnection(_database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "select coalesce(max(octet_length(request::text)), 0) from model_calls where project_id = @p", connection);
        command.Parameters.AddWithValue("p", Guid.ParseExact(_attackerProject["proj_".Length..], "N"));
        var bytes = Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        return string.Create(CultureInfo.InvariantCulture, $"{outcome}; largest journal row {bytes / 1024.0:F0} KiB");
    }

    private async Task<string> RoleAsync()
    {
        using var response = await _attacker.PostAsJsonAsync("/v1/variables", new { data = "x", role = new string('r', 100_000) });
        return await OutcomeAsync(response);
    }

    private async Task<string> SplitAsync()
    {
        var text = string.Join(",", Enumerable.Repeat("a", 20_000));
        using var created = await _attacker.PostAsJsonAsync("/v1/variables", new { data = text, role = new string('r', 20_000), requires_grad = true });
        var roleOutcome = await OutcomeAsync(created);
        var id = created.IsSuccessStatusCode
            ? (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!
            : await IdAsync("/v1/variables", new { data = text, role = new string('r', 1000), requires_grad = true });
        using var split = await _attacker.PostAsJsonAsync("/v1/functions/split", new { x = id, sep = "," });
        return $"create: {roleOutcome}; split: {await OutcomeAsync(split)}";
    }

    private async Task<string> ZipBombAsync(int parallel)
    {
        var archive = _bomb;
        var outcomes = await Task.WhenAll(Enumerable.Range(0, parallel).Select(async _ =>
        {
            using var content = new ByteArrayContent(archive);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
            using var response = await _attacker.PostAsync("/v1/imports", content);
            return await OutcomeAsync(response);
        }));
        return string.Create(CultureInfo.InvariantCulture, $"{archive.Length / 1024} KiB archive: {Histogram(outcomes)}");
    }

    /// <summary>
    /// 15 entries of 64 MB of zeros, then a manifest that lists the first (as a program version's
    /// data.json, with its true checksum): 16 entries, the most an archive may have.
    /// </summary>
    private static byte[] ZipBomb()
    {
        var zeros = new byte[64 << 20];
        var hash = Convert.ToHexStringLower(SHA256.HashData(zeros));
        var names = Enumerable.Range(0, 15).Select(i => i == 0 ? "data.json" : $"padding{i}.bin").ToList();
        using var output = new MemoryStream();
        using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var name in names)
            {
                using var entry = zip.CreateEntry(name, CompressionLevel.SmallestSize).Open();
                entry.Write(zeros);
            }

            using var manifest = zip.CreateEntry("manifest.json").Open();
            manifest.Write(JsonSerializer.SerializeToUtf8Bytes(new
            {
                format = "afnio.archive",
                format_version = 1,
                kind = "program_version",
                created_at = 0,
                files = new Dictionary<string, string> { ["data.json"] = hash },
            }));
        }

        return output.ToArray();
    }

    private async Task<string> StreamsAsync(int keys, int perKey)
    {
        var job = await StalledJobAsync();
        var clients = new List<HttpClient>();
        var released = await StreamSlotsFreeAsync(job);
        var streams = new List<HttpResponseMessage>();
        try
        {
            for (var k = 0; k < keys; k++)
            {
                clients.Add(await KeyClientAsync());
            }

            var opened = await Task.WhenAll(clients.SelectMany(c => Enumerable.Repeat(c, perKey)).Select(async client =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{job}/events?stream=true");
                var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                lock (streams)
                {
                    streams.Add(response);
                }

                return await StatusAsync(response);
            }));
            var connections = await DatabaseConnectionsAsync();
            await Task.Delay(TimeSpan.FromSeconds(20));
            return $"{Histogram(opened)}; PostgreSQL connections {connections}; {released}";
        }
        finally
        {
            (await _attacker.PostAsJsonAsync($"/v1/jobs/{job}/cancel", new { })).Dispose();
            foreach (var stream in streams)
            {
                stream.Dispose();
            }

            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    /// <summary>
    /// Whether streams a client closed give their slots back: opens the attacker key's 20 streams,
    /// drops them, and opens 20 again.
    /// </summary>
    private async Task<string> StreamSlotsFreeAsync(string job)
    {
        async Task<string[]> OpenAndDropAsync() => await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
        {
            using var response = await _attacker.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{job}/events?stream=true"), HttpCompletionOption.ResponseHeadersRead);
            return await StatusAsync(response);
        }));

        var first = await OpenAndDropAsync();
        await Task.Delay(3000); // HttpClient drains a dropped HTTP/1.1 response for up to 2 s before it closes the connection
        var again = await OpenAndDropAsync();
        return $"20 streams closed by the client, 3 s later 20 again: {Histogram(first)}; {Histogram(again)}";
    }

    /// <summary>A backward pass that stays running: its one feedback call takes 90 s.</summary>
    private async Task<string> StalledJobAsync()
    {
        var prompt = await VariableAsync("please-stall", "system prompt", requiresGrad: true);
        var output = await BenchProgram.PostAsync(_attacker, "/v1/functions/chat_completion", new
        {
            model_id = _model,
            messages = new[] { new { role = "system", content = new[] { prompt } } },
        });
        var root = output.GetProperty("outputs")[0].GetProperty("id").GetString()!;
        var job = await BenchProgram.PostAsync(_attacker, "/v1/backward", new { variables = new[] { root } });
        var id = job.GetProperty("id").GetString()!;
        for (var i = 0; i < 300; i++)
        {
            var state = await _attacker.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}");
            if (state.GetProperty("status").GetString() == "running")
            {
                break;
            }

            await Task.Delay(100);
        }

        return id;
    }

    private async Task<string> RandomKeysAsync()
    {
        using var anonymous = new HttpClient { BaseAddress = _baseUrl, Timeout = TimeSpan.FromSeconds(60) };
        var statuses = new string[150 * 20];
        await BenchProgram.RunQuietlyAsync(statuses.Length, 150, async i =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/variables");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", $"afn_{Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', 'A').Replace('/', 'B')}");
            using var response = await anonymous.SendAsync(request);
            statuses[i] = await OutcomeAsync(response);
        });
        return Histogram(statuses);
    }

    private async Task<string> RegexAsync(string pattern)
    {
        const int items = 20_000;
        var prediction = await VariableAsync(Enumerable.Repeat(new string('a', 30) + "!", items).ToArray(), "answers", requiresGrad: true);
        using var response = await _attacker.PostAsJsonAsync("/v1/functions/deterministic_evaluator", new
        {
            prediction,
            target = Enumerable.Repeat("", items).ToArray(),
            eval_fn = new { name = "regex", pattern },
            eval_fn_purpose = "only a's",
        });
        var outcome = await OutcomeAsync(response);
        var cpu = _api.CpuSeconds();
        await Task.Delay(5000);
        return string.Create(CultureInfo.InvariantCulture, $"{outcome}; API CPU in the 5 s after the answer {_api.CpuSeconds() - cpu:F1} s");
    }

    private async Task<string> WebhooksAsync()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        for (var i = 0; i < 50; i++)
        {
            receiver.SetDefault($"slow{i}", new ReceiverReply(200, TimeSpan.FromSeconds(20)));
            await BenchProgram.PostAsync(_attacker, "/v1/webhook_endpoints", new { url = receiver.Url($"slow{i}"), events = JobSucceeded });
        }

        await SucceedingJobAsync(_attacker);
        await Task.Delay(2000); // the slow deliveries are in flight
        var (quiet, _) = await ProjectAsync("quiet webhooks");
        using var quietClient = quiet;
        await BenchProgram.PostAsync(quiet, "/v1/webhook_endpoints", new { url = receiver.Url("quiet"), events = JobSucceeded });
        var requested = DateTimeOffset.UtcNow;
        await SucceedingJobAsync(quiet);
        var arrived = await receiver.WaitForAsync("quiet", 1, seconds: 300);
        var delay = arrived[0].ReceivedAt - requested;
        return string.Create(CultureInfo.InvariantCulture,
            $"other project's webhook arrived {delay.TotalSeconds:F1} s after it asked for its job; slow endpoints received {receiver.Received.Count(r => r.Path.StartsWith("slow", StringComparison.Ordinal))} by then");
    }

    /// <summary>A backward pass without a language model; returns when the job has finished.</summary>
    private static async Task SucceedingJobAsync(HttpClient client)
    {
        var x = await IdAsync(client, "/v1/variables", new { data = "abc", role = "first input", requires_grad = true });
        var y = await IdAsync(client, "/v1/variables", new { data = "def", role = "second input" });
        var z = (await BenchProgram.PostAsync(client, "/v1/functions/add", new { x, y })).GetProperty("outputs")[0].GetProperty("id").GetString()!;
        var feedback = await IdAsync(client, "/v1/variables", new { data = "feedback", role = "feedback" });
        var job = await BenchProgram.PostAsync(client, "/v1/backward", new { variables = new[] { z }, grad_variables = new[] { feedback } });
        await client.GetFromJsonAsync<JsonElement>($"/v1/jobs/{job.GetProperty("id").GetString()}?wait_seconds=60");
    }

    private async Task<(HttpClient Client, string ProjectId)> ProjectAsync(string name)
    {
        var project = await BenchProgram.PostAsync(_admin, "/v1/projects", new { name });
        var id = project.GetProperty("id").GetString()!;
        return (await KeyClientAsync(id), id);
    }

    private Task<HttpClient> KeyClientAsync() => KeyClientAsync(_attackerProject);

    private async Task<HttpClient> KeyClientAsync(string projectId)
    {
        var key = await BenchProgram.PostAsync(_admin, $"/v1/projects/{projectId}/api_keys", new { name = "adversarial" });
        var client = new HttpClient { BaseAddress = _baseUrl, Timeout = TimeSpan.FromSeconds(300) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key.GetProperty("key").GetString());
        return client;
    }

    private Task<string> VariableAsync(object data, string role, bool requiresGrad = false) =>
        IdAsync("/v1/variables", new { data, role, requires_grad = requiresGrad });

    private Task<string> IdAsync(string path, object body) => IdAsync(_attacker, path, body);

    private static async Task<string> IdAsync(HttpClient client, string path, object body) =>
        (await BenchProgram.PostAsync(client, path, body)).GetProperty("id").GetString()!;

    private async Task<JsonElement> WaitForJobAsync(string id, int seconds)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var job = await _attacker.GetFromJsonAsync<JsonElement>($"/v1/jobs/{id}?wait_seconds=30");
            if (job.GetProperty("status").GetString() is "succeeded" or "failed" or "cancelled" || deadline.Elapsed.TotalSeconds > seconds)
            {
                return job;
            }
        }
    }

    private static string JobOutcome(JsonElement job) =>
        job.GetProperty("error") is { ValueKind: JsonValueKind.Object } error
            ? $"job {job.GetProperty("status").GetString()}: {error.GetProperty("code").GetString()}"
            : $"job {job.GetProperty("status").GetString()}";

    private async Task<string> DatabaseConnectionsAsync()
    {
        if (_database is null)
        {
            return "unknown";
        }

        await using var connection = new NpgsqlConnection(_database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select count(*) from pg_stat_activity where backend_type = 'client backend'", connection);
        return Convert.ToString(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture)!;
    }

    /// <summary>"413 prompt_too_large", or the status alone when the body has no problem code.</summary>
    private static async Task<string> OutcomeAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return Describe(response, text);
    }

    /// <summary>The status and problem code of a stream's response, without reading a successful stream's body.</summary>
    private static async Task<string> StatusAsync(HttpResponseMessage response) =>
        response.IsSuccessStatusCode ? $"{(int)response.StatusCode}" : Describe(response, await response.Content.ReadAsStringAsync());

    private static string Describe(HttpResponseMessage response, string text)
    {
        var status = (int)response.StatusCode;
        try
        {
            using var body = JsonDocument.Parse(text);
            if (body.RootElement.ValueKind == JsonValueKind.Object && body.RootElement.TryGetProperty("code", out var code))
            {
                return $"{status} {code.GetString()}";
            }
        }
        catch (JsonException)
        {
            // Not a problem document: the status says it.
        }

        return status >= 500 ? $"{status} {Shorten(text)}" : $"{status}";
    }

    private static string Histogram(IEnumerable<string> outcomes) =>
        string.Join(", ", outcomes.GroupBy(o => o).OrderByDescending(g => g.Count()).Select(g => $"{g.Count()} × {g.Key}"));

    private static string Shorten(string text) => text.Length <= 80 ? text.ReplaceLineEndings(" ") : text[..80].ReplaceLineEndings(" ") + "…";
}
