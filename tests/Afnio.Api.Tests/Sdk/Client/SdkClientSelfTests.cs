using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>
/// Tests of the simulator itself, against a tiny scripted server in this file: no database, no Afnio.
/// The server answers with frames taken from the recording of the real client.
/// </summary>
public sealed class SdkClientSelfTests
{
    private const string RunUuid = "0ed4ee07-f8f8-4e14-904c-188a44b0af9e";
    private const string Hello = "5f0d9d53-b3a4-492b-b8a8-1a86fc501117";
    private const string World = "a874331b-c8a5-494f-a869-c58993968225";
    private const string AddNode = "775df286-22c5-43ee-9903-512e9583e8f5";
    private const string AccumulateNode = "92359025-2108-4b9b-bde4-6fcc743e9d45";

    private static readonly SdkClientOptions Fast = new() { CloseDelay = TimeSpan.FromMilliseconds(50) };

    [Fact]
    public async Task AddStep_PushesFromTheRecording_AreAppliedBeforeTheReply()
    {
        var created = new Queue<string>([Hello, World]);
        await using var server = FakeRpcServer.Start(async (conn, request) =>
        {
            var id = request["id"]!.GetValue<string>();
            switch (request["method"]!.GetValue<string>())
            {
                case "create_variable":
                    await conn.ReplyAsync(id, new JsonObject { ["variable_id"] = created.Dequeue(), ["message"] = "Variable created successfully." });
                    break;
                case "run_function":
                    await conn.NotifyAsync("heartbeat", new JsonObject { ["id"] = id });
                    await conn.PushAsync("create_node", new JsonObject { ["node_id"] = AddNode, ["name"] = "AddBackward0" });
                    await conn.PushAsync("create_node", new JsonObject { ["node_id"] = AccumulateNode, ["name"] = "AccumulateGrad" });
                    await conn.PushAsync("create_edge", new JsonObject { ["from_node_id"] = AddNode, ["to_node_id"] = AccumulateNode, ["output_nr"] = 0 });
                    await conn.PushAsync("create_edge", new JsonObject { ["from_node_id"] = AddNode, ["to_node_id"] = null, ["output_nr"] = 0 });
                    await conn.ReplyAsync(id, JsonNode.Parse("""
                        {"data": {"variable_id": "a2190ff8-a0ff-4328-b04a-ce02faab1e80", "data": "Hello world", "role": "greeting and suffix",
                         "requires_grad": true, "_retain_grad": false, "_grad": [], "_output_nr": 0,
                         "_grad_fn": "775df286-22c5-43ee-9903-512e9583e8f5", "is_leaf": false}}
                        """));
                    break;
            }
        });
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;

        var hello = await client.CreateVariableAsync("Hello", "greeting", requiresGrad: true);
        var world = await client.CreateVariableAsync(" world", "suffix");
        var output = Assert.Single(await client.RunFunctionAsync("Add", Arr(SdkClient.Ref(hello), SdkClient.Ref(world))));

        Assert.True(client.WelcomeInFirstRead);
        Assert.Equal("sess-1", client.SessionId);
        Assert.Empty(client.Violations);
        Assert.Equal(new[] { Hello, World, output.Id }.Order(), client.Variables.Keys.Order());
        Assert.Equal(3, client.Variables.Count);
        Assert.Equal(2, client.Nodes.Count);
        var add = client.Nodes[AddNode];
        Assert.Equal("AddBackward0", add.Name);
        Assert.Collection(add.NextFunctions,
            e => Assert.Equal((client.Nodes[AccumulateNode], 0), e),
            e => Assert.Equal(((SimNode?)null, 0), e));
        Assert.Equal("Hello world", output.Data!.GetValue<string>());
        Assert.False(output.IsLeaf);
        Assert.True(output.RequiresGrad);
        Assert.Same(add, await client.GradFnAsync(output));

        // Every push was answered as the Python listener answers, before the reply was read.
        var conn = await server.Connection;
        foreach (var pushId in conn.PushIds)
        {
            var answer = await conn.AnswerAsync(pushId);
            Assert.Equal($$$"""{"jsonrpc": "2.0", "id": "{{{pushId}}}", "result": {"message": "Ok"}}""", answer.Text);
        }

        // Byte for byte what the Python client sends: json.dumps separators, key order, run_uuid last, id last.
        var first = client.Frames.First(f => f.Direction == "out");
        Assert.Equal(
            $$"""{"jsonrpc": "2.0", "method": "create_variable", "params": {"data": "Hello", "role": "greeting", "requires_grad": true, "obj_type": "__variable__", "run_uuid": "{{RunUuid}}"}, "id": "{{first.Id}}"}""",
            first.Text);
        Assert.StartsWith($"GET /ws/v0/rpc/ HTTP/1.1\r\nHost: 127.0.0.1:{server.Url.Port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", server.RequestHead, StringComparison.Ordinal);
        Assert.Contains("\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            + "Authorization: Api-Key good-key\r\nUser-Agent: Python/3.11 websockets/15.0.1\r\n\r\n", server.RequestHead, StringComparison.Ordinal);
        Assert.Empty(conn.Errors);
    }

    [Fact]
    public async Task WelcomeWrittenAfterThe101_IsReportedAsNotInTheFirstRead()
    {
        await using var server = FakeRpcServer.Start((_, _) => Task.CompletedTask, FakeRpcServer.WelcomeWrite.Separately);
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);

        Assert.False(client.WelcomeInFirstRead);
        Assert.Equal("sess-1", client.SessionId);
        Assert.Contains(client.Violations, v => v.Contains("same read as the 101", StringComparison.Ordinal));
    }

