using System.Collections.Immutable;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Afnio.Api.Datasets;
using Afnio.Api.Infrastructure;
using Afnio.Data.LanguageModels;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using CsCheck;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using Xunit.Abstractions;

namespace Afnio.Api.Tests.Fuzz;

/// <summary>
/// The fuzz suite also counts rows that belong to no project (projects, system jobs), so it runs
/// alone, after the test classes that run in parallel.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class Fuzzing
{
    public const string Name = "fuzzing from the OpenAPI document";
}

/// <summary>
/// Property-based fuzzing of every operation of the OpenAPI document that takes a body (POST, PUT,
/// PATCH) or query parameters (GET): hostile bodies, paths, queries, headers and credentials,
/// generated from the operation's schema by CsCheck. Every answer must be a 2xx or a 4xx
/// ProblemDetails with a string <c>code</c>; a 4xx, and any GET, must change nothing.
/// <c>AFNIO_FUZZ_ITERATIONS</c> sets the requests per operation (default 25) and
/// <c>AFNIO_FUZZ_SEED</c> the seed (a number or a CsCheck seed; fixed by default).
/// </summary>
[Collection(Fuzzing.Name)]
public sealed class OpenApiFuzzTests(AfnioApiFactory app, ITestOutputHelper output) : IClassFixture<AfnioApiFactory>
{
    /// <summary>
    /// One scene for the class (building one takes about a second): operations are fuzzed one after
    /// another, and each request is checked against a snapshot taken just before it.
    /// </summary>
    private static readonly ConditionalWeakTable<AfnioApiFactory, Task<FuzzScene>> Scenes = [];

    /// <summary>The served document, read once: generating it takes a few hundred milliseconds.</summary>
    private static readonly ConditionalWeakTable<AfnioApiFactory, Task<JsonNode>> Documents = [];

    /// <summary>The operations to fuzz, from the committed document (OpenApiTests keeps it equal to the live one).</summary>
    public static TheoryData<string, string> Operations
    {
        get
        {
            var document = JsonNode.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "openapi.json")))!;
            var data = new TheoryData<string, string>();
            foreach (var operation in FuzzOperation.All(document))
            {
                data.Add(operation.Method, operation.Path);
            }

            return data;
        }
    }

    [Fact]
    public async Task Document_HasEnoughOperations_AndTheFuzzerCoversEachOne()
    {
        var live = FuzzOperation.All(await GetDocumentAsync());
        var names = live.Select(o => o.ToString()).ToList();

        var writes = live.Count(o => o.Method != "GET");
        var withBody = live.Count(o => o.Body != BodyKind.None);
        Assert.True(writes > 30, $"only {writes} POST, PUT and PATCH operations: {string.Join(", ", names)}");
        Assert.True(withBody >= 25, $"only {withBody} operations with a request body: {string.Join(", ", names)}");
        Assert.True(live.Count > 50, $"only {live.Count} operations to fuzz: {string.Join(", ", names)}");
        Assert.Contains("POST /v1/variables", names);
        Assert.Contains("PATCH /v1/variables/{id}", names);
        Assert.Contains("GET /v1/variables", names);
        Assert.Contains("POST /v1/projects", names);
        var createVariable = live.Single(o => o.ToString() == "POST /v1/variables");
        Assert.Equal(BodyKind.Json, createVariable.Body);
        Assert.NotNull(createVariable.Schema["properties"]?["requires_grad"]);
        Assert.Equal(names, Operations.Select(row => $"{row[0]} {row[1]}"));
    }

    [Theory]
    [MemberData(nameof(Operations))]
    public async Task Operation_AnswersHostileRequestsWithA4xxProblem_AndChangesNothing(string method, string path)
    {
        var settings = FuzzSettings.FromEnvironment();
        var operation = FuzzOperation.All(await GetDocumentAsync()).Single(o => o.Method == method && o.Path == path);
        var scene = await Scenes.GetValue(app, FuzzScene.CreateAsync);
        await using var state = await ProjectState.OpenAsync(app.ConnectionString);
        var requests = new RequestGenerator(operation, scene, BodyLimit(operation)).Requests;
        var findings = new Findings();
        var sent = 0;

        // One sample of the whole sequence: CsCheck's seed then fixes every request, not only the first.
        await requests.Array[settings.Iterations].SampleAsync(async sequence =>
        {
            var before = await state.TakeAsync(scene.ProjectId);
            foreach (var request in sequence)
            {
                var response = await FuzzResponse.SendAsync(scene.ClientFor(operation, request.Caller), request);
                var after = await state.TakeAsync(scene.ProjectId);
                findings.Check(operation, sent, request, response, before, after);
                before = after;
                sent++;
            }
        }, seed: settings.Seed, iter: 1, threads: 1, print: sequence => $"{sequence.Length} requests");

        output.WriteLine($"{operation}: {sent} requests, seed {settings.SeedSetting}; answers: {findings.Answers}");
        Assert.Equal(settings.Iterations, sent);
        Assert.True(findings.Count == 0, findings.Report(operation, settings));
    }

    private Task<JsonNode> GetDocumentAsync() => Documents.GetValue(app, static async app =>
    {
        using var client = app.CreateClient();
        return JsonNode.Parse(await client.GetStringAsync("/swagger/v1/swagger.json"))!;
    });

    /// <summary>The body limit the server enforces on this route: uploads have a larger one.</summary>
    private long BodyLimit(FuzzOperation operation)
    {
        var options = app.Services.GetRequiredService<IOptions<AfnioOptions>>().Value;
        var upload = app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().Any(e =>
            string.Equals(e.RoutePattern.RawText?.TrimEnd('/'), operation.Path, StringComparison.OrdinalIgnoreCase)
            && e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods.Contains(operation.Method) == true
            && e.Metadata.GetMetadata<LargeBody>() is not null);
        return upload ? options.MaxUploadBytes : options.MaxRequestBodyBytes;
    }
}

internal sealed record FuzzSettings(int Iterations, string Seed, string SeedSetting)
{
    private const ulong DefaultSeed = 20_260_101;

    public static FuzzSettings FromEnvironment()
    {
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("AFNIO_FUZZ_ITERATIONS"), out var n) && n >= 0 ? n : 25;
        var setting = Environment.GetEnvironmentVariable("AFNIO_FUZZ_SEED")?.Trim();
        var seed = string.IsNullOrEmpty(setting) ? new PCG(1, DefaultSeed).ToString()
            : ulong.TryParse(setting, CultureInfo.InvariantCulture, out var number) ? new PCG(1, number).ToString()
            : setting;
        return new(iterations, seed, string.IsNullOrEmpty(setting) ? DefaultSeed.ToString(CultureInfo.InvariantCulture) : setting);
    }
}

internal enum BodyKind
{
    None,
    Json,
    Binary,
}

/// <summary>One operation of the OpenAPI document, with its schemas resolved against the document.</summary>
internal sealed record FuzzOperation(string Method, string Path, JsonObject Spec, JsonNode Document)
{
    public static IReadOnlyList<FuzzOperation> All(JsonNode document) =>
    [
        .. document["paths"]!.AsObject()
            .SelectMany(path => path.Value!.AsObject()
                .Where(op => op.Key is "get" or "post" or "put" or "patch" && op.Value is JsonObject)
                .Select(op => new FuzzOperation(op.Key.ToUpperInvariant(), path.Key, op.Value!.AsObject(), document)))
            .Where(o => o.Method != "GET" || o.Parameters("query").Any()),
    ];

    public IEnumerable<JsonObject> Parameters(string location) =>
        (Spec["parameters"] as JsonArray ?? []).OfType<JsonObject>().Where(p => (string?)p["in"] == location);

    public IReadOnlyList<string> ContentTypes =>
        Spec["requestBody"]?["content"] is JsonObject content ? [.. content.Select(c => c.Key)] : [];

    public string? JsonContentType => ContentTypes.FirstOrDefault(t => t.Contains("json", StringComparison.Ordinal));

    public BodyKind Body => ContentTypes.Count == 0 ? BodyKind.None : JsonContentType is null ? BodyKind.Binary : BodyKind.Json;

    /// <summary>The JSON body's schema; empty when the document allows any JSON value.</summary>
    public JsonObject Schema => Resolve(JsonContentType is { } type ? Spec["requestBody"]!["content"]![type]!["schema"] : null);

    /// <summary>Project, user, organization and admin management answer only to the admin key.</summary>
    public bool IsAdmin => new[] { "/v1/projects", "/v1/admin/", "/v1/users", "/v1/organizations" }
        .Any(prefix => Path.StartsWith(prefix, StringComparison.Ordinal));

    /// <summary>
    /// Long polls and event streams hold the connection until the resource finishes, by design; the
    /// fuzzer gives these operations unknown ids only, so an answer never waits for a job that no worker runs.
    /// </summary>
    public bool Holds => Parameters("query").Any(p => (string?)p["name"] is "wait_seconds" or "stream");

    public JsonObject Resolve(JsonNode? schema)
    {
        for (var i = 0; i < 16 && schema?["$ref"] is JsonValue reference; i++)
        {
            schema = Document["components"]?["schemas"]?[reference.GetValue<string>().Split('/')[^1]];
        }

        return schema as JsonObject ?? [];
    }

