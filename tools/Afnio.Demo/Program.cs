using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Demo;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// The Facility Support sentiment optimization, end to end over Afnio's REST API: against OpenAI when
// OPENAI_API_KEY is set (afnio's quickstart settings), otherwise against a SIMULATED model.
var api = new Uri((Environment.GetEnvironmentVariable("AFNIO_URL") ?? "http://127.0.0.1:8080").TrimEnd('/') + "/");
var root = args.Length > 0 ? args[0] : Directory.GetCurrentDirectory();
var adminKey = Environment.GetEnvironmentVariable("Afnio__AdminKey") ?? File.ReadAllText(Path.Combine(root, ".afnio", "admin-key")).Trim();
var openAiKey = Environment.GetEnvironmentVariable("OPENAI_API_KEY");
var epochs = int.TryParse(Environment.GetEnvironmentVariable("DEMO_EPOCHS"), out var e) ? e : 5;
var simulated = string.IsNullOrEmpty(openAiKey);

WebApplication? simulator = null;
var received = System.Threading.Channels.Channel.CreateUnbounded<Webhook>();
string baseUrl;
if (simulated)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.UseUrls("http://127.0.0.1:0");
    simulator = builder.Build();
    simulator.MapPost("/v1/chat/completions", (JsonElement body) => Microsoft.AspNetCore.Http.Results.Json(SimulatedModel.Complete(body)));
    simulator.MapPost("/webhooks", async (Microsoft.AspNetCore.Http.HttpRequest request) =>
    {
        using var reader = new StreamReader(request.Body);
        received.Writer.TryWrite(new Webhook(request.Headers["webhook-id"].ToString(), request.Headers["webhook-timestamp"].ToString(),
            request.Headers["webhook-signature"].ToString(), await reader.ReadToEndAsync()));
        return Microsoft.AspNetCore.Http.Results.NoContent();
    });
    await simulator.StartAsync();
    baseUrl = simulator.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/v1";
    Console.WriteLine("""
        ************************************************************************
        *  SIMULATED MODEL: no OPENAI_API_KEY is set, so every model call goes  *
        *  to a few keyword rules on loopback, not to a language model. The     *
        *  figures below show the loop running; they mean nothing about TGD.   *
        ************************************************************************
        """);
}
else
{
    baseUrl = "https://api.openai.com/v1";
    Console.WriteLine("Using OpenAI (gpt-4.1-nano forward, gpt-5 backward and optimizer): this costs money.");
}

using var admin = Client(adminKey);
var project = await PostAsync(admin, "v1/projects", new { name = $"facility demo {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}" });
var key = await PostAsync(admin, $"v1/projects/{project["id"]}/api_keys", new { name = "demo" });
using var http = Client(key["key"]!.GetValue<string>());

var data = Path.Combine(root, "data", "facility-support");
var dataset = await PostAsync(http, "v1/datasets", new
{
    name = "facility support",
    items = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(data, "dataset.json"))),
});
var program = await PostAsync(http, "v1/programs", new
{
    name = "facility support analyzer",
    definition = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(data, "program.json"))),
});
Console.WriteLine($"Program {program["id"]}, production prompt v1:\n  {program["parameters"]!["sentiment_task"]!["value"]}\n");

async Task<string> ModelAsync(string name) => (await PostAsync(http, "v1/models", new
{
    provider = "openai",
    base_url = baseUrl,
    api_key = openAiKey ?? "simulated",
    default_completion_args = new { model = name },
    max_concurrency = 16,
}))["id"]!.GetValue<string>();
var forward = await ModelAsync("gpt-4.1-nano");
var reasoning = await ModelAsync("gpt-5");

var runBody = new
{
    name = "facility sentiment",
    program_id = program["id"]!.GetValue<string>(),
    dataset = new { id = dataset["id"]!.GetValue<string>(), split = new { method = "sizes", sizes = JsonNode.Parse("[66, 66, 68]"), seed = 0 } },
    models = new { forward, backward = reasoning, optimizer = reasoning },
    optimizer = new
    {
        momentum = 3,
        constraints = JsonNode.Parse("""
            ["The system prompt must not contain curly braces.", "The system prompt must ask for one of: positive, neutral, negative."]
            """),
    },
    epochs,
    batch_size = 33,
    seed = 42,
    promote = true,
    test = true,
};
var run = await PostAsync(http, "v1/runs", runBody);
var jobId = run["job_id"]!.GetValue<string>();
Console.WriteLine($"Run {run["id"]} started (job {jobId}); baseline validation of production, then {epochs} epochs of 2 batches.\n");

string? after = null;
while (true)
{
    var events = await GetAsync(http, $"v1/jobs/{jobId}/events?limit=100{(after is null ? string.Empty : $"&after={after}")}");
    foreach (var ev in events["data"]!.AsArray())
    {
        after = ev!["id"]!.GetValue<string>();
        var d = ev["data"]!;
        switch (ev["type"]!.GetValue<string>())
        {
            case "run.batch_completed":
                Console.WriteLine($"  epoch {d["epoch"]}/{d["epochs"]} batch {(int)d["batch"]! + 1}/{d["batches"]}: accuracy {N(d["metrics"]!["accuracy"])}, {d["calls"]} calls, ${N(d["cost_usd"], "0.0000")} so far, ETA {d["eta_seconds"]} s");
                break;
            case "run.epoch_completed":
                var m = d["metrics"]!;
                Console.WriteLine($"Epoch {d["epoch"]}: train_accuracy {N(m["train_accuracy"])}  val_accuracy {N(m["val_accuracy"])}  total_cost ${N(m["total_cost($)"], "0.0000")}\n");
                break;
        }
    }

    var job = await GetAsync(http, $"v1/jobs/{jobId}");
    var status = job["status"]!.GetValue<string>();
    if (status is "succeeded" or "failed" or "cancelled")
    {
        if (status != "succeeded")
        {
            Console.WriteLine($"The run's job {status}: {job["error"]}");
            return 1;
        }

        break;
    }

    await Task.Delay(1000);
}