    [Fact]
    public async Task EdgeToAnUnknownNode_IsAnsweredWithThePythonErrorAndRecorded()
    {
        await using var server = FakeRpcServer.Start(async (conn, request) =>
        {
            var id = request["id"]!.GetValue<string>();
            await conn.PushAsync("create_node", new JsonObject { ["node_id"] = AddNode, ["name"] = "AddBackward0" });
            await conn.PushAsync("create_edge", new JsonObject { ["from_node_id"] = AddNode, ["to_node_id"] = "missing-node", ["output_nr"] = 0 });
            await conn.PushAsync("create_edge", new JsonObject { ["from_node_id"] = "missing-node", ["to_node_id"] = null, ["output_nr"] = 0 });
            await conn.ReplyAsync(id, JsonNode.Parse("""
                {"data": {"variable_id": "v-out", "data": "x", "role": "r", "requires_grad": true, "_retain_grad": false, "_grad": [],
                 "_output_nr": 0, "_grad_fn": "775df286-22c5-43ee-9903-512e9583e8f5", "is_leaf": false}}
                """));
        });
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;

        await client.RunFunctionAsync("Add", Arr("a", "b"));

        var conn = await server.Connection;
        var toAnswer = (await conn.AnswerAsync(conn.PushIds[1])).Json;
        Assert.Equal(-32603, toAnswer["error"]!["code"]!.GetValue<int>());
        Assert.Equal("Internal error", toAnswer["error"]!["message"]!.GetValue<string>());
        Assert.Equal("to_node with id 'missing-node' not found in registry.", toAnswer["error"]!["data"]!["exception"]!.GetValue<string>());
        var fromAnswer = (await conn.AnswerAsync(conn.PushIds[2])).Json;
        Assert.Equal("from_node with id 'missing-node' not found in registry.", fromAnswer["error"]!["data"]!["exception"]!.GetValue<string>());
        Assert.Equal(2, client.Violations.Count);
        Assert.Contains(client.Violations, v => v.Contains("to_node with id 'missing-node' not found in registry.", StringComparison.Ordinal));
        Assert.Empty(client.Nodes[AddNode].NextFunctions);
    }

    [Fact]
    public async Task RecordedSession_ReplaysWithTheRealClientsFrames_AndNoViolations()
    {
        var replay = RecordedReplay.Load(RecordedScript.RecordingPath);
        await using var server = FakeRpcServer.Start(replay.HandleAsync);
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;
        var outcome = await RecordedScript.RunAsync(client, "http://127.0.0.1:18082/v1");
        var (parts, feedback, improved, system, system2) = (outcome.Parts, outcome.Feedback, outcome.Improved, outcome.System, outcome.System2);
        var (evaluation2, state, forward, backward) = (outcome.Evaluation2, outcome.OptimizerState, outcome.ForwardModel, outcome.BackwardModel);

        Assert.Empty(replay.Mismatches);
        Assert.Equal(0, replay.Remaining);
        Assert.Empty(client.Violations);
        var conn = await server.Connection;
        Assert.Empty(conn.Errors);
        foreach (var pushId in conn.PushIds)
        {
            var reply = (await conn.AnswerAsync(pushId)).Json;
            Assert.Equal("Ok", reply["result"]?["message"]?.GetValue<string>());
        }

        Assert.Equal(2, (await conn.AnswerAsync(replay.CallablePushIds.Single())).Json["result"]!["data"]!.GetValue<int>());
        Assert.Equal(2, parts.Count);
        Assert.Equal(new[] { "Hello", "world" }, parts.Select(p => p.Data!.GetValue<string>()));
        Assert.Equal(new[] { 0, 1 }, parts.Select(p => p.OutputNr));
        Assert.Equal("Be more precise about the label.", feedback.Data!.GetValue<string>());
        Assert.Equal("IMPROVED SYSTEM PROMPT", improved!.GetValue<string>());
        Assert.Empty(system.Grad);
        Assert.Equal(2, evaluation2[0].Data!.GetValue<int>());
        Assert.Equal("4f39bec4-a93b-4ed9-b34e-cb649ecaead2", state![0]!["key"]!["variable_id"]!.GetValue<string>());
        Assert.True(client.Variables.ContainsKey("636d6c82-68fd-4edd-a0c8-c8a99e996c02"));
        Assert.True(client.Variables["636d6c82-68fd-4edd-a0c8-c8a99e996c02"].IsParameter);
        Assert.Equal(0, client.Models[forward].Usage!["total_tokens"]!.GetValue<int>());
        Assert.Equal(0, client.Models[backward].Usage!["total_tokens"]!.GetValue<int>());
        Assert.False(system2.PendingData);
        Assert.False(system2.PendingGrad);
        Assert.Equal("ExactMatchEvaluatorBackward0", outcome.Evaluation2GradFn);
    }