    public override string ToString() => $"{Method} {Path}";
}

internal enum Caller
{
    Owner,
    Anonymous,
    OtherRole,
    Stranger,
}

/// <summary>
/// A project with one resource of each cheap kind, whose ids fill paths and id fields, and whose
/// creation bodies are the valid-looking values that the fuzzer mutates.
/// </summary>
internal sealed class FuzzScene
{
    /// <summary>A public address written as such: accepted without a DNS lookup, and never called (no worker runs here).</summary>
    private const string PublicAddress = "https://93.184.216.34";

    private readonly Dictionary<string, List<string>> _ids = [];
    private readonly Dictionary<string, List<string>> _samples = [];
    private readonly List<byte[]> _archives = [];
    private readonly TestProject _project;
    private readonly HttpClient _admin;
    private readonly HttpClient _anonymous;
    private readonly HttpClient _stranger;

    private FuzzScene(AfnioApiFactory app, TestProject project)
    {
        _project = project;
        _admin = app.CreateAdminClient();
        _anonymous = app.CreateClient();
        _stranger = app.CreateClientWithKey("afn_" + new string('x', 43));
        ProjectId = PrefixedId.TryParse(PrefixedId.Project, project.Id, out var id) ? id : throw new InvalidOperationException(project.Id);
        // The registry needs a project's models only to run language-model operations; the names are the same for any.
        Functions = [.. OperationRegistry.Standard(app.Services.GetRequiredService<ModelGateway>().ForProject(ProjectId)).Names.Order(StringComparer.Ordinal)];
    }

    public Guid ProjectId { get; }

    public IReadOnlyList<string> Functions { get; }

    /// <summary>Exports of this project's program and optimizer: valid archives to mutate.</summary>
    public IReadOnlyList<byte[]> Archives => _archives;

    public static async Task<FuzzScene> CreateAsync(AfnioApiFactory app)
    {
        var scene = new FuzzScene(app, await app.CreateProjectAsync("fuzz"));
        await scene.BuildAsync();
        return scene;
    }

    private async Task BuildAsync()
    {
        Remember(PrefixedId.Project, _project.Id);
        Remember(PrefixedId.ApiKey, _project.KeyId);
        await BuildAccountsAsync();
        var first = await CreateAsync("/v1/variables", PrefixedId.Variable, new { data = "alpha", role = "first input", requires_grad = true });
        await CreateAsync("/v1/variables", PrefixedId.Variable, new { data = new[] { 1, 2, 3 }, role = "numbers", requires_grad = false });
        var prompt = await CreateAsync("/v1/variables", PrefixedId.Variable, new { data = "Answer briefly.", role = "system prompt", is_parameter = true });
        var sum = await PostAsync("/v1/functions/add", new { x = first, y = prompt });
        var output = sum.GetProperty("outputs")[0].GetProperty("id").GetString()!;
        Remember(PrefixedId.Variable, output);
        Remember(PrefixedId.Node, sum.GetProperty("node").GetProperty("id").GetString()!);

        var model = await CreateAsync("/v1/models", PrefixedId.Model, new
        {
            provider = "openai",
            name = "fuzz",
            base_url = PublicAddress + "/v1",
            api_key = "sk-fuzz-0123456789",
            default_completion_args = new { model = "gpt-4o", temperature = 0 },
            max_concurrency = 2,
        });
        await PutAsync("/v1/backward_model", new { model_id = model, completion_args = new { temperature = 0 } });
        Remember(PrefixedId.Job, (await PostAsync("/v1/backward", new { variables = new[] { output }, retain_graph = true })).GetProperty("id").GetString()!);

        var dataset = await CreateAsync("/v1/datasets", PrefixedId.Dataset, new { name = "facility support", description = "fuzz", items = FacilityTraining.Items });
        var items = await _project.Client.GetJsonAsync($"/v1/datasets/{dataset}/items?limit=2");
        foreach (var item in items.GetProperty("data").EnumerateArray())
        {
            Remember(PrefixedId.DatasetItem, item.GetProperty("id").GetString()!);
        }

        var program = await CreateAsync("/v1/programs", PrefixedId.Program, new { name = "facility", description = "fuzz", definition = FacilityTraining.Program });
        await CreateAsync("/v1/runs", PrefixedId.Run, new { name = "client run", description = "fuzz", status = "running" });
        var optimizer = await CreateAsync("/v1/optimizers", PrefixedId.Optimizer, new { type = "tgd", @params = new[] { prompt }, model_id = model, momentum = 2 });
        await CreateAsync("/v1/schedules", PrefixedId.Schedule, new
        {
            name = "nightly",
            description = "fuzz",
            cron = "0 2 * * *",
            timezone = "UTC",
            enabled = false,
            run_template = new
            {
                program_id = program,
                dataset = new { id = dataset, split = new { method = "sizes", sizes = new[] { 66, 66, 68 }, seed = 0 } },
                models = new { forward = model, backward = model, optimizer = model },
                epochs = 1,
                batch_size = 33,
            },
        });
        await CreateAsync("/v1/webhook_endpoints", PrefixedId.WebhookEndpoint, new { url = PublicAddress + "/hook", events = new[] { "*" }, description = "fuzz" });
        await CreateAsync("/v1/runs/" + _ids[PrefixedId.Run][0] + "/metrics", PrefixedId.Metric, new { name = "accuracy", value = 0.5, step = 1 });

        foreach (var evt in (await _project.Client.GetJsonAsync("/v1/events?limit=3")).GetProperty("data").EnumerateArray())
        {
            Remember(PrefixedId.Event, evt.GetProperty("id").GetString()!);
        }

        _archives.Add(await _project.Client.GetByteArrayAsync($"/v1/programs/{program}/export"));
        _archives.Add(await _project.Client.GetByteArrayAsync($"/v1/optimizers/{optimizer}/export"));
    }

    public HttpClient ClientFor(FuzzOperation operation, Caller caller) => caller switch
    {
        Caller.Owner => operation.IsAdmin ? _admin : _project.Client,
        Caller.OtherRole => operation.IsAdmin ? _project.Client : _admin,
        Caller.Anonymous => _anonymous,
        _ => _stranger,
    };

    public IReadOnlyList<string> IdsOf(string kind) => _ids.TryGetValue(kind, out var ids) ? ids : [];

    public IReadOnlyList<string> AllIds => [.. _ids.Values.SelectMany(ids => ids)];

    /// <summary>Values this scene's own creation bodies gave to fields of this name, as JSON.</summary>
    public IReadOnlyList<string> SamplesOf(string name) => _samples.TryGetValue(name, out var samples) ? samples : [];

    /// <summary>A user with a key and an organization the user belongs to, made with the admin key.</summary>
    private async Task BuildAccountsAsync()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var user = await PostAsAdminAsync("/v1/users", PrefixedId.User, new { username = "fuzz-" + suffix, email = $"fuzz-{suffix}@example.com" });
        await PostAsAdminAsync($"/v1/users/{user}/api_keys", PrefixedId.UserApiKey, new { name = "fuzz" });
        var organization = await PostAsAdminAsync("/v1/organizations", PrefixedId.Organization, new { slug = "fuzz-org-" + suffix, display_name = "Fuzz" });
        Sample(JsonSerializer.SerializeToNode(new { user_id = user }));
        await _admin.PostJsonAsync($"/v1/organizations/{organization}/members", new { user_id = user });
    }

    private async Task<string> PostAsAdminAsync(string path, string kind, object body)
    {
        Sample(JsonSerializer.SerializeToNode(body));
        var id = (await _admin.PostJsonAsync(path, body)).GetProperty("id").GetString()!;
        Remember(kind, id);
        return id;
    }

    private async Task<string> CreateAsync(string path, string kind, object body)
    {
        var id = (await PostAsync(path, body)).GetProperty("id").GetString()!;
        Remember(kind, id);
        return id;
    }

    private Task<JsonElement> PostAsync(string path, object body)
    {
        Sample(JsonSerializer.SerializeToNode(body));
        return _project.Client.PostJsonAsync(path, body);
    }

    private Task<JsonElement> PutAsync(string path, object body)
    {
        Sample(JsonSerializer.SerializeToNode(body));
        return _project.Client.PutJsonAsync(path, body);
    }

    private void Remember(string kind, string id)
    {
        if (!_ids.TryGetValue(kind, out var ids))
        {
            _ids[kind] = ids = [];
        }

        ids.Add(id);
    }

    private void Sample(JsonNode? node)
    {
        if (node is JsonArray array)
        {
            foreach (var item in array.Take(3))
            {
                Sample(item);
            }
        }

        if (node is not JsonObject obj)
        {
            return;
        }

        foreach (var (name, value) in obj)
        {
            if (!_samples.TryGetValue(name, out var samples))
            {
                _samples[name] = samples = [];
            }

            // Long lists (a dataset's items) are cut to three: valid-looking bodies stay small.
            var json = (value is JsonArray { Count: > 3 } list ? new JsonArray([.. list.Take(3).Select(item => item?.DeepClone())]) : value)?.ToJsonString() ?? "null";
            if (samples.Count < 4 && !samples.Contains(json))
            {
                samples.Add(json);
            }

            Sample(value);
        }
    }
}