var finished = await GetAsync(http, $"v1/runs/{run["id"]}");
var summary = finished["training"]!["summary"]!;
var usage = summary["usage"]!;
Console.WriteLine($"Run {finished["status"]}. Baseline val_accuracy {N(summary["baseline_score"])}; best {N(summary["best_score"])} at epoch {summary["best_epoch"]}.");
if (summary["test"] is JsonObject test)
{
    Console.WriteLine($"Test (best checkpoint): accuracy {N(test["test_accuracy"])}");
}

Console.WriteLine($"Calls: {usage["calls"]} in all; per training batch at most {usage["max_calls_per_batch"]} (bound B + 2P + 1 = {usage["call_bound_per_batch"]}); cost ${N(usage["cost_usd"], "0.0000")}.");
Console.WriteLine($"Promotion: {summary["promotion"]!["reason"]}");
var production = await GetAsync(http, $"v1/programs/{program["id"]}");
Console.WriteLine($"Production prompt v{production["version"]}:\n  {production["parameters"]!["sentiment_task"]!["value"]}");
// The unattended loop: the same training every night at 02:00 in Rome on the latest data, and a
// signed webhook when it promotes a better prompt. The simulated demo receives the webhooks itself
// and fires the schedule once now; with OpenAI, set DEMO_WEBHOOK_URL to receive them.
var hookUrl = simulated ? $"{baseUrl[..^"/v1".Length]}/webhooks" : Environment.GetEnvironmentVariable("DEMO_WEBHOOK_URL");
if (hookUrl is { Length: > 0 })
{
    var endpoint = await PostAsync(http, "v1/webhook_endpoints", new
    {
        url = hookUrl,
        events = JsonNode.Parse("[\"schedule.fired\", \"run.succeeded\", \"run.failed\", \"program.promoted\"]"),
        description = "facility demo",
    });
    var secret = endpoint["secret"]!.GetValue<string>();
    Console.WriteLine($"\nWebhook endpoint {endpoint["id"]} -> {hookUrl} (secret {secret[..10]}…, shown once)");
    var template = JsonNode.Parse(JsonSerializer.Serialize(runBody))!.AsObject();
    template.Remove("name");
    var schedule = await PostAsync(http, "v1/schedules", new { name = "nightly facility", cron = "0 2 * * *", timezone = "Europe/Rome", run_template = template });
    Console.WriteLine($"Schedule {schedule["id"]}: 0 2 * * * in Europe/Rome, next run at {DateTimeOffset.FromUnixTimeSeconds(schedule["next_run_at"]!.GetValue<long>()):u}");
    if (simulated)
    {
        var firing = await PostAsync(http, $"v1/schedules/{schedule["id"]}/trigger", new { });
        Console.WriteLine($"Fired it once now: run {firing["run_id"]}. Webhooks received (signatures checked here with HMAC-SHA256):");
        using var wait = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        await foreach (var hook in received.Reader.ReadAllAsync(wait.Token))
        {
            var body = JsonNode.Parse(hook.Body)!;
            var type = body["type"]!.GetValue<string>();
            Console.WriteLine($"  {type,-17} {body["data"]!.ToJsonString()}  signature {(hook.Verify(secret) ? "valid" : "INVALID")}");
            if (type is "run.succeeded" or "run.failed")
            {
                break;
            }
        }
    }
}

if (simulated)
{
    Console.WriteLine("\n(SIMULATED MODEL: the figures above are not meaningful.)");
    await simulator!.StopAsync();
}

return 0;

static string N(JsonNode? value, string format = "0.000") =>
    value is null ? "-" : value.GetValue<double>().ToString(format, System.Globalization.CultureInfo.InvariantCulture);

HttpClient Client(string bearer)
{
    var client = new HttpClient { BaseAddress = api, Timeout = TimeSpan.FromMinutes(5) };
    client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
    return client;
}

static async Task<JsonNode> PostAsync(HttpClient client, string path, object body)
{
    using var response = await client.PostAsJsonAsync(path, body);
    var text = await response.Content.ReadAsStringAsync();
    return response.IsSuccessStatusCode ? JsonNode.Parse(text)! : throw new InvalidOperationException($"POST {path}: {(int)response.StatusCode} {text}");
}

static async Task<JsonNode> GetAsync(HttpClient client, string path)
{
    using var response = await client.GetAsync(path);
    var text = await response.Content.ReadAsStringAsync();
    return response.IsSuccessStatusCode ? JsonNode.Parse(text)! : throw new InvalidOperationException($"GET {path}: {(int)response.StatusCode} {text}");
}

/// <summary>A webhook as it arrived, verified per Standard Webhooks with the BCL's HMAC.</summary>
internal sealed record Webhook(string Id, string Timestamp, string Signature, string Body)
{
    public bool Verify(string secret)
    {
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var expected = Convert.ToBase64String(System.Security.Cryptography.HMACSHA256.HashData(key, System.Text.Encoding.UTF8.GetBytes($"{Id}.{Timestamp}.{Body}")));
        return Signature.Split(' ').Any(s => s == $"v1,{expected}");
    }
}