    [Fact]
    public async Task RejectedKey_FailsTheHandshakeWithStatusAndBody()
    {
        await using var server = FakeRpcServer.Start((_, _) => Task.CompletedTask, rejectStatus: 401);

        var error = await Assert.ThrowsAsync<SdkHandshakeException>(() => SdkClient.ConnectAsync(server.Url, "bad-key", Fast));

        Assert.Equal(401, error.Status);
        Assert.Equal("""{"detail": "Invalid API key."}""", error.Body);
    }

    [Fact]
    public async Task LongCall_LivesOnHeartbeats_AndTimesOutWithoutThem()
    {
        var options = new SdkClientOptions { RequestTimeout = TimeSpan.FromSeconds(1), CloseDelay = TimeSpan.Zero };
        var calls = 0;
        await using var server = FakeRpcServer.Start(async (conn, request) =>
        {
            var id = request["id"]!.GetValue<string>();
            if (Interlocked.Increment(ref calls) == 1)
            {
                // Three timeouts' worth of work, kept alive only by the heartbeats.
                for (var n = 0; n < 15; n++)
                {
                    await conn.NotifyAsync("heartbeat", new JsonObject { ["id"] = id });
                    await Task.Delay(200);
                }

                await conn.ReplyAsync(id, JsonNode.Parse(Record("v1", "_grad_fn", null)));
            }
        });
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", options);
        client.RunUuid = RunUuid;

        var output = Assert.Single(await client.RunFunctionAsync("Add", Arr("a", "b")));
        Assert.Equal("v1", output.Id);
        Assert.Empty(client.Violations);

        await Assert.ThrowsAsync<TimeoutException>(() => client.RunFunctionAsync("Add", Arr("a", "b")));
        Assert.Contains(client.Violations, v => v.Contains("no heartbeat", StringComparison.Ordinal));
    }

    [Fact]
    public async Task GradReads_WaitForClearBackward_AndTimeOutWithThePythonText()
    {
        var options = new SdkClientOptions { PendingWait = TimeSpan.FromSeconds(1.5), CloseDelay = TimeSpan.Zero };
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backwardCalls = 0;
        await using var server = FakeRpcServer.Start(async (conn, request) =>
        {
            var id = request["id"]!.GetValue<string>();
            switch (request["method"]!.GetValue<string>())
            {
                case "create_variable":
                    await conn.ReplyAsync(id, new JsonObject { ["variable_id"] = "leaf", ["message"] = "Variable created successfully." });
                    break;
                case "run_function":
                    await conn.PushAsync("create_node", new JsonObject { ["node_id"] = "n1", ["name"] = "AddBackward0" });
                    await conn.ReplyAsync(id, JsonNode.Parse(Record("root", "_grad_fn", "n1")));
                    break;
                case "get_backprop_ids":
                    await conn.ReplyAsync(id, new JsonObject { ["variable_ids"] = new JsonArray("leaf") });
                    break;
                case "run_backward":
                    await conn.PushAsync("append_grad", JsonNode.Parse("""
                        {"variable_id": "leaf", "gradient_id": "g1", "gradient": {"data": "more", "role": "feedback", "requires_grad": false}}
                        """));
                    await conn.ReplyAsync(id, new JsonObject { ["message"] = "Backward pass executed successfully." });
                    if (++backwardCalls == 1)
                    {
                        // After the reply, as the real server may send it: the grad read must block until it arrives.
                        await release.Task;
                        await conn.PushAsync("clear_backward", new JsonObject { ["variable_ids"] = new JsonArray("leaf") });
                    }

                    break;
            }
        });
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", options);
        client.RunUuid = RunUuid;
        var leaf = await client.CreateVariableAsync("x", "prompt", requiresGrad: true, parameter: true);
        var root = Assert.Single(await client.RunFunctionAsync("Add", Arr(SdkClient.Ref(leaf), "y")));

        Assert.Equal(new[] { "leaf" }, await client.BackwardAsync(root));
        Assert.True(leaf.PendingGrad);
        var read = client.GradAsync(leaf);
        await Task.Delay(100);
        Assert.False(read.IsCompleted);
        release.SetResult();
        Assert.Equal("more", Assert.Single(await read).Data!.GetValue<string>());

        await client.BackwardAsync(root);
        var error = await Assert.ThrowsAsync<SdkException>(() => client.GradAsync(leaf));
        Assert.Equal("Timeout waiting for _pending_grad to be cleared for variable_id=leaf", error.Message);
        Assert.Equal(2, leaf.Grad.Count);
        Assert.Empty(client.Violations);
    }