internal readonly record struct Field(string Name, string Json);

/// <summary>CsCheck generators of requests to one operation, guided by its schema.</summary>
internal sealed class RequestGenerator
{
    private const string AnyKind = "*";
    private const int MaxDepth = 3;
    private const string KnownLookingHex = "0000000000007000800000000000000a";

    /// <summary>Collections in paths, by the kind of id that follows them.</summary>
    private static readonly Dictionary<string, string> CollectionKinds = new(StringComparer.Ordinal)
    {
        ["projects"] = PrefixedId.Project,
        ["api_keys"] = PrefixedId.ApiKey,
        ["variables"] = PrefixedId.Variable,
        ["grad"] = PrefixedId.Variable,
        ["nodes"] = PrefixedId.Node,
        ["jobs"] = PrefixedId.Job,
        ["events"] = PrefixedId.Event,
        ["models"] = PrefixedId.Model,
        ["optimizers"] = PrefixedId.Optimizer,
        ["datasets"] = PrefixedId.Dataset,
        ["items"] = PrefixedId.DatasetItem,
        ["runs"] = PrefixedId.Run,
        ["metrics"] = PrefixedId.Metric,
        ["programs"] = PrefixedId.Program,
        ["checkpoints"] = PrefixedId.Checkpoint,
        ["schedules"] = PrefixedId.Schedule,
        ["firings"] = PrefixedId.ScheduleFiring,
        ["webhook_endpoints"] = PrefixedId.WebhookEndpoint,
        ["webhook_deliveries"] = PrefixedId.WebhookDelivery,
        ["deliveries"] = PrefixedId.WebhookDelivery,
        ["users"] = PrefixedId.User,
        ["members"] = PrefixedId.User,
        ["organizations"] = PrefixedId.Organization,
    };

    /// <summary>Fields (and parameters) that hold ids, by kind; a nested <c>id</c> takes its parent's name.</summary>
    private static readonly Dictionary<string, string> FieldKinds = new(StringComparer.Ordinal)
    {
        ["variable_id"] = PrefixedId.Variable,
        ["source_id"] = PrefixedId.Variable,
        ["snapshot_id"] = PrefixedId.Variable,
        ["gradient_ids"] = PrefixedId.Variable,
        ["variables"] = PrefixedId.Variable,
        ["grad_variables"] = PrefixedId.Variable,
        ["inputs"] = PrefixedId.Variable,
        ["params"] = PrefixedId.Variable,
        ["content"] = PrefixedId.Variable,
        ["x"] = PrefixedId.Variable,
        ["y"] = PrefixedId.Variable,
        ["prediction"] = PrefixedId.Variable,
        ["target"] = PrefixedId.Variable,
        ["program_id"] = PrefixedId.Program,
        ["model_id"] = PrefixedId.Model,
        ["user_id"] = PrefixedId.User,
        ["userId"] = PrefixedId.User,
        ["models"] = PrefixedId.Model,
        ["optimizer_id"] = PrefixedId.Optimizer,
        ["from_checkpoint_id"] = PrefixedId.Checkpoint,
        ["checkpoint_id"] = PrefixedId.Checkpoint,
        ["dataset"] = PrefixedId.Dataset,
        ["dataset_id"] = PrefixedId.Dataset,
        ["job_id"] = PrefixedId.Job,
        ["run_id"] = PrefixedId.Run,
        ["keyId"] = PrefixedId.ApiKey,
        ["project_id"] = PrefixedId.Project,
    };

    private static readonly string[] AllKinds = [.. CollectionKinds.Values.Distinct()];

    /// <summary>
    /// The document gives a function's body as any JSON value; these are the arguments the built-in
    /// operations take (Afnio.Domain/Autodiff/Ops), so valid-looking calls reach the operations.
    /// </summary>
    private static readonly JsonObject FunctionArguments = JsonNode.Parse("""
        {
          "type": "object",
          "properties": {
            "x": {}, "y": {}, "sep": { "type": "string" }, "maxsplit": { "type": "integer" },
            "prediction": {}, "target": {}, "eval_fn": {}, "eval_fn_purpose": { "type": "string" },
            "reduction": {}, "reduction_fn_purpose": { "type": "string" }, "success": {}, "eval_mode": { "type": "boolean" },
            "model_id": { "type": "string" }, "completion_args": { "type": "object", "additionalProperties": {} },
            "messages": { "type": "array", "items": { "type": "object", "properties": {
              "role": { "type": "string", "description": "`system` or `user`" },
              "content": { "type": "array", "items": { "type": "string" } } } } },
            "inputs": { "type": "object", "additionalProperties": {} },
            "grad_enabled": { "type": "boolean" }
          }
        }
        """)!.AsObject();

    /// <summary>The arguments each built-in function takes, of those above; any function also takes grad_enabled.</summary>
    private static readonly Dictionary<string, string[]> FunctionArgumentNames = new(StringComparer.Ordinal)
    {
        ["add"] = ["x", "y"],
        ["sum"] = ["x"],
        ["split"] = ["x", "sep", "maxsplit"],
        ["exact_match_evaluator"] = ["prediction", "target", "reduction", "reduction_fn_purpose", "success"],
        ["deterministic_evaluator"] = ["prediction", "target", "reduction", "reduction_fn_purpose", "success", "eval_fn", "eval_fn_purpose"],
        ["chat_completion"] = ["model_id", "messages", "inputs", "completion_args"],
        ["lm_judge_evaluator"] = ["model_id", "messages", "inputs", "prediction", "target", "eval_mode", "reduction", "reduction_fn_purpose", "completion_args"],
    };

    /// <summary>Text that breaks parsers, validators, storage or prompts (encoded into JSON strings as is).</summary>
    private static readonly string[] HostileTexts =
    [
        "", " ", "\t\r\n", "\0", "a\0b", "\u0001\u001f", "\u007f", "\u2028\u2029", "\uFEFF", "\uFFFE\uFFFF", "\uD800", "\uDC00",
        "a\uD800b", "\uDBFF\uDBFF", "\u202Egnp.exe", "e\u0301\u0301\u0301", "😀", "Ω≈ç√∫", "'; DROP TABLE variables; --",
        "\" OR 1=1 --", "{{ input }}", "{input}", "{", "}}", "${jndi:ldap://127.0.0.1/a}", "<script>alert(1)</script>",
        "../../../etc/passwd", "C:\\Windows\\system32", "%00", "%s%s%s%n", "null", "NaN", "Infinity", "-1", "0", "1e999", "true",
        "* * * * *", "@reboot", "0 0 31 2 *", "61 * * * *", "*/0 * * * *", "Mars/Olympus_Mons", "UTC+25", "Etc/GMT+99",
        "http://127.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://0x7f000001/", "file:///etc/passwd",
        "javascript:alert(1)", "https://93.184.216.34/hook", "ftp://93.184.216.34/", "https://user:pass@93.184.216.34:0/",
        "proj_" + KnownLookingHex, "var_zzzz", "var_", "VAR_" + KnownLookingHex.ToUpperInvariant(), new string('x', 300),
    ];

    /// <summary>JSON values that are valid JSON but hostile: extreme numbers, invalid escapes, NULs, odd shapes.</summary>
    private static readonly string[] HostileFragments =
    [
        "null", "true", "false", "0", "-0", "-0.0", "1.5", "-1", "1e999", "-1e999", "1e-999", "1E400", "9223372036854775808",
        "-9223372036854775809", "18446744073709551616", "2147483648", "-2147483649", "123456789012345678901234567890.5",
        "0.30000000000000004", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"1\"", "\"true\"", "\"\"", "[]", "{}", "[null]",
        "[[]]", "[{}]", "{\"\":null}", "[1,\"a\",true,null,{}]", "{\"a\":{\"b\":{\"c\":[1]}}}", "\"\\ud800\"", "\"\\udfff\"",
        "\"\\ud800\\ud800\"", "\"a\\u0000b\"", "\"\\u0000\"", "\"\\\\u0000\"", "{\"a\":1,\"a\":2}", "[{\"a\":1,\"a\":{}}]",
    ];

    /// <summary>Tokens that are not JSON: the document around them becomes invalid.</summary>
    private static readonly string[] BrokenFragments =
    [
        "NaN", "Infinity", "-Infinity", "01", "+1", ".5", "1.", "0x10", "1e", "undefined", "'single'", "\"\\x41\"", "\"\\u12\"",
        "\"\\uZZZZ\"", "\"a\u0001b\"", "\"unterminated", "[1,", "{\"a\"", "tru",
    ];

    private static readonly string[] NotJson =
    [
        "not json at all", "{", "}", "[", "]", "{\"a\":}", "{\"a\" 1}", "{'a': 1}", "{a: 1}", "[1,2,]", "<xml/>", "a=1&b=2",
        "null null", "\"unterminated", "{\"a\":\"\\u12\"}", "{\"a\":\"\\x00\"}", "--\r\n", "\0", "{\"\0\":1}",
    ];

