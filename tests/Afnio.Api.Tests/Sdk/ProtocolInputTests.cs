using System.Text.Json.Nodes;
using Afnio.Api.Tests.Fuzz;
using Afnio.Api.Tests.Sdk.Client;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests.Sdk;

/// <summary>
/// Hostile and mistaken input on the afnio channel, against the API and a Worker as processes with
/// small limits: every bad frame gets a JSON-RPC error with <c>error.data.exception</c> (what the client
/// raises) and the connection goes on; another namespace's ids, runs and keys reach nothing; limits
/// refuse instead of falling over; and nothing stored changes.
/// </summary>
public sealed class ProtocolInputTests(ProtocolInputTests.Processes afnio) : IClassFixture<ProtocolInputTests.Processes>
{
    private const int MaxMessageBytes = 64 * 1024;
    private const int MaxRequestsInFlight = 4;
    private const int MaxConnectionsPerKey = 2;

    public sealed class Processes : SdkProcesses
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio__Sdk__MaxMessageBytes"] = MaxMessageBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio__Sdk__MaxRequestsInFlight"] = MaxRequestsInFlight.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio__Sdk__MaxConnectionsPerKey"] = MaxConnectionsPerKey.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio__Sdk__SendTimeoutSeconds"] = "2",
        };
    }

    public static TheoryData<string, string, int, string> MalformedFrames => new()
    {
        { "not JSON", "this is not json", -32700, "Parse error" },
        { "truncated JSON", """{"jsonrpc": "2.0", "id": "m1", "method": "get_variable", "params": {""", -32700, "Parse error" },
        { "nested too deep", new string('[', 200) + new string(']', 200), -32700, "Parse error" },
        { "an array", "[1, 2, 3]", -32600, "A JSON-RPC message must be a JSON object." },
        { "jsonrpc 1.0", """{"jsonrpc": "1.0", "id": "m2", "method": "get_variable", "params": {}}""", -32600, "Invalid JSON-RPC version. Expected '2.0'." },
        { "no jsonrpc", """{"id": "m3", "method": "get_variable", "params": {}}""", -32600, "Invalid JSON-RPC version. Expected '2.0'." },
        { "method not a string", """{"jsonrpc": "2.0", "id": "m4", "method": 7}""", -32600, "'method' must be a string." },
        { "id an object", """{"jsonrpc": "2.0", "id": {"a": 1}, "method": "get_variable"}""", -32600, "'id' must be a string or a number." },
        { "params a list", """{"jsonrpc": "2.0", "id": "m5", "method": "create_variable", "params": [1, 2]}""", -32602, "'params' must be a JSON object of named parameters." },
        { "unknown method", """{"jsonrpc": "2.0", "id": "m6", "method": "drop_tables", "params": {}}""", -32601, "Method 'drop_tables' not found." },
        { "no method and no id", """{"jsonrpc": "2.0", "params": {}}""", -32600, "Missing required field: method" },
    };

    [Theory]
    [MemberData(nameof(MalformedFrames))]
    public async Task MalformedFrame_GetsAJsonRpcError_AndTheConnectionGoesOn(string what, string frame, int code, string message)
    {
        var user = await afnio.NewUserAsync("malformed");
        await using var session = await afnio.ConnectAsync(user, "Malformed");
        var client = session.Client;
        var kept = await client.CreateVariableAsync("kept", "a variable that must survive");
        await using var state = await ProjectState.OpenAsync(afnio.Processes.ConnectionString);
        var before = await state.TakeAsync(ProjectGuid(session.ProjectId));

        var sent = client.Frames.Count;
        await client.SendRawAsync(frame);
        // The next call's reply comes after the error: the server handles one message after another.
        Assert.Equal("kept", await ServerDataAsync(client, kept));

        var error = OnlyErrorIn(client.Frames.Skip(sent))["error"]!;
        Assert.True(code == error["code"]!.GetValue<int>(), $"{what}: {error.ToJsonString()}");
        Assert.Equal(message, error["message"]!.GetValue<string>());
        Assert.Equal(message, error["data"]!["exception"]!.GetValue<string>());
        if (code == -32601)
        {
            Assert.Equal("drop_tables", error["data"]!["method"]!.GetValue<string>());
        }

        Assert.Null(client.ClosedReason);
        Assert.Empty((await state.TakeAsync(ProjectGuid(session.ProjectId))).ChangedTables(before));
    }

    [Fact]
    public async Task ErrorWithoutAnId_IsAnsweredByTheClient_AndTheServerDoesNotAnswerBack()
    {
        var user = await afnio.NewUserAsync("bounce");
        await using var session = await afnio.ConnectAsync(user, "Bounce");
        var client = session.Client;
        var kept = await client.CreateVariableAsync("kept", "a variable");

        var sent = client.Frames.Count;
        await client.SendRawAsync("not json");
        Assert.Equal("kept", await ServerDataAsync(client, kept));
        Assert.Equal("kept", await ServerDataAsync(client, kept));

        // The Python client answers an id-less error with "Missing required field: method"; the server
        // takes that as the response it is and stays quiet, so exactly one error reached the client.
        var frames = client.Frames.Skip(sent).ToList();
        Assert.Single(frames, f => f.Direction == "in" && f.Json?["error"] is not null);
        Assert.Single(frames, f => f.Direction == "out" && f.Json?["error"]?["message"]?.GetValue<string>() == "Missing required field: method");
    }

    [Fact]
    public async Task OversizedMessage_IsRefusedWithItsId_AndTheConnectionGoesOn()
    {
        var user = await afnio.NewUserAsync("oversize");
        await using var session = await afnio.ConnectAsync(user, "Oversize");
        var client = session.Client;
        var kept = await client.CreateVariableAsync("kept", "a variable");

        var frame = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["method"] = "create_variable",
            ["params"] = new JsonObject { ["data"] = new string('x', MaxMessageBytes), ["role"] = "too big", ["run_uuid"] = client.RunUuid },
            ["id"] = "big-1",
        };
        var sent = client.Frames.Count;
        await client.SendRawAsync(frame.ToJsonString());
        Assert.Equal("kept", await ServerDataAsync(client, kept));

        var error = OnlyErrorIn(client.Frames.Skip(sent));
        Assert.Equal("big-1", error["id"]!.GetValue<string>());
        Assert.Equal(-32600, error["error"]!["code"]!.GetValue<int>());
        Assert.Equal("message_too_large", error["error"]!["data"]!["code"]!.GetValue<string>());
        Assert.Contains($"at most {MaxMessageBytes} bytes", error["error"]!["data"]!["exception"]!.GetValue<string>(), StringComparison.Ordinal);
        using var v1 = await afnio.ProjectClientAsync(session.ProjectId);
        Assert.Single((await v1.GetJsonAsync("/v1/variables")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task BadParams_AreInvalidParams_WithTheRecommendedWordings()
    {
        var user = await afnio.NewUserAsync("params");
        await using var session = await afnio.ConnectAsync(user, "Params");
        var client = session.Client;
        var x = await client.CreateVariableAsync("x", "a variable", requiresGrad: true);
        await using var state = await ProjectState.OpenAsync(afnio.Processes.ConnectionString);
        var before = await state.TakeAsync(ProjectGuid(session.ProjectId));

        var cases = new (string Method, JsonObject Params, string Exception)[]
        {
            ("get_variable", new JsonObject { ["variable_id"] = "var_nope" }, "Unknown variable_id: 'var_nope'"),
            ("update_variable", new JsonObject { ["variable_id"] = "var_nope", ["field"] = "data", ["value"] = "y" }, "Unknown variable_id: 'var_nope'"),
            ("run_function", new JsonObject { ["function_name"] = "Explode", ["args"] = new JsonArray(), ["kwargs"] = new JsonObject(), ["grad_enabled"] = true },
                "Unknown function: 'Explode'."),
            ("run_step", new JsonObject { ["optimizer_id"] = "opt_nope" }, "Unknown optimizer_id: 'opt_nope'"),
            ("clear_model_usage", new JsonObject { ["model_id"] = "mdl_nope" }, "Unknown model_id: 'mdl_nope'"),
        };
        foreach (var (method, parameters, exception) in cases)
        {
            var reply = await client.CallAsync(method, parameters);
            var error = reply["error"];
            Assert.True(error is not null, $"{method}: {reply.ToJsonString()}");
            Assert.Equal(-32602, error["code"]!.GetValue<int>());
            Assert.StartsWith(exception, error["data"]!["exception"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        // A Python-style binding error for a function called with the wrong arguments.
        var add = await client.CallAsync("run_function", new JsonObject
        {
            ["function_name"] = "Add",
            ["args"] = new JsonArray(SdkClient.Ref(x)),
            ["kwargs"] = new JsonObject(),
            ["grad_enabled"] = true,
        });
        Assert.Equal("Add() missing 1 required argument: 'y'.", add["error"]!["data"]!["exception"]!.GetValue<string>());

        Assert.Empty((await state.TakeAsync(ProjectGuid(session.ProjectId))).ChangedTables(before));
        Assert.Empty(client.Violations);
    }

    [Fact]
    public async Task AnotherNamespacesIdsAndRun_ReachNothing_AndChangeNothing()
    {
        var owner = await afnio.NewUserAsync("owner");
        var intruder = await afnio.NewUserAsync("intruder");
        await using var victim = await afnio.ConnectAsync(owner, "Secret");
        var secret = await victim.Client.CreateVariableAsync("secret prompt", "system prompt", requiresGrad: true, parameter: true);
        var other = await victim.Client.CreateVariableAsync(" and more", "suffix");
        var output = Assert.Single(await victim.Client.RunFunctionAsync("Add", new JsonArray(SdkClient.Ref(secret), SdkClient.Ref(other))));
        var model = await victim.Client.CreateModelAsync("OpenAI", new JsonObject { ["api_key"] = "sk-owner", ["base_url"] = afnio.Fake.Endpoint.ToString() });
        var optimizer = await victim.Client.CreateTgdAsync([secret], model, momentum: 1);
        await using var attacker = await afnio.ConnectAsync(intruder, "Mine");
        await using var state = await ProjectState.OpenAsync(afnio.Processes.ConnectionString);
        var before = await state.TakeAsync(ProjectGuid(victim.ProjectId));

        var client = attacker.Client;
        var cases = new (string Method, JsonObject Params, string Exception)[]
        {
            ("get_variable", new JsonObject { ["variable_id"] = secret.Id }, $"Unknown variable_id: '{secret.Id}'"),
            ("update_variable", new JsonObject { ["variable_id"] = secret.Id, ["field"] = "data", ["value"] = "pwned" }, $"Unknown variable_id: '{secret.Id}'"),
            ("append_grad", new JsonObject { ["variable_id"] = secret.Id, ["gradient"] = SdkClient.Ref(other) }, $"Unknown variable_id: '{secret.Id}'"),
            ("run_function", new JsonObject
            {
                ["function_name"] = "Add", ["args"] = new JsonArray(SdkClient.Ref(secret), SdkClient.Ref(other)), ["kwargs"] = new JsonObject(), ["grad_enabled"] = true,
            }, $"Unknown variable_id: '{secret.Id}'"),
            ("get_backprop_ids", new JsonObject { ["variables"] = new JsonArray(SdkClient.Ref(output)) }, $"Unknown variable_id: '{output.Id}'"),
            ("run_backward", new JsonObject
            {
                ["variables"] = new JsonArray(SdkClient.Ref(output)), ["grad_variables"] = null, ["retain_graph"] = null, ["create_graph"] = false, ["inputs"] = null,
            }, $"Unknown variable_id: '{output.Id}'"),
            ("run_step", new JsonObject { ["optimizer_id"] = optimizer.Id }, $"Unknown optimizer_id: '{optimizer.Id}'"),
            ("clear_grad", new JsonObject { ["optimizer_id"] = optimizer.Id }, $"Unknown optimizer_id: '{optimizer.Id}'"),
            ("clear_model_usage", new JsonObject { ["model_id"] = model }, $"Unknown model_id: '{model}'"),
            ("create_optimizer", new JsonObject
            {
                ["optimizer_name"] = "TGD",
                ["params"] = new JsonArray(new JsonObject { ["params"] = new JsonArray(SdkClient.Ref(secret)) }),
                ["defaults"] = new JsonObject { ["model_client"] = SdkClient.ModelRef(model), ["momentum"] = 0 },
            }, "Unknown "),
        };
        foreach (var (method, parameters, exception) in cases)
        {
            var reply = await client.CallAsync(method, parameters);
            Assert.True(reply["error"] is not null, $"{method}: {reply.ToJsonString()}");
            Assert.StartsWith(exception, reply["error"]!["data"]!["exception"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        // The victim's run, named by its uuid, is not the intruder's to write into.
        client.RunUuid = victim.Client.RunUuid;
        var stolen = await client.CallAsync("create_variable", new JsonObject { ["data"] = "planted", ["role"] = "x", ["requires_grad"] = false, ["obj_type"] = "__variable__" });
        Assert.Equal("run_not_found", stolen["error"]!["data"]!["code"]!.GetValue<string>());
        Assert.StartsWith($"Unknown run_uuid: '{victim.Client.RunUuid}'", stolen["error"]!["data"]!["exception"]!.GetValue<string>(), StringComparison.Ordinal);

        Assert.Empty((await state.TakeAsync(ProjectGuid(victim.ProjectId))).ChangedTables(before));
        Assert.Equal("secret prompt", await ServerDataAsync(victim.Client, secret));
        Assert.Empty(client.Violations);
    }

    [Fact]
    public async Task Handshake_RefusesBadKeysProjectKeysAndRevokedKeys_WithAStatusAndAProblem()
    {
        var user = await afnio.NewUserAsync("handshake");
        var bad = await Assert.ThrowsAsync<SdkHandshakeException>(() => SdkClient.ConnectAsync(afnio.WsBase, "afu_" + new string('x', 43)));
        Assert.Equal(401, bad.Status);
        Assert.Contains("\"code\"", bad.Body, StringComparison.Ordinal);

        var project = await afnio.Processes.CreateProjectAsync("project keys are for /v1");
        var projectKey = await Assert.ThrowsAsync<SdkHandshakeException>(() => SdkClient.ConnectAsync(afnio.WsBase, project.Key));
        Assert.Equal(401, projectKey.Status);
        Assert.Contains("user_key_required", projectKey.Body, StringComparison.Ordinal);

        await using (var before = await SdkClient.ConnectAsync(afnio.WsBase, user.Key))
        {
            Assert.NotEmpty(before.SessionId);
        }

        using var admin = afnio.AdminClient();
        (await admin.DeleteAsync($"/v1/users/{user.Id}/api_keys/{user.KeyId}")).EnsureSuccessStatusCode();
        var revoked = await Assert.ThrowsAsync<SdkHandshakeException>(() => SdkClient.ConnectAsync(afnio.WsBase, user.Key));
        Assert.Equal(401, revoked.Status);
    }

    [Fact]
    public async Task ConnectionsPerKey_AreLimited_AndFreedWhenClosed()
    {
        var user = await afnio.NewUserAsync("connections");
        var open = new List<SdkClient>();
        for (var i = 0; i < MaxConnectionsPerKey; i++)
        {
            open.Add(await SdkClient.ConnectAsync(afnio.WsBase, user.Key));
        }

        var refused = await Assert.ThrowsAsync<SdkHandshakeException>(() => SdkClient.ConnectAsync(afnio.WsBase, user.Key));
        Assert.Equal(429, refused.Status);
        Assert.Contains("too_many_connections", refused.Body, StringComparison.Ordinal);

        // Another user is not affected; closing one connection makes room again.
        var other = await afnio.NewUserAsync("neighbour");
        await using (await SdkClient.ConnectAsync(afnio.WsBase, other.Key))
        {
        }

        await open[0].DisposeAsync();
        await Eventually.UntilAsync(async () => await TryConnectAsync(user.Key), TimeSpan.FromSeconds(10), () => "the closed connection was not freed");
        foreach (var client in open.Skip(1))
        {
            await client.DisposeAsync();
        }
    }

    [Fact]
    public async Task TooManyRequestsInFlight_AreRefused_AndEveryOtherIsAnswered()
    {
        var user = await afnio.NewUserAsync("inflight");
        await using var session = await afnio.ConnectAsync(user, "In flight");
        var client = session.Client;
        var model = await client.CreateModelAsync("OpenAI", new JsonObject { ["api_key"] = "sk-x", ["base_url"] = afnio.Fake.Endpoint.ToString() });
        var slow = await client.CreateVariableAsync("[slow] I love it", "input");

        const int Burst = 12;
        var calls = Enumerable.Range(0, Burst).Select(_ => client.CallAsync("run_function", new JsonObject
        {
            ["function_name"] = "ChatCompletion",
            ["args"] = new JsonArray(SdkClient.ModelRef(model),
                new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(SdkClient.Ref(slow)) }), new JsonObject()),
            ["kwargs"] = new JsonObject { ["model"] = "gpt-4o-mini" },
            ["grad_enabled"] = true,
        })).ToList();
        var replies = await Task.WhenAll(calls);

        var refused = replies.Where(r => r["error"] is not null).ToList();
        Assert.InRange(refused.Count, 1, Burst - MaxRequestsInFlight);
        Assert.All(refused, r => Assert.Equal("too_many_requests", r["error"]!["data"]!["code"]!.GetValue<string>()));
        Assert.All(replies.Where(r => r["error"] is null), r => Assert.Equal("positive", r["result"]!["data"]!["data"]!.GetValue<string>()));
        Assert.Empty(client.Violations);
    }

    [Fact]
    public async Task ClientThatStopsReading_IsDisconnected_AndTheServerServesOthers()
    {
        var user = await afnio.NewUserAsync("slowreader");
        await using var session = await afnio.ConnectAsync(user, "Slow reader", options: new SdkClientOptions { ReceiveBufferBytes = 64 * 1024 });
        var client = session.Client;

        // A variable of about 960 kB, built from parts under the message limit, then read again and again
        // by a client that has stopped reading: what the server sends backs up until a send times out.
        var big = await client.CreateVariableAsync(new string('x', 60_000), "big");
        for (var i = 0; i < 4; i++)
        {
            big = Assert.Single(await client.RunFunctionAsync("Add", new JsonArray(SdkClient.Ref(big), SdkClient.Ref(big))));
        }

        client.PauseReading();
        for (var i = 0; i < 4 * MaxRequestsInFlight; i++)
        {
            await client.SendRawAsync(new JsonObject
            {
                ["jsonrpc"] = "2.0",
                ["method"] = "get_variable",
                ["params"] = new JsonObject { ["variable_id"] = big.Id, ["run_uuid"] = client.RunUuid },
                ["id"] = $"read-{i}",
            }.ToJsonString());
            await Task.Delay(50);
        }

        // The server gives up on the reader after its send timeout (2 s here), well before its keep-alive
        // ping would (20 s): the connection slot is freed while the client still reads nothing.
        await using var second = await SdkClient.ConnectAsync(afnio.WsBase, user.Key);
        await Eventually.UntilAsync(async () => await TryConnectAsync(user.Key), TimeSpan.FromSeconds(15),
            () => "the server kept the connection of a client that stopped reading", pollMs: 200);
        client.ResumeReading();
        await Eventually.UntilAsync(() => Task.FromResult(client.ClosedReason is not null), TimeSpan.FromSeconds(30), () => "the client never saw the close");

        second.RunUuid = client.RunUuid;
        Assert.Equal(960_000, (await ServerDataAsync(second, big)).Length);
    }

    [Fact]
    public async Task ClientDroppedMidBackward_TheJobStillFinishes_AndItsGradientsAreStored()
    {
        var user = await afnio.NewUserAsync("dropped");
        var session = await afnio.ConnectAsync(user, "Dropped");
        var client = session.Client;
        var config = new JsonObject { ["api_key"] = "sk-x", ["base_url"] = afnio.Fake.Endpoint.ToString() };
        var model = await client.CreateModelAsync("OpenAI", config);
        await client.SetBackwardModelClientAsync("openai/gpt-4o", (JsonObject)config.DeepClone());
        var prompt = await client.CreateVariableAsync("[slow] Classify the sentiment.", "system prompt", requiresGrad: true, parameter: true);
        var answer = Assert.Single(await client.RunFunctionAsync("ChatCompletion", new JsonArray(SdkClient.ModelRef(model),
            new JsonArray(new JsonObject { ["role"] = "system", ["content"] = new JsonArray(SdkClient.Ref(prompt)) }), new JsonObject()),
            new JsonObject { ["model"] = "gpt-4o-mini" }));
        var feedback = await client.CreateVariableAsync("Too long.", "feedback");

        var backward = client.BackwardAsync(answer, feedback);
        await using var db = TestDatabase.CreateDbContext(afnio.Processes.ConnectionString);
        var project = ProjectGuid(session.ProjectId);
        await Eventually.UntilAsync(() => db.Jobs.AnyAsync(j => j.ProjectId == project), TimeSpan.FromSeconds(30), () => "no backward job started");
        client.Abort();
        await Assert.ThrowsAnyAsync<Exception>(() => backward);

        await Eventually.UntilAsync(
            () => db.Jobs.AnyAsync(j => j.ProjectId == project && j.Status == Data.Jobs.JobStatus.Succeeded),
            TimeSpan.FromSeconds(60), () => "the backward job did not finish after its client left");
        using var v1 = await afnio.ProjectClientAsync(session.ProjectId);
        var grad = (await v1.GetJsonAsync($"/v1/variables/{prompt.Id}/grad")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(SdkProcesses.Feedback, Assert.Single(grad).GetProperty("data").GetString());
        await session.DisposeAsync();
    }

    /// <summary>The one error the server sent among <paramref name="frames"/>; a failure names the frames briefly.</summary>
    private static JsonNode OnlyErrorIn(IEnumerable<SdkFrame> frames)
    {
        var list = frames.ToList();
        var errors = list.Where(f => f.Direction == "in" && f.Json?["error"] is not null).ToList();
        Assert.True(errors.Count == 1, $"expected one error from the server, got {errors.Count} among: "
            + string.Join(" | ", list.Select(f => $"{f.Direction} {PyJson.Snip(f.Text)}")));
        return errors[0].Json!;
    }

    /// <summary>A variable's data as the server has it: a round trip, unlike <c>v.data</c>, which the client answers itself.</summary>
    private static async Task<string> ServerDataAsync(SdkClient client, SimVariable variable)
    {
        var reply = await client.CallAsync("get_variable", new JsonObject { ["variable_id"] = variable.Id });
        return reply["result"]?["data"]?.GetValue<string>() ?? throw new InvalidOperationException(reply.ToJsonString());
    }

    private async Task<bool> TryConnectAsync(string key)
    {
        try
        {
            await using var client = await SdkClient.ConnectAsync(afnio.WsBase, key);
            return true;
        }
        catch (SdkHandshakeException e) when (e.Status == 429)
        {
            return false;
        }
    }

    private static Guid ProjectGuid(string projectId) =>
        PrefixedId.TryParse(PrefixedId.Project, projectId, out var id) ? id : throw new ArgumentException(projectId, nameof(projectId));
}