    [Fact]
    public async Task ErrorReplyWithoutData_IsAViolation_AndRaisesTheKeyErrorThePythonClientHits()
    {
        await using var server = FakeRpcServer.Start((conn, request) =>
            conn.SendTextAsync(new JsonObject
            {
                ["jsonrpc"] = "2.0",
                ["id"] = request["id"]!.DeepClone(),
                ["error"] = new JsonObject { ["code"] = -32602, ["message"] = "bad" },
            }.ToJsonString()));
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;

        var error = await Assert.ThrowsAsync<SdkException>(() => client.CreateVariableAsync("x"));

        Assert.Equal("KeyError", error.PythonType);
        Assert.Equal("'data'", error.Message);
        Assert.Contains(client.Violations, v => v.Contains("without error.data", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ErrorReplyWithData_RaisesItsException()
    {
        await using var server = FakeRpcServer.Start((conn, request) => conn.SendTextAsync(
            new JsonObject
            {
                ["jsonrpc"] = "2.0",
                ["id"] = request["id"]!.DeepClone(),
                ["error"] = JsonNode.Parse("""{"code": -32602, "message": "Invalid params", "data": {"exception": "Unknown variable_id: 'nope'"}}"""),
            }.ToJsonString()));
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;

        var error = await Assert.ThrowsAsync<SdkException>(() => client.RunFunctionAsync("Add", Arr("a")));

        Assert.Equal("Unknown variable_id: 'nope'", error.Message);
        Assert.Empty(client.Violations);
    }

    [Fact]
    public async Task UpdateVariableEcho_IsComparedWithPythonEquality()
    {
        await using var server = FakeRpcServer.Start(async (conn, request) =>
        {
            var id = request["id"]!.GetValue<string>();
            var p = request["params"]!;
            if (request["method"]!.GetValue<string>() == "create_variable")
            {
                await conn.ReplyAsync(id, new JsonObject { ["variable_id"] = "v1", ["message"] = "Variable created successfully." });
                return;
            }

            // Python equality: key order does not matter and 1 == 1.0; a changed value does.
            var value = p["value"]!.DeepClone();
            if (value is JsonObject o && o.ContainsKey("b"))
            {
                value = JsonNode.Parse("""{"b": 1.0, "a": [1, 2]}""");
            }
            else if (value is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() == "wrong")
            {
                value = "changed";
            }

            await conn.ReplyAsync(id, new JsonObject { ["variable_id"] = p["variable_id"]!.DeepClone(), ["field"] = p["field"]!.DeepClone(), ["value"] = value });
        });
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;
        var v = await client.CreateVariableAsync("x");

        await client.UpdateVariableAsync(v, "meta", JsonNode.Parse("""{"a": [1, 2], "b": 1}"""));
        await client.SetDataAsync(v, "new");
        var error = await Assert.ThrowsAsync<SdkException>(() => client.SetRoleAsync(v, "wrong"));

        Assert.Equal(
            "Server response mismatch: (received {'variable_id': 'v1', 'field': 'role', 'value': 'changed'}, but expected variable_id='v1', field='role', value='wrong')",
            error.Message);
        Assert.Equal(2, client.Frames.Count(f => f.Direction == "out" && f.Json?["params"]?["field"]?.GetValue<string>() == "data"));
        Assert.Empty(client.Violations);
    }

    [Fact]
    public async Task MalformedPushes_AreAnsweredAsThePythonListenerAnswersThem()
    {
        await using var server = FakeRpcServer.Start(async (conn, request) =>
        {
            await conn.PushAsync("delete_everything", new JsonObject());
            await conn.PushAsync("create_variable", new JsonObject { ["variable_id"] = "v9" });
            await conn.PushAsync("update_variable", new JsonObject { ["variable_id"] = "nope", ["field"] = "data", ["value"] = 1 });
            await conn.PushAsync("update_model", new JsonObject { ["model_id"] = "m0", ["field"] = "_usage", ["value"] = 1 });
            await conn.PushAsync("clear_step", new JsonObject { ["variable_ids"] = new JsonArray("ghost") });
            await conn.PushAsync("append_grad", JsonNode.Parse("""
                {"variable_id": "nope", "gradient_id": "g", "gradient": {"data": "d", "role": "r", "requires_grad": false, "variable_id": "g"}}
                """));
            await conn.SendTextAsync("""{"jsonrpc": "1.0", "id": "x1", "method": "heartbeat"}""");
            await conn.ReplyAsync(request["id"]!.GetValue<string>(), JsonNode.Parse(Record("v1", "_grad_fn", null)));
        });
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;

        await client.RunFunctionAsync("Add", Arr("a"));

        var conn = await server.Connection;
        async Task<JsonNode> ErrorOf(int push) => (await conn.AnswerAsync(conn.PushIds[push])).Json["error"]!;
        var unknown = await ErrorOf(0);
        Assert.Equal(-32601, unknown["code"]!.GetValue<int>());
        Assert.Equal("Method 'delete_everything' not found.", unknown["message"]!.GetValue<string>());
        Assert.Equal("delete_everything", unknown["data"]!["method"]!.GetValue<string>());
        var missing = await ErrorOf(1);
        Assert.Equal(-32602, missing["code"]!.GetValue<int>());
        Assert.Equal("Missing key: \"Missing key: 'obj_type'\"", missing["message"]!.GetValue<string>());
        Assert.Equal("\"Missing key: 'obj_type'\"", missing["data"]!["missing_key"]!.GetValue<string>());
        Assert.Equal("'NoneType' object has no attribute 'data'", (await ErrorOf(2))["data"]!["exception"]!.GetValue<string>());
        Assert.Equal("Failed to update model with ID 'm0': Model with id 'm0' not found in registry.", (await ErrorOf(3))["data"]!["exception"]!.GetValue<string>());
        Assert.Equal("Failed to update variable with ID None: Variable with id 'ghost' not found in registry.", (await ErrorOf(4))["data"]!["exception"]!.GetValue<string>());
        Assert.Equal("Variable.__init__() got an unexpected keyword argument 'variable_id'", (await ErrorOf(5))["data"]!["exception"]!.GetValue<string>());
        var version = (await conn.AnswerAsync("x1")).Json["error"]!;
        Assert.Equal(-32600, version["code"]!.GetValue<int>());
        Assert.Null(version["data"]);
        Assert.Equal(7, client.Violations.Count);
    }

    [Fact]
    public async Task OversizedMessage_IsAViolation_AndClosesLikeThePythonClient()
    {
        var options = new SdkClientOptions { MaxFrameBytes = 4096, CloseDelay = TimeSpan.Zero };
        await using var server = FakeRpcServer.Start(async (conn, request) =>
            await conn.ReplyAsync(request["id"]!.GetValue<string>(), new JsonObject { ["data"] = new string('x', 8000) }));
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", options);
        client.RunUuid = RunUuid;

        await Assert.ThrowsAsync<SdkException>(() => client.RunFunctionAsync("Add", Arr("a")));

        Assert.Contains(client.Violations, v => v.Contains("over 4096 bytes", StringComparison.Ordinal));
        Assert.NotNull(client.ClosedReason);
    }

    [Fact]
    public async Task DeflateAcceptedByTheServer_IsNegotiatedAndUsed()
    {
        var big = new string('a', 5000);
        await using var server = FakeRpcServer.Start(async (conn, request) =>
        {
            var pushId = await conn.PushAsync("create_variable", JsonNode.Parse($$$"""
                {"variable_id": "snap", "obj_type": "__parameter__", "data": "{{{big}}}", "role": "copy", "requires_grad": true,
                 "_retain_grad": false, "_grad": [], "_output_nr": 0, "_grad_fn": null, "is_leaf": true}
                """));
            await conn.AnswerAsync(pushId);
            await conn.ReplyAsync(request["id"]!.GetValue<string>(), new JsonObject { ["variable_id"] = "v1", ["message"] = "Variable created successfully." });
        }, deflate: true);
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;

        var v = await client.CreateVariableAsync(big, "prompt");

        Assert.Equal("v1", v.Id);
        Assert.Equal(big, client.Variables["snap"].Data!.GetValue<string>());
        Assert.True(client.Variables["snap"].IsParameter);
        Assert.True(client.WelcomeInFirstRead);
        Assert.Empty(client.Violations);
    }

    [Fact]
    public async Task PausedReading_LeavesPushesUnanswered_UntilResumed()
    {
        var pushed = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = FakeRpcServer.Start(async (conn, request) =>
        {
            await conn.ReplyAsync(request["id"]!.GetValue<string>(), new JsonObject { ["variable_id"] = "v1", ["message"] = "Variable created successfully." });
            pushed.SetResult(await conn.PushAsync("create_node", new JsonObject { ["node_id"] = "n1", ["name"] = "AddBackward0" }));
        });
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;
        await client.CreateVariableAsync("x");

        client.PauseReading();
        var pushId = await pushed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var answer = (await server.Connection).AnswerAsync(pushId);
        await Task.Delay(300);
        Assert.False(answer.IsCompleted);
        Assert.False(client.Nodes.ContainsKey("n1"));

        client.ResumeReading();
        Assert.Equal("Ok", (await answer).Json["result"]!["message"]!.GetValue<string>());
        Assert.True(client.Nodes.ContainsKey("n1"));
        Assert.Empty(client.Violations);
    }

    [Fact]
    public async Task Abort_FailsTheCallInFlight()
    {
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = FakeRpcServer.Start((_, _) =>
        {
            received.SetResult();
            return Task.CompletedTask;
        });
        await using var client = await SdkClient.ConnectAsync(server.Url, "good-key", Fast);
        client.RunUuid = RunUuid;

        var call = client.RunFunctionAsync("Add", Arr("a"));
        await received.Task.WaitAsync(TimeSpan.FromSeconds(10));
        client.Abort();

        var error = await Assert.ThrowsAsync<SdkException>(() => call);
        Assert.Contains("connection", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<SdkException>(() => client.CreateVariableAsync("y"));
    }

    [Fact]
    public void PyJson_DumpsAndReprAsPythonDoes()
    {
        var value = new JsonObject
        {
            ["a"] = "\u00e9\u2028\u007f\u0001",
            ["b"] = new JsonArray(1.0, 2, true, null),
        };
        Assert.Equal("""{"a": "\u00e9\u2028\u007f\u0001", "b": [1.0, 2, true, null]}""", PyJson.Dumps(value));
        Assert.Equal("{'a': '\u00e9\\u2028\\x7f\\x01', 'b': [1.0, 2, True, None]}", PyJson.Repr(value));
        Assert.Equal("""{"x": 0.0, "y": 100.0, "z": 0}""", PyJson.Dumps(PyJson.Loads("""{"x": 0.0, "y": 1E2, "z": -0}""")));

        double[] floats = [1e16, 1e15, 0.0001, 0.00001, 1.5e-7, 123456789012345678.0, -0.0, 2.5e300, 0.1 + 0.2, 3.0];
        Assert.Equal(
            new[] { "1e+16", "1000000000000000.0", "0.0001", "1e-05", "1.5e-07", "1.2345678901234568e+17", "-0.0", "2.5e+300", "0.30000000000000004", "3.0" },
            floats.Select(PyJson.FloatRepr));
        Assert.Equal("\"it's\"", PyJson.ReprString("it's"));
        Assert.Equal("'a\"b'", PyJson.ReprString("a\"b"));
        Assert.Equal("'a\\'b\"c'", PyJson.ReprString("a'b\"c"));

        Assert.True(PyJson.Equal(JsonNode.Parse("""{"a": [1, 2], "b": 1}"""), JsonNode.Parse("""{"b": 1.0, "a": [1, 2]}""")));
        Assert.True(PyJson.Equal(JsonNode.Parse("[1]"), JsonNode.Parse("[true]")));
        Assert.False(PyJson.Equal(JsonNode.Parse("\"1\""), JsonNode.Parse("1")));
        Assert.False(PyJson.Equal(null, new JsonObject()));
        Assert.False(PyJson.Equal(JsonNode.Parse("[1, 2]"), JsonNode.Parse("[2, 1]")));
    }

    private static string Record(string id, string gradFnKey, string? gradFn) => new JsonObject
    {
        ["data"] = new JsonObject
        {
            ["variable_id"] = id,
            ["data"] = "out",
            ["role"] = "r",
            ["requires_grad"] = true,
            ["_retain_grad"] = false,
            ["_grad"] = new JsonArray(),
            ["_output_nr"] = 0,
            [gradFnKey] = gradFn,
            ["is_leaf"] = gradFn is null,
        },
    }.ToJsonString();

    private static JsonArray Arr(params JsonNode?[] items) => new(items);

    /// <summary>
    /// Serves the recording: each client request must equal the recorded one (callable ids are the client's
    /// own, so they are mapped), then the recorded pushes go out and the recorded reply follows.
    /// </summary>
    private sealed class RecordedReplay
    {
        private readonly Queue<Exchange> _exchanges;
        private readonly Dictionary<string, string> _callables = [];
        private readonly ConcurrentQueue<string> _mismatches = new();
        private readonly ConcurrentQueue<string> _callablePushIds = new();

        private RecordedReplay(Queue<Exchange> exchanges) => _exchanges = exchanges;

        public IReadOnlyCollection<string> Mismatches => _mismatches;

        public IReadOnlyList<string> CallablePushIds => [.. _callablePushIds];

        public int Remaining => _exchanges.Count;

        private sealed record Exchange(string Method, JsonObject Params, List<(string Method, JsonNode? Params)> Pushes)
        {
            public JsonObject? Reply { get; set; }
        }

        public static RecordedReplay Load(string path)
        {
            var exchanges = new Queue<Exchange>();
            Exchange? current = null;
            foreach (var line in File.ReadLines(path))
            {
                var entry = PyJson.Loads(line)!.AsObject();
                switch (entry["kind"]!.GetValue<string>())
                {
                    case "c->s":
                        current = new Exchange(entry["method"]!.GetValue<string>(), entry["params"]!.AsObject(), []);
                        exchanges.Enqueue(current);
                        break;
                    case "s->c":
                        current!.Pushes.Add((entry["method"]!.GetValue<string>(), entry["params"]));
                        break;
                    case "reply":
                        current!.Reply = entry["resp"]!.AsObject();
                        break;
                }
            }

            return new RecordedReplay(exchanges);
        }

        public async Task HandleAsync(FakeConnection conn, JsonObject request)
        {
            var id = request["id"]!.GetValue<string>();
            if (!_exchanges.TryDequeue(out var expected))
            {
                _mismatches.Enqueue($"unexpected request {request.ToJsonString()}");
                return;
            }

            var actual = request["params"]!;
            MapCallables(expected.Params, actual);
            var want = Substitute(expected.Params, "");
            if (request["method"]!.GetValue<string>() != expected.Method || PyJson.Dumps(want) != PyJson.Dumps(actual))
            {
                _mismatches.Enqueue($"expected {expected.Method} {PyJson.Dumps(want)}\n     got {request["method"]} {PyJson.Dumps(actual)}");
            }

            var recordedId = expected.Reply!["id"]!.GetValue<string>();
            foreach (var (method, parameters) in expected.Pushes)
            {
                var p = Substitute(parameters, recordedId, id);
                if (method == "heartbeat")
                {
                    await conn.NotifyAsync(method, p);
                }
                else
                {
                    var pushId = await conn.PushAsync(method, p);
                    if (method == "run_callable")
                    {
                        _callablePushIds.Enqueue(pushId);
                    }
                }
            }

            var reply = expected.Reply.DeepClone().AsObject();
            reply["id"] = id;
            await conn.SendTextAsync(PyJson.Dumps(reply));
        }

        private void MapCallables(JsonNode? recorded, JsonNode? actual)
        {
            switch (recorded)
            {
                case JsonObject r when r["__callable__"] is not null && actual is JsonObject a && a["callable_id"] is { } cid:
                    _callables[r["callable_id"]!.GetValue<string>()] = cid.GetValue<string>();
                    break;
                case JsonObject r when actual is JsonObject a:
                    foreach (var (key, value) in r)
                    {
                        MapCallables(value, a[key]);
                    }

                    break;
                case JsonArray r when actual is JsonArray a:
                    for (var n = 0; n < Math.Min(r.Count, a.Count); n++)
                    {
                        MapCallables(r[n], a[n]);
                    }

                    break;
            }
        }

        private JsonNode? Substitute(JsonNode? node, string recordedId, string actualId = "")
        {
            var copy = node?.DeepClone();
            Replace(copy);
            return copy;

            void Replace(JsonNode? n)
            {
                switch (n)
                {
                    case JsonObject o:
                        foreach (var key in o.Select(kv => kv.Key).ToList())
                        {
                            if (o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String)
                            {
                                var s = v.GetValue<string>();
                                if (recordedId.Length > 0 && s == recordedId)
                                {
                                    o[key] = actualId;
                                }
                                else if (_callables.TryGetValue(s, out var mapped))
                                {
                                    o[key] = mapped;
                                }
                            }
                            else
                            {
                                Replace(o[key]);
                            }
                        }

                        break;
                    case JsonArray a:
                        foreach (var item in a)
                        {
                            Replace(item);
                        }

                        break;
                }
            }
        }
    }
}

/// <summary>
/// A scripted stand-in for the server, just enough to exercise the simulator: the RFC 6455 handshake by
/// hand (so the 101 and the welcome can be written together or apart), then a server-side WebSocket.
/// </summary>
internal sealed class FakeRpcServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<FakeConnection, JsonObject, Task> _onRequest;
    private readonly WelcomeWrite _welcome;
    private readonly int _rejectStatus;
    private readonly bool _deflate;
    private readonly TaskCompletionSource<FakeConnection> _connection = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private TcpClient? _tcp;

    private FakeRpcServer(Func<FakeConnection, JsonObject, Task> onRequest, WelcomeWrite welcome, int rejectStatus, bool deflate)
    {
        _onRequest = onRequest;
        _welcome = welcome;
        _rejectStatus = rejectStatus;
        _deflate = deflate;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Url = new Uri($"ws://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _accept = Task.Run(AcceptAsync);
    }

    public enum WelcomeWrite
    {
        WithThe101,
        Separately,
    }

    public Uri Url { get; }

    public string RequestHead { get; private set; } = "";

    public Task<FakeConnection> Connection => _connection.Task.WaitAsync(TimeSpan.FromSeconds(10));

    public static FakeRpcServer Start(
        Func<FakeConnection, JsonObject, Task> onRequest, WelcomeWrite welcome = WelcomeWrite.WithThe101, int rejectStatus = 0, bool deflate = false) =>
        new(onRequest, welcome, rejectStatus, deflate);

    private async Task AcceptAsync()
    {
        try
        {
            _tcp = await _listener.AcceptTcpClientAsync(_stop.Token);
            var stream = _tcp.GetStream();
            var head = new MemoryStream();
            var one = new byte[1];
            while (!head.GetBuffer().AsSpan(0, (int)head.Length).EndsWith("\r\n\r\n"u8))
            {
                if (await stream.ReadAsync(one, _stop.Token) == 0)
                {
                    return;
                }

                head.Write(one);
            }

            RequestHead = Encoding.ASCII.GetString(head.ToArray());
            if (_rejectStatus != 0)
            {
                const string body = """{"detail": "Invalid API key."}""";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(
                    $"HTTP/1.1 {_rejectStatus} Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
                _tcp.Close();
                return;
            }

            var key = RequestHead.Split("\r\n").First(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))[18..].Trim();
            var upgrade = Encoding.ASCII.GetBytes(
                $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {WebSocketUpgrade.AcceptFor(key)}\r\n"
                + (_deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n" : "")
                + "\r\n");
            var welcome = TextFrame("""{"jsonrpc": "2.0", "result": {"session_id": "sess-1"}}""");
            if (_welcome == WelcomeWrite.WithThe101)
            {
                await stream.WriteAsync(upgrade.Concat(welcome).ToArray(), _stop.Token);
            }
            else
            {
                await stream.WriteAsync(upgrade, _stop.Token);
                await stream.FlushAsync(_stop.Token);
                await Task.Delay(200, _stop.Token);
                await stream.WriteAsync(welcome, _stop.Token);
            }

            // The welcome went out uncompressed (RSV1 clear), which permessage-deflate allows.
            var ws = WebSocket.CreateFromStream(stream, new WebSocketCreationOptions
            {
                IsServer = true,
                KeepAliveInterval = TimeSpan.Zero,
                DangerousDeflateOptions = _deflate ? new WebSocketDeflateOptions() : null,
            });
            var connection = new FakeConnection(ws, _onRequest);
            connection.Start();
            _connection.SetResult(connection);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException)
        {
            _connection.TrySetException(ex);
        }
    }

    /// <summary>An unmasked, unfragmented server text frame.</summary>
    private static byte[] TextFrame(string text)
    {
        var payload = Encoding.UTF8.GetBytes(text);
        byte[] header = payload.Length switch
        {
            < 126 => [0x81, (byte)payload.Length],
            < 65536 => [0x81, 126, (byte)(payload.Length >> 8), (byte)payload.Length],
            _ => [0x81, 127, 0, 0, 0, 0, (byte)(payload.Length >> 24), (byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length],
        };
        return [.. header, .. payload];
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_connection.Task.IsCompletedSuccessfully)
        {
            await (await _connection.Task).DisposeAsync();
        }

        _listener.Stop();
        try
        {
            await _accept;
        }
        catch (OperationCanceledException)
        {
        }

        _tcp?.Dispose();
        _listener.Dispose();
        _stop.Dispose();
    }
}

/// <summary>One accepted connection of the fake: requests go to the script one at a time, answers to pushes are collected.</summary>
internal sealed class FakeConnection(WebSocket ws, Func<FakeConnection, JsonObject, Task> onRequest) : IAsyncDisposable
{
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly Channel<JsonObject> _requests = Channel.CreateUnbounded<JsonObject>();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<(JsonNode Json, string Text)>> _answers = new();
    private readonly ConcurrentQueue<string> _pushIds = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private Task _receive = Task.CompletedTask;
    private Task _work = Task.CompletedTask;

    /// <summary>The ids of the pushes sent with an id, in order.</summary>
    public IReadOnlyList<string> PushIds => [.. _pushIds];

    /// <summary>Exceptions of the script, which would otherwise vanish in the worker.</summary>
    public IReadOnlyCollection<string> Errors => _errors;

    public void Start()
    {
        _receive = Task.Run(ReceiveAsync);
        _work = Task.Run(WorkAsync);
    }

    public async Task<string> PushAsync(string method, JsonNode? parameters)
    {
        var id = Guid.NewGuid().ToString();
        Answer(id);
        _pushIds.Enqueue(id);
        await SendTextAsync(new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id, ["method"] = method, ["params"] = parameters?.DeepClone() }.ToJsonString());
        return id;
    }

    public Task NotifyAsync(string method, JsonNode? parameters) =>
        SendTextAsync(new JsonObject { ["jsonrpc"] = "2.0", ["method"] = method, ["params"] = parameters?.DeepClone() }.ToJsonString());

    public Task ReplyAsync(string id, JsonNode? result) =>
        SendTextAsync(new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id, ["result"] = result?.DeepClone() }.ToJsonString());

    public async Task SendTextAsync(string text)
    {
        await _send.WaitAsync();
        try
        {
            await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);
        }
        finally
        {
            _send.Release();
        }
    }

    /// <summary>The client's answer to a push (or to any message with that id).</summary>
    public async Task<(JsonNode Json, string Text)> AnswerAsync(string id) => await Answer(id).Task.WaitAsync(TimeSpan.FromSeconds(10));

    private TaskCompletionSource<(JsonNode Json, string Text)> Answer(string id) =>
        _answers.GetOrAdd(id, _ => new TaskCompletionSource<(JsonNode, string)>(TaskCreationOptions.RunContinuationsAsynchronously));

    private async Task ReceiveAsync()
    {
        var buffer = new byte[1 << 20];
        try
        {
            while (true)
            {
                using var message = new MemoryStream();
                ValueWebSocketReceiveResult r;
                do
                {
                    r = await ws.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                    message.Write(buffer, 0, r.Count);
                }
                while (!r.EndOfMessage);

                if (r.MessageType == WebSocketMessageType.Close)
                {
                    if (ws.State == WebSocketState.CloseReceived)
                    {
                        await _send.WaitAsync();
                        try
                        {
                            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
                        }
                        finally
                        {
                            _send.Release();
                        }
                    }

                    break;
                }

                var text = Encoding.UTF8.GetString(message.ToArray());
                var json = JsonNode.Parse(text)!.AsObject();
                if (json.ContainsKey("method"))
                {
                    await _requests.Writer.WriteAsync(json);
                }
                else if (json["id"] is JsonValue id && id.GetValueKind() == JsonValueKind.String)
                {
                    Answer(id.GetValue<string>()).TrySetResult((json, text));
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            _requests.Writer.TryComplete();
        }
    }

    private async Task WorkAsync()
    {
        await foreach (var request in _requests.Reader.ReadAllAsync())
        {
            try
            {
                await onRequest(this, request);
            }
#pragma warning disable CA1031 // A failing script must show up in the test's assertions, not kill the fake.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _errors.Enqueue(ex.ToString());
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        ws.Abort();
        await Task.WhenAny(Task.WhenAll(_receive, _work), Task.Delay(TimeSpan.FromSeconds(5)));
        ws.Dispose();
        _send.Dispose();
    }
}