    private static readonly string[] Breakers = [",", ":", "{", "}", "[", "]", "\"", "\\", "\0", "\u0001", "'", "NaN", "//", "/*", "\n"];

    private static readonly string[] UnknownFields =
    [
        "colour", "id", "object", "created_at", "is_leaf", "grad_fn", "grad", "output_nr", "retain_grad", "__proto__",
        "constructor", "$type", "$id", "$ref", "", " ", "\0", "DATA", "Role", "a.b", "items[0]",
    ];

    private static readonly string?[] WrongContentTypes =
    [
        null, "", "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=fuzz",
        "application/json; charset=utf-16", "application/json; charset=iso-8859-1", "application/json; charset=nope",
        "application/merge-patch+json", "application/octet-stream", "text/json", "*/*", "application/json, text/plain",
    ];

    private static readonly byte[][] InvalidUtf8 =
    [
        [0xFF], [0xC3, 0x28], [0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xFE, 0xFF],
    ];

    private static readonly string[] GarbagePathValues =
    [
        "", " ", "..", ".", "null", "0", "-1", "😀", "a/b", "a?b=c", "a#b", "\0", "var_", "var_zzzz", "var-" + KnownLookingHex,
        "var_" + KnownLookingHex[..^1], "var_" + KnownLookingHex + "0", "VAR_" + KnownLookingHex.ToUpperInvariant(),
        "var_00000000-0000-7000-8000-00000000000a", KnownLookingHex, new string('x', 2000),
    ];

    /// <summary>Already percent-encoded: malformed escapes and encoded invalid UTF-8.</summary>
    private static readonly string[] RawUrlValues = ["%zz", "%", "%0", "%00", "+", "a+b", "%E2%82", "%C0%AF", "%ED%A0%80", "%FF", "%2e%2e", "%2F"];

    private static readonly string[] HostileQueryTexts =
    [
        "-1", "0", "101", "2147483648", "-2147483649", "99999999999999999999", "1e3", "1.5", " 1", "0x10", "NaN", "-0", "１",
        "true", "yes", "asc ", "DESC", "desc,asc", "", " ",
    ];

    private static readonly string[] Accepts = ["text/html", "application/xml", "*/*", "text/event-stream", "application/problem+json", "image/png;q=0.1", "garbage"];

    private static readonly string[] Urls =
    [
        "https://93.184.216.34/hook", "https://93.184.216.34/v1", "http://127.0.0.1:8080/", "http://10.0.0.1/", "http://169.254.169.254/",
        "https://[::1]/", "https://example.invalid/hook", "ftp://93.184.216.34/", "not a url", "//93.184.216.34/", "https://",
    ];

    private static readonly string[] Crons = ["0 2 * * *", "* * * * *", "0 * * * * *", "@hourly", "*/5 * * * *", "0 0 30 2 *", "99 * * * *", "", "* * *"];

    private static readonly string[] Zones = ["UTC", "Europe/Rome", "America/New_York", "Mars/Olympus_Mons", "+02:00", "Etc/GMT-14", ""];

    private readonly FuzzOperation _operation;
    private readonly FuzzScene _scene;
    private readonly long _bodyLimit;

    /// <summary>
    /// Function calls never name a registered model: a valid call would reach the model provider over
    /// the network. Everywhere else a model id is only stored.
    /// </summary>
    private readonly bool _allowModels;

    public RequestGenerator(FuzzOperation operation, FuzzScene scene, long bodyLimit)
    {
        _operation = operation;
        _scene = scene;
        _bodyLimit = bodyLimit;
        _allowModels = !operation.Path.StartsWith("/v1/functions/", StringComparison.Ordinal);
        var bodies = BodyGen(operation.Schema.Count > 0 ? operation.Schema : FunctionArguments);
        // A function's body is generated for the function the path names, when it is a known one.
        var functionBodies = _allowModels ? [] : scene.Functions.ToDictionary(f => f, f => BodyGen(ArgumentsOf(f)));
        Requests =
            from caller in Gen.Frequency((40, Caller.Owner), (1, Caller.Anonymous), (1, Caller.OtherRole), (1, Caller.Stranger))
            from path in PathGen()
            from query in QueryGen()
            from headers in HeaderGen()
            from body in functionBodies.GetValueOrDefault(path.Split('/')[^1]) ?? bodies
            select new FuzzRequest(caller, operation.Method, path + query, headers, body);
    }

    public Gen<FuzzRequest> Requests { get; }

    private static string Quote(string text)
    {
        var json = new StringBuilder(text.Length + 2).Append('"');
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c is '"' or '\\')
            {
                json.Append('\\').Append(c);
            }
            else if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                json.Append(c).Append(text[++i]);
            }
            else if (c < 0x20 || char.IsSurrogate(c))
            {
                // Lone surrogates stay as escapes: valid JSON text, invalid UTF-16.
                json.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            }
            else
            {
                json.Append(c);
            }
        }

        return json.Append('"').ToString();
    }

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Render(IEnumerable<Field> fields) => "{" + string.Join(',', fields.Select(f => Quote(f.Name) + ":" + f.Json)) + "}";

    /// <summary>Percent-encodes the UTF-8 of <paramref name="text"/> (lone surrogates become U+FFFD), keeping unreserved characters.</summary>
    private static string Escape(string text)
    {
        var escaped = new StringBuilder();
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            if (b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9' or (byte)'-' or (byte)'_' or (byte)'.' or (byte)'~')
            {
                escaped.Append((char)b);
            }
            else
            {
                escaped.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return escaped.ToString();
    }

    private static Gen<ImmutableList<T>> Sequence<T>(IEnumerable<Gen<T>> gens) =>
        gens.Aggregate(Gen.Const(ImmutableList<T>.Empty), (all, next) => all.SelectMany(list => next.Select(list.Add)));

    private static Gen<string> AlphaNumeric(int min, int max) => Gen.Char.AlphaNumeric.Array[min, max].Select(chars => new string(chars));

    private static Func<ImmutableList<Field>, ImmutableList<Field>> Mutation(Func<ImmutableList<Field>, ImmutableList<Field>> mutate) => mutate;

    private static ImmutableList<Field> Set(ImmutableList<Field> fields, string name, string json)
    {
        var at = fields.FindIndex(f => f.Name == name);
        return at < 0 ? fields.Add(new Field(name, json)) : fields.SetItem(at, new Field(name, json));
    }

    private static List<(string Name, JsonNode? Schema)> Properties(JsonObject schema) =>
        schema["properties"] is JsonObject properties ? [.. properties.Select(p => (p.Key, p.Value))] : [];

    /// <summary>Words the description gives as values, in backticks or quotes.</summary>
    private static string[] Literals(JsonNode? description) =>
        description is null ? [] : [.. Regex.Matches(description.GetValue<string>(), "[`\"]([A-Za-z0-9_./+-]{1,40})[`\"]").Select(m => m.Groups[1].Value).Distinct()];

    private static string? KindOf(string name, string parent) =>
        name == "id"
            ? FieldKinds.GetValueOrDefault(parent) ?? CollectionKinds.GetValueOrDefault(parent)
            : FieldKinds.GetValueOrDefault(name)
              ?? (name.EndsWith("_id", StringComparison.Ordinal) || name.EndsWith("_ids", StringComparison.Ordinal) ? AnyKind : null);

    /// <summary>JSON nested around System.Text.Json's default limit (64 levels), or 200 to 3,000 levels deep; sometimes unclosed.</summary>
    private static Gen<string> Deep =>
        from depth in Gen.Frequency((1, Gen.Int[60, 70]), (3, Gen.Int[200, 3000]))
        from shape in Gen.Int[0, 3]
        select shape switch
        {
            0 => new string('[', depth) + new string(']', depth),
            1 => string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth),
            2 => string.Concat(Enumerable.Repeat("[{\"a\":", depth)) + "null" + string.Concat(Enumerable.Repeat("}]", depth)),
            _ => new string('[', depth),
        };

    /// <summary>Values of 100 KB and more (still under the body limit on their own).</summary>
    private static Gen<string> Huge => Gen.Frequency(
        (3, Gen.Int[100_000, 400_000].Select(n => "\"" + new string('x', n) + "\"")),
        (1, Gen.Int[30_000, 100_000].Select(n => "\"" + string.Concat(Enumerable.Repeat("😀", n)) + "\"")),
        (1, Gen.Int[20_000, 60_000].Select(n => "\"" + string.Concat(Enumerable.Repeat("\\u0000", n)) + "\"")),
        (1, Gen.Int[20_000, 100_000].Select(n => "[" + string.Join(',', Enumerable.Repeat("1", n)) + "]")),
        (1, Gen.Int[5_000, 20_000].Select(n => "[" + string.Join(',', Enumerable.Repeat($"\"var_{KnownLookingHex}\"", n)) + "]")));

    private static Gen<string> WrongType(string? type) => type switch
    {
        "string" => Gen.OneOf("1", "true", "[]", "{}", "[\"a\"]", "1e999", "-0"),
        "integer" => Gen.OneOf("\"1\"", "1.5", "1e999", "2147483648", "-2147483649", "9223372036854775808", "true", "[1]", "{}", "\"NaN\"", "-0", "1.0", "1e2"),
        "number" => Gen.OneOf("\"1.5\"", "1e999", "-1e999", "\"NaN\"", "\"Infinity\"", "true", "[1]", "1e-400"),
        "boolean" => Gen.OneOf("\"true\"", "1", "0", "\"yes\"", "[true]", "null"),
        "array" => Gen.OneOf("\"a\"", "{}", "1", "[[[]]]", "[null]", "[{}]", "[1,\"a\",true]"),
        "object" => Gen.OneOf("[]", "\"{}\"", "1", "[{}]", "true"),
        _ => Gen.OneOf(HostileFragments),
    };

    private static FuzzBody Json(string text) => FuzzBody.Text(text, "application/json");

    private static byte[] Rezip(byte[] archive, int pick, byte[] content)
    {
        using var source = new ZipArchive(new MemoryStream(archive), ZipArchiveMode.Read);
        var names = source.Entries.Select(e => e.FullName).Append("../escape.json").Append("").ToList();
        var target = names[pick % names.Count];
        using var output = new MemoryStream();
        using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in source.Entries.Where(e => e.FullName != target))
            {
                using var from = entry.Open();
                using var to = zip.CreateEntry(entry.FullName).Open();
                from.CopyTo(to);
            }

            using var replaced = zip.CreateEntry(target.Length == 0 ? "/" : target).Open();
            replaced.Write(content);
        }

        return output.ToArray();
    }

    private Gen<string> PathGen()
    {
        var segments = _operation.Path.Split('/');
        var parts = segments.Select((segment, i) => segment.StartsWith('{')
            ? PathValue(segment.Trim('{', '}'), segments[i - 1])
            : Gen.Const(segment));
        return Sequence(parts).Select(p => string.Join('/', p));
    }

    /// <summary>An existing resource of the caller most of the time; otherwise unknown, wrong-kind or malformed ids.</summary>
    private Gen<string> PathValue(string name, string collection)
    {
        // The in-memory test server throws on a NUL in the path before the API sees it (Kestrel answers 400 itself).
        var garbage = Gen.Frequency(
            (3, Gen.OneOf(GarbagePathValues.Where(v => !v.Contains('\0', StringComparison.Ordinal)).ToArray()).Select(Escape)),
            (1, Gen.OneOf(RawUrlValues.Where(v => v != "%00").ToArray())));
        if (collection == "functions")
        {
            return Gen.Frequency((8, Gen.OneOf(_scene.Functions.ToArray())), (1, garbage), (1, UnknownId(AnyKind)));
        }

        if ((name == "id" ? CollectionKinds.GetValueOrDefault(collection) : KindOf(name, collection)) is not { } kind)
        {
            return Gen.Frequency((6, Gen.Int[0, 4].Select(i => Number(i))), (1, Gen.OneOf("-1", "2147483648", "abc", "1.5")), (1, garbage));
        }

        var existing = _operation.Holds ? [] : _scene.IdsOf(kind);
        var choices = new List<(int, IGen<string>)> { (3, UnknownId(kind)), (2, WrongKindId(kind)), (2, garbage) };
        if (existing.Count > 0)
        {
            choices.Add((12, Gen.OneOf(existing.ToArray())));
        }

        return Gen.Frequency(choices.ToArray());
    }

    private Gen<string> QueryGen()
    {
        var collection = _operation.Path.Split('/').Last(s => !s.StartsWith('{'));
        var pairs = _operation.Parameters("query").Select(p =>
        {
            var name = (string)p["name"]!;
            return Gen.Frequency(
                (3, Gen.Const((string?)null)),
                (3, QueryValue(p, collection).Select(v => (string?)$"{name}={Escape(v)}")),
                (2, HostileQueryValue().Select(v => (string?)$"{name}={v}")));
        }).ToList();
        var first = pairs.Count > 0 ? (string)_operation.Parameters("query").First()["name"]! : "limit";
        string?[] odd = ["colour=red", $"{first}=1&{first}=2", "=", "&", "a[]=1", "%00=1", first, $"{first}="];
        pairs.Add(Gen.Frequency((8, Gen.Const((string?)null)), (1, Gen.OneOf(odd))));
        return Sequence(pairs).Select(list => list.Any(x => x is not null) ? "?" + string.Join('&', list.Where(x => x is not null)) : "");
    }

    private Gen<string> QueryValue(JsonObject parameter, string collection)
    {
        var name = (string)parameter["name"]!;
        var schema = _operation.Resolve(parameter["schema"]);
        var literals = Literals(parameter["description"]);
        switch ((string?)schema["type"])
        {
            case "integer" when (string?)schema["format"] == "int64":
                return Gen.Long[0, 4_000_000_000].Select(Number);
            case "integer":
                return Gen.Frequency((4, Gen.Int[1, 100]), (1, Gen.Int[-100, 0]), (1, Gen.Int[101, 100_000])).Select(i => Number(i));
            case "boolean":
                return Gen.OneOf("true", "false");
        }

        var kind = name == "after" ? CollectionKinds.GetValueOrDefault(collection, AnyKind) : KindOf(name, collection);
        var choices = new List<(int, IGen<string>)> { (2, AlphaNumeric(0, 16)) };
        if (kind is not null)
        {
            choices.Add((6, Id(kind)));
        }

        if (literals.Length > 0)
        {
            choices.Add((6, Gen.OneOf(literals)));
        }

        return Gen.Frequency(choices.ToArray());
    }

    private Gen<string> HostileQueryValue() => Gen.Frequency(
        (3, Gen.OneOf(HostileTexts).Select(Escape)),
        (3, Gen.OneOf(HostileQueryTexts).Select(Escape)),
        (2, Gen.OneOf(RawUrlValues)),
        (1, Gen.Int[1000, 8000].Select(n => new string('x', n))),
        (2, Id(AnyKind).Select(Escape)));

    private Gen<IReadOnlyList<KeyValuePair<string, string>>> HeaderGen()
    {
        var headers = _operation.Parameters("header").Select(p =>
        {
            var name = (string)p["name"]!;
            return Gen.Frequency(
                (6, Gen.Const((KeyValuePair<string, string>?)null)),
                (2, AlphaNumeric(1, 40).Select(v => (KeyValuePair<string, string>?)new(name, v))),
                (1, Gen.OneOf("", " ", "a b", new string('k', 300), "\t", "%00", "null", "fuzz-key").Select(v => (KeyValuePair<string, string>?)new(name, v))));
        }).ToList();
        headers.Add(Gen.Frequency(
            (9, Gen.Const((KeyValuePair<string, string>?)null)),
            (1, Gen.OneOf(Accepts).Select(v => (KeyValuePair<string, string>?)new("Accept", v)))));
        return Sequence(headers).Select(list => (IReadOnlyList<KeyValuePair<string, string>>)[.. list.Where(h => h is not null).Select(h => h!.Value)]);
    }

    private static JsonObject ArgumentsOf(string function)
    {
        var names = FunctionArgumentNames.GetValueOrDefault(function, []).Append("grad_enabled");
        var properties = FunctionArguments["properties"]!.AsObject();
        return new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject(names.Where(properties.ContainsKey).Select(n => KeyValuePair.Create(n, properties[n]?.DeepClone()))),
        };
    }

    private Gen<FuzzBody> BodyGen(JsonObject schema) => _operation.Body switch
    {
        BodyKind.Json => JsonBodies(schema),
        BodyKind.Binary => ArchiveBodies(),
        _ when _operation.Method == "GET" => Gen.Const(FuzzBody.Absent),
        _ => Gen.Frequency(
            (8, Gen.Const(FuzzBody.Absent)),
            (2, Gen.Const(Json("{}"))),
            (1, Gen.OneOf(HostileFragments).Select(Json)),
            (1, Gen.OneOf(NotJson).Select(Json)),
            (1, Gen.Const(FuzzBody.Text("x", "text/plain"))),
            (1, Oversize())),
    };

    private Gen<FuzzBody> JsonBodies(JsonObject schema)
    {
        var valid = ObjectValue(schema, "", 0);
        var choices = new List<(int, IGen<FuzzBody>)>
        {
            (14, MutatedObject(schema, "", 0).Select(Json)),
            (3, valid.Select(Json)),
            (2, TopLevelWrongKind(valid).Select(Json)),
            (3, Broken(valid).Select(Json)),
            (1, Deep.Select(Json)),
            (1, Gen.OneOf("", " ", "\r\n").Select(Json)),
            (1, Gen.Const(FuzzBody.Absent)),
            (1, Oversize()),
            (1, from key in Gen.OneOf(Properties(schema).Select(p => p.Name).DefaultIfEmpty("data").ToArray())
                from bad in Gen.OneOf(InvalidUtf8)
                select new FuzzBody([.. Encoding.UTF8.GetBytes("{" + Quote(key) + ":\"a"), .. bad, .. "b\"}"u8], "application/json")),
            (2, from body in valid from type in Gen.OneOf(WrongContentTypes) select FuzzBody.Text(body, type)),
        };
        var others = _operation.ContentTypes.Where(t => t != _operation.JsonContentType).ToArray();
        if (others.Length > 0)
        {
            choices.Add((2, from type in Gen.OneOf(others) from lines in Lines() select FuzzBody.Text(lines, type)));
        }

        return
            from body in Gen.Frequency(choices.ToArray())
            from chunked in Gen.Int[0, 19]
            select chunked == 0 && body.Present ? body with { Chunked = true } : body;
    }

    private Gen<FuzzBody> ArchiveBodies()
    {
        var type = _operation.ContentTypes[0];
        var archive = Gen.OneOf(_scene.Archives.ToArray());
        var content = Gen.Frequency(
            (3, Gen.OneOf(HostileFragments)),
            (2, Gen.OneOf(NotJson)),
            (1, Deep),
            (1, Huge),
            (2, Any("data", "", 0)));
        return Gen.Frequency(
            (2, archive.Select(a => new FuzzBody(a, type))),
            (3, from a in archive from cut in Gen.Int[0, int.MaxValue] select new FuzzBody(a[..(cut % a.Length)], type)),
            (3, from a in archive
                from at in Gen.Int[0, int.MaxValue]
                from value in Gen.Byte
                select new FuzzBody([.. a[..(at % a.Length)], value, .. a[(at % a.Length + 1)..]], type)),
            (4, from a in archive
                from pick in Gen.Int[0, 100]
                from json in content
                select new FuzzBody(Rezip(a, pick, Encoding.UTF8.GetBytes(json)), type)),
            (1, Gen.Byte.Array[0, 512].Select(bytes => new FuzzBody(bytes, type))),
            (1, Gen.Const(FuzzBody.Absent)),
            (1, Gen.Const(Json("{}"))),
            (1, from a in archive from wrong in Gen.OneOf(WrongContentTypes) select new FuzzBody(a, wrong)),
            (1, Oversize()));
    }

    /// <summary>A body one byte to 64 KB over the route's limit, declared or chunked.</summary>
    private Gen<FuzzBody> Oversize() =>
        from extra in Gen.Int[1, 64 * 1024]
        from chunked in Gen.Bool
        select new FuzzBody([], "application/json", _bodyLimit + extra, chunked);

    private Gen<string> Lines() =>
        Gen.Frequency(
            (3, Gen.Select(AlphaNumeric(1, 8), Any("item", "", MaxDepth)).Array[1, 3].Select(p => Render(p.Select(f => new Field(f.Item1, f.Item2))))),
            (1, Any("item", "", 0)),
            (1, Gen.OneOf(HostileFragments)),
            (1, Gen.OneOf(BrokenFragments)),
            (1, Huge))
        .Array[1, 4].Select(lines => string.Join('\n', lines));

    private static Gen<string> TopLevelWrongKind(Gen<string> valid) => Gen.Frequency(
        (1, Gen.Const("[]")),
        (1, valid.Select(v => "[" + v + "]")),
        (1, valid.Select(v => "[" + v + "," + v + "]")),
        (3, Gen.OneOf(HostileFragments)),
        (1, Gen.OneOf(HostileTexts).Select(Quote)));

    private static Gen<string> Broken(Gen<string> valid) => Gen.Frequency(
        (4, from v in valid from cut in Gen.Int[0, int.MaxValue] select v[..(cut % v.Length)]),
        (2, from v in valid from at in Gen.Int[0, int.MaxValue] from token in Gen.OneOf(Breakers) select v.Insert(at % (v.Length + 1), token)),
        (2, Gen.OneOf(NotJson)),
        (1, valid.Select(v => "\uFEFF" + v)),
        (1, valid.Select(v => v + v)),
        (1, valid.Select(v => "// comment\n" + v)),
        (1, valid.Select(v => v.Length > 2 ? v[..^1] + ",}" : v + ",")),
        (1, from v in valid from token in Gen.OneOf(BrokenFragments) select v.Length > 2 ? v[..^1] + ",\"broken\":" + token + "}" : "{\"broken\":" + token + "}"));

    /// <summary>An object valid-looking for <paramref name="schema"/>, then changed in one place.</summary>
    private Gen<string> MutatedObject(JsonObject schema, string objectName, int depth)
    {
        var properties = Properties(schema);
        var mutations = new List<(int, IGen<Func<ImmutableList<Field>, ImmutableList<Field>>>)>
        {
            (2, from name in Gen.Frequency((3, Gen.OneOf(UnknownFields)), (1, AlphaNumeric(1, 12)))
                from value in Gen.Frequency((2, Gen.OneOf(HostileFragments)), (1, Any(name, objectName, MaxDepth)))
                select Mutation(fields => fields.Add(new Field(name, value)))),
        };
        if (properties.Count > 0)
        {
            var hostile = properties.Select(p => Hostile(p.Schema, p.Name, objectName, depth)).ToArray();
            mutations.Add((8,
                from i in Gen.Int[0, properties.Count - 1]
                from value in hostile[i]
                select Mutation(fields => Set(fields, properties[i].Name, value))));
            mutations.Add((2, Gen.Int[0, 1000].Select(k => Mutation(fields => fields.IsEmpty ? fields : fields.RemoveAt(k % fields.Count)))));
            mutations.Add((1,
                from i in Gen.Int[0, properties.Count - 1]
                from value in hostile[i]
                select Mutation(fields => fields.Add(new Field(properties[i].Name, value)))));
        }

        return from fields in Fields(schema, objectName, depth) from mutate in Gen.Frequency(mutations.ToArray()) select Render(mutate(fields));
    }

    /// <summary>A hostile value for a field: of another type, extreme, huge, deeply nested, an id of another kind, or invalid JSON.</summary>
    private Gen<string> Hostile(JsonNode? node, string name, string parent, int depth)
    {
        var schema = _operation.Resolve(node);
        var type = (string?)schema["type"];
        var choices = new List<(int, IGen<string>)>
        {
            (3, WrongType(type)),
            (3, Gen.OneOf(HostileFragments)),
            (3, Gen.OneOf(HostileTexts).Select(Quote)),
            (1, Huge),
            (1, Deep),
            (2, Id(AnyKind).Select(Quote)),
            (1, Gen.OneOf(BrokenFragments)),
        };
        if (depth < MaxDepth && type == "object" && schema["properties"] is JsonObject)
        {
            choices.Add((3, MutatedObject(schema, name, depth + 1)));
        }

        if (depth < MaxDepth && type == "array")
        {
            choices.Add((3,
                from items in Value(schema["items"], name, parent, depth + 1).Array[0, 3]
                from bad in Hostile(schema["items"], name, parent, depth + 1)
                from at in Gen.Int[0, 3]
                let k = at % (items.Length + 1)
                select "[" + string.Join(',', items[..k].Append(bad).Concat(items[k..])) + "]"));
        }

        return Gen.Frequency(choices.ToArray());
    }

    /// <summary>A valid-looking object: each property present or not, with a valid-looking value.</summary>
    private Gen<string> ObjectValue(JsonObject schema, string objectName, int depth) => Fields(schema, objectName, depth).Select(Render);

    private Gen<ImmutableList<Field>> Fields(JsonObject schema, string objectName, int depth)
    {
        var required = (schema["required"] as JsonArray ?? []).Select(r => (string?)r).ToHashSet();
        var fields = Properties(schema).Select(p => Gen.Frequency(
            (required.Contains(p.Name) ? 9 : 3, Value(p.Schema, p.Name, objectName, depth + 1).Select(v => (Field?)new Field(p.Name, v))),
            (required.Contains(p.Name) ? 1 : 2, Gen.Const((Field?)null))));
        return Sequence(fields).Select(list => list.Where(f => f is not null).Select(f => f!.Value).ToImmutableList());
    }

    /// <summary>A valid-looking value for a field: of its type, or a value this scene's own bodies gave a field of that name.</summary>
    private Gen<string> Value(JsonNode? node, string name, string parent, int depth)
    {
        var schema = _operation.Resolve(node);
        var gen = ValueOfType(schema, name, parent, depth);
        var models = _allowModels ? [] : _scene.IdsOf(PrefixedId.Model);
        var samples = _scene.SamplesOf(name).Where(s => !models.Any(m => s.Contains(m, StringComparison.Ordinal))).ToArray();
        if (samples.Length > 0)
        {
            gen = Gen.Frequency((3, gen), (2, Gen.OneOf(samples)));
        }

        return schema["nullable"]?.GetValue<bool>() == true ? Gen.Frequency((9, gen), (1, Gen.Const("null"))) : gen;
    }

    private Gen<string> ValueOfType(JsonObject schema, string name, string parent, int depth)
    {
        if (schema["enum"] is JsonArray values && values.Count > 0)
        {
            return Gen.OneOf(values.Select(v => v?.ToJsonString() ?? "null").ToArray());
        }

        switch ((string?)schema["type"])
        {
            case "string":
                return Text(schema, name, parent).Select(Quote);
            case "integer":
                return Gen.Frequency((4, Gen.Int[0, 10]), (1, Gen.Int[-3, 1000])).Select(i => Number(i));
            case "number":
                return Gen.Int[-100, 1000].Select(i => Number(i / 100.0));
            case "boolean":
                return Gen.Bool.Select(b => b ? "true" : "false");
            case "array" when depth <= MaxDepth:
                return Value(schema["items"], name, parent, depth + 1).Array[0, 3].Select(items => "[" + string.Join(',', items) + "]");
            case "object" when depth <= MaxDepth && schema["properties"] is JsonObject:
                return ObjectValue(schema, name, depth);
            case "object" when depth <= MaxDepth && schema["additionalProperties"] is JsonObject additional:
                var key = Gen.Frequency((3, Gen.OneOf("forward", "backward", "optimizer", "train", "validation", "test", "model", "temperature")), (1, AlphaNumeric(1, 12)));
                return Gen.Select(key, Value(additional, name, parent, depth + 1)).Array[0, 3]
                    .Select(pairs => Render(pairs.DistinctBy(p => p.Item1).Select(p => new Field(p.Item1, p.Item2))));
            default:
                return Any(name, parent, depth);
        }
    }

    private Gen<string> Text(JsonObject schema, string name, string parent)
    {
        if (KindOf(name, parent) is { } kind)
        {
            return Id(kind);
        }

        var choices = new List<(int, IGen<string>)> { (4, AlphaNumeric(1, 24)), (1, Gen.Char.Array[0, 12].Select(chars => new string(chars))) };
        if (Literals(schema["description"]) is { Length: > 0 } literals)
        {
            choices.Add((4, Gen.OneOf(literals)));
        }

        if (name.Contains("url", StringComparison.Ordinal))
        {
            choices.Add((6, Gen.OneOf(Urls)));
        }

        if (name == "cron")
        {
            choices.Add((6, Gen.OneOf(Crons)));
        }

        if (name.Contains("zone", StringComparison.Ordinal))
        {
            choices.Add((6, Gen.OneOf(Zones)));
        }

        return Gen.Frequency(choices.ToArray());
    }

    /// <summary>Any JSON value, for fields the document leaves open (data, definition, completion args, function arguments).</summary>
    private Gen<string> Any(string name, string parent, int depth)
    {
        var scalar = Gen.Frequency(
            (3, AlphaNumeric(0, 24).Select(Quote)),
            (2, Gen.Int[-5, 100].Select(i => Number(i))),
            (1, Gen.Int[-500, 500].Select(i => Number(i / 8.0))),
            (1, Gen.OneOf("true", "false", "null")));
        var choices = new List<(int, IGen<string>)>
        {
            (6, scalar),
            (2, AlphaNumeric(0, 12).Select(Quote).Array[0, 4].Select(items => "[" + string.Join(',', items) + "]")),
            (1, Gen.Int[0, 9].Array[0, 4].Select(items => "[" + string.Join(',', items) + "]")),
        };
        if (depth < MaxDepth)
        {
            choices.Add((1, Gen.Select(AlphaNumeric(1, 8), scalar).Array[0, 3]
                .Select(pairs => Render(pairs.DistinctBy(p => p.Item1).Select(p => new Field(p.Item1, p.Item2))))));
        }

        if (KindOf(name, parent) is { } kind)
        {
            choices.Add((6, Id(kind).Select(Quote)));
            choices.Add((1, Id(kind).Select(Quote).Array[1, 3].Select(items => "[" + string.Join(',', items) + "]")));
        }

        return Gen.Frequency(choices.ToArray());
    }

    /// <summary>An id for a field of this kind: mostly an existing one, else unknown, of another kind, or malformed.</summary>
    private Gen<string> Id(string kind)
    {
        var models = _allowModels ? [] : _scene.IdsOf(PrefixedId.Model);
        var all = _scene.AllIds.Except(models).ToArray();
        var own = kind == AnyKind ? all : _scene.IdsOf(kind).Except(models).ToArray();
        var others = all.Except(own).ToArray();
        var choices = new List<(int, IGen<string>)> { (2, UnknownId(kind)), (1, Gen.OneOf(GarbagePathValues)) };
        if (own.Length > 0)
        {
            choices.Add((6, Gen.OneOf(own)));
        }

        if (others.Length > 0)
        {
            choices.Add((2, Gen.OneOf(others)));
        }

        return Gen.Frequency(choices.ToArray());
    }

    private static Gen<string> UnknownId(string kind) =>
        from prefix in kind == AnyKind ? Gen.OneOf(AllKinds) : Gen.Const(kind)
        from hex in Gen.Frequency((1, Gen.Const(KnownLookingHex)), (3, Gen.Guid.Select(g => g.ToString("N"))))
        select $"{prefix}_{hex}";

    private static Gen<string> WrongKindId(string kind) =>
        from prefix in Gen.OneOf(AllKinds.Where(k => k != kind).ToArray())
        from guid in Gen.Guid
        select $"{prefix}_{guid:N}";
}

internal sealed record FuzzRequest(Caller Caller, string Method, string Url, IReadOnlyList<KeyValuePair<string, string>> Headers, FuzzBody Body);

/// <summary>A request body: bytes, or a JSON object of <see cref="OversizeTo"/> bytes produced as it is sent.</summary>
internal sealed record FuzzBody(byte[] Bytes, string? ContentType, long OversizeTo = 0, bool Chunked = false)
{
    public static FuzzBody Absent { get; } = new([], null) { Present = false };

    public bool Present { get; private init; } = true;

    public long Length => OversizeTo > 0 ? OversizeTo : Bytes.Length;

    public static FuzzBody Text(string text, string? contentType) => new(Encoding.UTF8.GetBytes(text), contentType);

    public HttpContent ToContent()
    {
        HttpContent content = OversizeTo > 0 ? new StreamContent(new OversizeStream(OversizeTo))
            : Chunked ? new StreamContent(new MemoryStream(Bytes))
            : new ByteArrayContent(Bytes);
        if (!Chunked)
        {
            content.Headers.ContentLength = Length;
        }

        if (ContentType is not null)
        {
            content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
        }

        return content;
    }

    public string Describe(int max)
    {
        if (!Present)
        {
            return "(no body)";
        }

        var what = $"Content-Type: {ContentType ?? "(none)"}, {Length} bytes{(Chunked ? ", chunked" : "")}";
        var text = OversizeTo > 0 ? $"{{\"data\": \"xxx…\"}} padded to {OversizeTo} bytes" : Encoding.UTF8.GetString(Bytes);
        return $"{what}\n     {Findings.Shorten(text, max)}";
    }
}

/// <summary>A JSON object of exactly <c>length</c> bytes, made while it is read.</summary>
internal sealed class OversizeStream(long length) : Stream
{
    private static readonly byte[] Head = "{\"data\": \""u8.ToArray();
    private long _position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => length;
    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = (int)Math.Min(buffer.Length, length - _position);
        buffer[..n].Fill((byte)'x');
        for (var at = _position; at < Math.Min(_position + n, Head.Length); at++)
        {
            buffer[(int)(at - _position)] = Head[at];
        }

        for (var at = Math.Max(_position, length - 2); at < _position + n; at++)
        {
            buffer[(int)(at - _position)] = at == length - 2 ? (byte)'"' : (byte)'}';
        }

        _position += n;
        return n;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Read(buffer.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult(Read(buffer.AsSpan(offset, count)));

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

internal sealed record FuzzResponse(int Status, string? MediaType, string Body, string? Failure)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task<FuzzResponse> SendAsync(HttpClient client, FuzzRequest request)
    {
        using var message = new HttpRequestMessage(new HttpMethod(request.Method), request.Url);
        foreach (var (name, value) in request.Headers)
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }

        if (request.Body.Present)
        {
            message.Content = request.Body.ToContent();
            message.Headers.TransferEncodingChunked = request.Body.Chunked;
        }

        using var timeout = new CancellationTokenSource(Timeout);
        try
        {
            using var response = await client.SendAsync(message, timeout.Token);
            var body = await response.Content.ReadAsStringAsync(timeout.Token);
            return new((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, body, null);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return new(0, null, "", $"no answer within {Timeout.TotalSeconds:0} s");
        }
        catch (Exception e) when (e is HttpRequestException or IOException or InvalidOperationException)
        {
            // The in-memory server surfaces a failure after the response has started as an exception here.
            return new(0, null, e.ToString(), $"the request failed: {e.GetType().Name}: {e.Message}");
        }
    }
}

/// <summary>Contract violations, grouped by kind with the first example of each.</summary>
internal sealed class Findings
{
    /// <summary>
    /// Refusals that are recorded by design, with the only tables they may write: a manual trigger
    /// that is skipped answers 409 and logs the skipped firing and its event (docs/decisions/012).
    /// </summary>
    private static readonly Dictionary<string, string[]> RecordedRefusals = new(StringComparer.Ordinal)
    {
        ["schedule_skipped"] = ["schedule_firings", "events", "webhook_deliveries"],
    };

    private readonly Dictionary<string, (int Count, string Example)> _byKind = [];
    private readonly SortedDictionary<string, int> _answers = new(StringComparer.Ordinal);

    public int Count => _byKind.Values.Sum(f => f.Count);

    /// <summary>How often each status and problem code was answered, to see what the requests reached.</summary>
    public string Answers => string.Join(", ", _answers.Select(a => $"{a.Key} ×{a.Value}"));

    public static string Shorten(string text, int max) => text.Length > max ? text[..max] + $"… ({text.Length} characters)" : text;

    public void Check(FuzzOperation operation, int index, FuzzRequest request, FuzzResponse response, StateSnapshot before, StateSnapshot after)
    {
        var answer = response.Status >= 400 && response.MediaType == "application/problem+json" ? $"{response.Status} {Code(response.Body)}" : $"{response.Status}";
        _answers[answer] = _answers.GetValueOrDefault(answer) + 1;
        if (Violation(operation, response, before, after) is not { } violation)
        {
            return;
        }

        var example =
            $"   request #{index} as {request.Caller}: {request.Method} {Shorten(request.Url, 300)}\n" +
            (request.Headers.Count > 0 ? $"     headers: {string.Join("; ", request.Headers.Select(h => $"{h.Key}: {Shorten(h.Value, 60)}"))}\n" : "") +
            $"     body: {request.Body.Describe(500)}\n" +
            $"   answer: {response.Status} {response.MediaType}: {Shorten(response.Body, 500)}";
        _byKind[violation.Kind] = _byKind.TryGetValue(violation.Kind, out var seen) ? (seen.Count + 1, seen.Example) : (1, $"{violation.Detail}\n{example}");
    }

    public string Report(FuzzOperation operation, FuzzSettings settings)
    {
        var report = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"{Count} of {settings.Iterations} requests to {operation} broke the API contract.")
            .Append(CultureInfo.InvariantCulture, $"Reproduce: AFNIO_FUZZ_SEED={settings.SeedSetting} AFNIO_FUZZ_ITERATIONS={settings.Iterations} ")
            .AppendLine("dotnet test tests/Afnio.Api.Tests --filter \"FullyQualifiedName~Fuzz.OpenApiFuzz\" (the same seed and count give the same requests).");
        var i = 0;
        foreach (var (kind, (count, example)) in _byKind)
        {
            report.AppendLine(CultureInfo.InvariantCulture, $"{++i}. {kind} (×{count}): {example}");
        }

        return report.ToString();
    }

    private static string? Code(string problem)
    {
        try
        {
            return JsonDocument.Parse(problem).RootElement.TryGetProperty("code", out var code) ? code.ToString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static (string Kind, string Detail)? Violation(FuzzOperation operation, FuzzResponse response, StateSnapshot before, StateSnapshot after)
    {
        var status = response.Status;
        if (response.Failure is { } failure)
        {
            return (failure.Split(':')[0], failure);
        }

        if (status >= 500)
        {
            return ($"{status}", $"a server error ({status}) instead of a 4xx problem");
        }

        if (status is < 200 or (>= 300 and < 400) or >= 600)
        {
            return ($"{status}", $"an unexpected status {status}");
        }

        var code = "";
        if (status >= 400)
        {
            if (response.MediaType != "application/problem+json")
            {
                return ($"{status} as {response.MediaType ?? "no content type"}", $"a {status} that is not application/problem+json");
            }

            JsonElement problem;
            try
            {
                problem = JsonDocument.Parse(response.Body).RootElement;
            }
            catch (JsonException)
            {
                return ($"{status} not JSON", $"a {status} problem whose body is not JSON");
            }

            if (problem.ValueKind != JsonValueKind.Object || !problem.TryGetProperty("code", out var c) || c.ValueKind != JsonValueKind.String
                || string.IsNullOrEmpty(c.GetString()))
            {
                return ($"{status} without code", $"a {status} problem without a string code");
            }

            code = c.GetString()!;
            if (!problem.TryGetProperty("status", out var s) || s.ValueKind != JsonValueKind.Number || s.GetInt32() != status)
            {
                return ($"{status} {code} status mismatch", $"a {status} problem whose status field says otherwise");
            }
        }

        var changed = before.ChangedTables(after);
        if ((status >= 400 || operation.Method == "GET") && changed.Count > 0
            && !(RecordedRefusals.TryGetValue(code, out var recorded) && changed.All(recorded.Contains)))
        {
            var changes = before.Describe(changed, after);
            return status >= 400
                ? ($"{status} {code} wrote", $"a partial write: the {status} {code} answer changed {changes}")
                : ($"GET {status} wrote", $"a GET answered {status} and changed {changes}");
        }

        return null;
    }
}

/// <summary>Row counts and write stamps of one project's rows in every table, and of rows that belong to no project.</summary>
internal sealed class StateSnapshot(IReadOnlyDictionary<string, (long Rows, string Hash)> tables)
{
    public IReadOnlyDictionary<string, (long Rows, string Hash)> Tables => tables;

    public IReadOnlyList<string> ChangedTables(StateSnapshot after) =>
        [.. Tables.Keys.Union(after.Tables.Keys).Order(StringComparer.Ordinal).Where(t => Tables.GetValueOrDefault(t) != after.Tables.GetValueOrDefault(t))];

    public string Describe(IEnumerable<string> changed, StateSnapshot after) => string.Join(", ", changed.Select(table =>
        (was: Tables.GetValueOrDefault(table).Rows, now: after.Tables.GetValueOrDefault(table).Rows) is var (was, now) && was == now
            ? $"{table} (rows edited)"
            : $"{table} ({was} → {now} rows)"));
}

/// <summary>
/// Reads what a project holds straight from PostgreSQL: every table with a project_id, tables that
/// hang off one of those by a foreign key, and the rows of no project (projects, keys, system jobs).
/// Found from the catalog, so new tables are covered without changing this.
/// </summary>
internal sealed class ProjectState(NpgsqlConnection connection, NpgsqlCommand snapshot) : IAsyncDisposable
{
    public static async Task<ProjectState> OpenAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var columns = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        await using (var command = new NpgsqlCommand(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'", connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var table = reader.GetString(0);
                if (!columns.TryGetValue(table, out var names))
                {
                    columns[table] = names = [];
                }

                names.Add(reader.GetString(1));
            }
        }

        var keys = new List<(string Table, string Column, string Parent, string ParentColumn)>();
        await using (var command = new NpgsqlCommand("""
            SELECT child.relname, a.attname, parent.relname, pa.attname
            FROM pg_constraint k
            JOIN pg_class child ON child.oid = k.conrelid
            JOIN pg_class parent ON parent.oid = k.confrelid
            JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
            JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
            WHERE k.contype = 'f' AND cardinality(k.conkey) = 1 AND child.relnamespace = 'public'::regnamespace
            ORDER BY 1, 2
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                keys.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3)));
            }
        }

        bool Scoped(string table) => columns.TryGetValue(table, out var names) && names.Contains("project_id");
        var parts = new List<string>();
        foreach (var table in columns.Keys.Order(StringComparer.Ordinal))
        {
            var filter = table == "projects" ? "t.id = @p"
                : Scoped(table) ? "t.project_id = @p"
                : keys.Where(k => k.Table == table && Scoped(k.Parent))
                    .Select(k => $"t.\"{k.Column}\" IN (SELECT \"{k.ParentColumn}\" FROM \"{k.Parent}\" WHERE project_id = @p)")
                    .FirstOrDefault();
            if (filter is not null)
            {
                parts.Add(Hashed(table, table, filter));
            }
        }

        parts.Add("SELECT 'projects (all)', count(*), '' FROM projects");
        parts.Add("SELECT 'api_keys (all)', count(*), '' FROM api_keys");
        foreach (var table in new[] { "namespaces", "users", "user_api_keys", "organizations", "organization_members" })
        {
            parts.Add(Hashed(table + " (all)", table, "true"));
        }

        parts.Add(Hashed("jobs (no project)", "jobs", "t.project_id IS NULL"));
        var snapshot = new NpgsqlCommand(string.Join("\nUNION ALL\n", parts), connection);
        snapshot.Parameters.Add(new NpgsqlParameter<Guid>("p", Guid.Empty));
        await snapshot.PrepareAsync();
        return new ProjectState(connection, snapshot);
    }

    public async Task<StateSnapshot> TakeAsync(Guid projectId)
    {
        ((NpgsqlParameter<Guid>)snapshot.Parameters[0]).TypedValue = projectId;
        var tables = new Dictionary<string, (long, string)>(StringComparer.Ordinal);
        await using var reader = await snapshot.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            tables[reader.GetString(0)] = (reader.GetInt64(1), reader.GetString(2));
        }

        return new StateSnapshot(tables);
    }

    public async ValueTask DisposeAsync()
    {
        await snapshot.DisposeAsync();
        await connection.DisposeAsync();
    }

    /// <summary>
    /// The rows' count and the transaction ids that wrote them: any committed insert, update or delete
    /// changes it, without reading the rows' contents.
    /// </summary>
    private static string Hashed(string label, string table, string filter) =>
        $"SELECT '{label}', count(*), coalesce(md5(string_agg(t.xmin::text, ',' ORDER BY t.xmin::text)), '') FROM \"{table}\" t WHERE {filter}";
}
