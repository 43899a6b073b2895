using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>
/// A stand-in for the afnio 0.3.1 Python client on the <c>/ws/v0/rpc/</c> channel: the same handshake,
/// the same frames, the same handling of replies and server pushes, and the same checks, so a test can
/// drive a server with it and learn whether the real client would have accepted every answer. Whatever
/// the real client would reject (or choke on) is recorded in <see cref="Violations"/>; the high-level
/// helpers in the other part of this class raise <see cref="SdkException"/> where the Python SDK raises.
/// </summary>
public sealed partial class SdkClient : IAsyncDisposable
{
    private static readonly HashSet<string> LongRunningMethods = ["run_function", "run_backward", "run_step", "run_optimizer_tgd"];
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    private readonly SdkClientOptions _options;
    private readonly TcpClient _tcp;
    private readonly WebSocket _ws;

    // The registries and the Sim objects are shared by the receive loop and the caller; this lock plays the
    // part of the GIL, so a push is applied atomically with respect to the helpers that read its effects.
    private readonly object _gate = new();
    private readonly object _logGate = new();
    private readonly List<string> _violations = [];
    private readonly List<string> _notes = [];
    private readonly List<SdkFrame> _frames = [];
    private readonly ConcurrentDictionary<string, PendingCall> _pending = new();
    private readonly ConcurrentDictionary<string, long> _heartbeats = new();
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, SimVariable> _variables = new();
    private readonly ConcurrentDictionary<string, SimNode> _nodes = new();
    private readonly ConcurrentDictionary<string, SimModel> _models = new();
    private readonly ConcurrentDictionary<string, SimOptimizer> _optimizers = new();
    private readonly ConcurrentDictionary<string, Func<JsonArray, JsonObject, JsonNode?>> _callables = new();

    private Task _receiveLoop = Task.CompletedTask;
    private TaskCompletionSource? _resume;
    private volatile string? _closedReason;
    private volatile bool _closing;
    private bool _disposed;

    // The Python listener keeps the id of the last message in a loop variable; its error paths answer
    // with that stale id, and die when there is none yet.
    private JsonNode? _staleId;
    private bool _hasStaleId;

    private SdkClient(SdkClientOptions options, TcpClient tcp, WebSocket ws, bool welcomeInFirstRead, string handshakeRequest)
    {
        _options = options;
        _tcp = tcp;
        _ws = ws;
        WelcomeInFirstRead = welcomeInFirstRead;
        HandshakeRequest = handshakeRequest;
    }

    public string SessionId { get; private set; } = "";

    /// <summary>Whether the first read after the upgrade request held the whole 101 and the whole welcome frame.</summary>
    public bool WelcomeInFirstRead { get; }

    /// <summary>The upgrade request exactly as written to the socket.</summary>
    public string HandshakeRequest { get; }

    /// <summary>The active run's uuid, stamped as <c>params.run_uuid</c>; calls without one fail as in Python.</summary>
    public string? RunUuid { get; set; }

    /// <summary>Everything the server did that the real client rejects, crashes on or is broken by.</summary>
    public IReadOnlyList<string> Violations
    {
        get
        {
            lock (_logGate)
            {
                return [.. _violations];
            }
        }
    }

    /// <summary>Oddities the real client silently accepts (kept for diagnosis, not failures).</summary>
    public IReadOnlyList<string> Notes
    {
        get
        {
            lock (_logGate)
            {
                return [.. _notes];
            }
        }
    }

    public IReadOnlyList<SdkFrame> Frames
    {
        get
        {
            lock (_logGate)
            {
                return [.. _frames];
            }
        }
    }

    public IReadOnlyDictionary<string, SimVariable> Variables => _variables;

    public IReadOnlyDictionary<string, SimNode> Nodes => _nodes;

    public IReadOnlyDictionary<string, SimModel> Models => _models;

    public IReadOnlyDictionary<string, SimOptimizer> Optimizers => _optimizers;

    /// <summary>Why the connection is gone, or null while it is up.</summary>
    public string? ClosedReason => _closedReason;

    /// <summary>
    /// Connects the way <c>websockets.connect</c> does for the afnio client: raw TCP, a hand-written upgrade
    /// request, then the welcome frame read before anything else.
    /// </summary>
    /// <param name="wsBase"><c>ws://host:port</c> (a path, if any, is kept and <c>/ws/v0/rpc/</c> appended).</param>
    /// <param name="apiKey">Sent as <c>Authorization: Api-Key &lt;key&gt;</c>.</param>
    /// <param name="options">Client settings; the defaults are the Python client's.</param>
    /// <param name="ct">Cancels the connect.</param>
    public static async Task<SdkClient> ConnectAsync(Uri wsBase, string apiKey, SdkClientOptions? options = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(wsBase);
        options ??= new SdkClientOptions();
        var path = wsBase.AbsolutePath;
        var resource = path.EndsWith("/ws/v0/rpc/", StringComparison.Ordinal) ? path : path.TrimEnd('/') + "/ws/v0/rpc/";
        using var open = CancellationTokenSource.CreateLinkedTokenSource(ct);
        open.CancelAfter(options.OpenTimeout);
        var tcp = new TcpClient { NoDelay = true };
        if (options.ReceiveBufferBytes is { } receiveBuffer)
        {
            tcp.ReceiveBufferSize = receiveBuffer;
        }

        try
        {
            await tcp.ConnectAsync(wsBase.DnsSafeHost, wsBase.Port, open.Token);
            Stream stream = tcp.GetStream();
            if (wsBase.Scheme == "wss")
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = wsBase.IdnHost }, open.Token);
                stream = ssl;
            }

            var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
            var request = WebSocketUpgrade.BuildRequest(wsBase, resource, key, apiKey, options.UserAgent);
            var upgrade = await WebSocketUpgrade.HandshakeAsync(stream, request, key, open.Token);
            var ws = WebSocket.CreateFromStream(upgrade.Stream, new WebSocketCreationOptions
            {
                IsServer = false,
                KeepAliveInterval = options.PingInterval ?? TimeSpan.Zero,
                KeepAliveTimeout = options.PingInterval ?? Timeout.InfiniteTimeSpan,
                DangerousDeflateOptions = upgrade.Deflate,
            });
            var client = new SdkClient(options, tcp, ws, upgrade.WelcomeInFirstRead, request);
            foreach (var note in upgrade.Notes)
            {
                client.Note(note);
            }

            try
            {
                await client.ReadWelcomeAsync(ct);
            }
            catch
            {
                ws.Abort();
                ws.Dispose();
                throw;
            }

            client._receiveLoop = Task.Run(client.ReceiveLoopAsync, CancellationToken.None);
            return client;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            tcp.Dispose();
            throw new TimeoutException("timed out during opening handshake");
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    private async Task ReadWelcomeAsync(CancellationToken ct)
    {
        Message welcome;
        try
        {
            welcome = await ReceiveMessageAsync(ct).AsTask().WaitAsync(_options.RequestTimeout, ct);
        }
        catch (TimeoutException)
        {
            Violation($"no welcome frame within {Seconds(_options.RequestTimeout)} s of the 101: the Python client's login waits for it forever");
            throw new SdkException("Failed to connect to WebSocket after multiple attempts.");
        }

        if (welcome.TooBig)
        {
            Violation($"the welcome frame is over {_options.MaxFrameBytes} bytes: the Python client closes the connection");
            throw new SdkException("Failed to connect to WebSocket after multiple attempts.");
        }

        if (welcome.Type == WebSocketMessageType.Close)
        {
            Violation($"server closed the connection ({welcome.CloseStatus} {welcome.CloseDescription}) instead of sending the welcome frame");
            throw new SdkException("Failed to connect to WebSocket after multiple attempts.");
        }

        var text = Encoding.UTF8.GetString(welcome.Data);
        JsonNode? json = null;
        try
        {
            json = PyJson.Loads(text);
        }
        catch (JsonException)
        {
        }

        Record("in", json, text);
        if (welcome.Type == WebSocketMessageType.Binary)
        {
            Violation("the welcome came as a binary frame; the protocol is text frames");
        }

        if (json is not JsonObject obj || (obj.TryGetPropertyValue("result", out var result) && result is not JsonObject))
        {
            Violation($"the welcome frame is not {{\"jsonrpc\": \"2.0\", \"result\": {{\"session_id\": ...}}}}: the Python client's connect fails on it: {PyJson.Snip(text)}");
            throw new SdkException("Failed to connect to WebSocket after multiple attempts.");
        }

        var sessionId = (result as JsonObject)?["session_id"];
        if (sessionId is null)
        {
            Violation($"the welcome frame carries no result.session_id: {PyJson.Snip(text)}");
        }
        else
        {
            SessionId = PyJson.PyStr(sessionId);
        }

        if (obj.ContainsKey("id") || obj.ContainsKey("method"))
        {
            Violation($"the welcome frame must carry neither id nor method: {PyJson.Snip(text)}");
        }

        if (!PyJson.IsStr(obj["jsonrpc"], "2.0"))
        {
            Violation($"the welcome frame lacks \"jsonrpc\": \"2.0\": {PyJson.Snip(text)}");
        }

        if (!WelcomeInFirstRead)
        {
            Violation("the welcome frame did not arrive in the same read as the 101 response: the Python client's listener "
                + "then races its own welcome read and dies with ConcurrencyError, after which every call times out");
        }
    }

    // ---- calls --------------------------------------------------------------------------------------------

    /// <summary>
    /// One JSON-RPC call, as <c>TellurioWebSocketClient.call</c> makes it: <c>params.run_uuid</c> is set on
    /// <paramref name="parameters"/> itself (the Python client mutates its payload dict too), pushes that arrive
    /// first are applied in order, and long-running methods wait as long as heartbeats keep coming.
    /// </summary>
    /// <returns>The whole response object, with "result" or "error".</returns>
    public async Task<JsonObject> CallAsync(string method, JsonObject parameters, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(parameters);
        if (RunUuid is null)
        {
            throw new SdkException("No active run is set.", "ValueError");
        }

        if (_closedReason is { } reason)
        {
            throw new SdkException($"WebSocket is not connected ({reason})");
        }

        parameters["run_uuid"] = RunUuid;
        var id = Guid.NewGuid().ToString();
        var request = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["method"] = method,
            ["params"] = parameters.DeepClone(),
            ["id"] = id,
        };
        var call = new PendingCall(method);
        _pending[id] = call;
        var timeout = _options.RequestTimeout;
        try
        {
            await SendAsync(request, ct);
            if (!LongRunningMethods.Contains(method))
            {
                if (!await CompletesWithinAsync(call.Task, timeout, ct))
                {
                    Violation($"no reply to {method} (id {id}) within {Seconds(timeout)} s: the Python client raises TimeoutError");
                    throw new TimeoutException($"Request timed out: {method} (id {id})");
                }

                return (JsonObject)(await call.Task).DeepClone();
            }

            // The Python loop re-arms a full timeout each round and only then looks at the last heartbeat,
            // so a gap is noticed at the end of the round in which it exceeded the timeout.
            _heartbeats[id] = Stopwatch.GetTimestamp();
            var last = Stopwatch.GetTimestamp();
            while (true)
            {
                if (await CompletesWithinAsync(call.Task, timeout, ct))
                {
                    return (JsonObject)(await call.Task).DeepClone();
                }

                if (_heartbeats.TryGetValue(id, out var beat))
                {
                    last = beat;
                }

                if (Stopwatch.GetElapsedTime(last) > timeout)
                {
                    Violation($"no reply and no heartbeat for {method} (id {id}) for over {Seconds(timeout)} s: the Python client raises TimeoutError");
                    throw new TimeoutException($"Request timed out (no heartbeat): {method} (id {id})");
                }
            }
        }
        finally
        {
            _pending.TryRemove(id, out _);
            _heartbeats.TryRemove(id, out _);
        }
    }

    private static async Task<bool> CompletesWithinAsync(Task task, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            await task.WaitAsync(timeout, ct);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Sends text as one text frame, unchecked, for malformed-input tests.</summary>
    public Task SendRawAsync(string text, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        JsonNode? json = null;
        try
        {
            json = PyJson.Loads(text);
        }
        catch (JsonException)
        {
        }

        return SendTextAsync(text, json, ct);
    }

    /// <summary>Registers a client-side callable, as serializing a Python function does; the server runs it with <c>run_callable</c>.</summary>
    /// <param name="fn">Gets the positional args and keyword args; runs inside the receive loop, so it must be quick and must not call the client.</param>
    public JsonObject RegisterCallable(Func<JsonArray, JsonObject, JsonNode?> fn)
    {
        ArgumentNullException.ThrowIfNull(fn);
        var id = Guid.NewGuid().ToString();
        _callables[id] = fn;
        return new JsonObject { ["__callable__"] = true, ["callable_id"] = id };
    }

    /// <summary>The wire reference to a variable, tagged by its kind as <c>_serialize_arg</c> tags it.</summary>
    public static JsonObject Ref(SimVariable v)
    {
        ArgumentNullException.ThrowIfNull(v);
        return new JsonObject { [v.IsParameter ? "__parameter__" : "__variable__"] = true, ["variable_id"] = v.Id };
    }

    public static JsonObject ModelRef(string modelId) => new() { ["__model_client__"] = true, ["model_id"] = modelId };

    /// <summary>
    /// Stops reading (a slow client): at most the message already being received is taken off the socket, and it is
    /// not handled until <see cref="ResumeReading"/>. Pings and pongs go unread meanwhile, so a pause longer than
    /// twice <see cref="SdkClientOptions.PingInterval"/> ends the connection (set it to null to avoid that).
    /// </summary>
    public void PauseReading() =>
        Interlocked.CompareExchange(ref _resume, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), null);

    public void ResumeReading() => Interlocked.Exchange(ref _resume, null)?.TrySetResult();

    /// <summary>Drops the TCP connection at once (a reset, no close handshake).</summary>
    public void Abort()
    {
        _closedReason ??= "aborted by the client";
        try
        {
            _tcp.Client.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        _ws.Abort();
        _tcp.Close();
        ResumeReading();
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        ResumeReading();
        if (_closedReason is null)
        {
            // close() sleeps first so late server requests still get their answers.
            await Task.Delay(_options.CloseDelay);
            _closing = true;
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _sendLock.WaitAsync(timeout.Token);
                try
                {
                    if (_ws.State is WebSocketState.Open or WebSocketState.CloseReceived)
                    {
                        await _ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", timeout.Token);
                    }
                }
                finally
                {
                    _sendLock.Release();
                }
            }
            catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
            {
            }

            _closedReason ??= "closed by the client";
        }

        try
        {
            await _receiveLoop.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            _ws.Abort();
        }

        await _stop.CancelAsync();
        try
        {
            await _receiveLoop.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }

        _ws.Dispose();
        _tcp.Dispose();
        _stop.Dispose();
    }

    // ---- the listener -------------------------------------------------------------------------------------

    private readonly record struct Message(WebSocketMessageType Type, byte[] Data, bool TooBig, WebSocketCloseStatus? CloseStatus, string? CloseDescription);

    private async ValueTask<Message> ReceiveMessageAsync(CancellationToken ct)
    {
        var chunk = new byte[16 * 1024];
        using var data = new MemoryStream();
        var tooBig = false;
        while (true)
        {
            var r = await _ws.ReceiveAsync(chunk.AsMemory(), ct);
            if (r.MessageType == WebSocketMessageType.Close)
            {
                return new Message(r.MessageType, [], false, _ws.CloseStatus, _ws.CloseStatusDescription);
            }

            if (!tooBig && data.Length + r.Count > _options.MaxFrameBytes)
            {
                tooBig = true;
            }

            if (!tooBig)
            {
                data.Write(chunk, 0, r.Count);
            }

            if (r.EndOfMessage)
            {
                return new Message(r.MessageType, data.ToArray(), tooBig, null, null);
            }
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var reason = "connection closed";
        try
        {
            while (true)
            {
                await WhilePausedAsync();
                var message = await ReceiveMessageAsync(_stop.Token);

                // A receive was already pending when the pause began: hold what it brought, as a client that stopped reading would.
                await WhilePausedAsync();
                if (message.Type == WebSocketMessageType.Close)
                {
                    reason = $"server closed the connection ({message.CloseStatus} {message.CloseDescription})";
                    await AnswerCloseAsync(message.CloseStatus);
                    break;
                }

                if (_closing || _closedReason is not null)
                {
                    // The Python listener is cancelled (or its connection failed): nothing more is handled.
                    continue;
                }

                if (message.TooBig)
                {
                    Violation($"server sent a message over {_options.MaxFrameBytes} bytes: the Python client closes the connection (1009) and cannot reconnect");
                    _closedReason = "message too big";
                    await FailConnectionAsync(WebSocketCloseStatus.MessageTooBig, "over size limit");
                    continue;
                }

                if (message.Type == WebSocketMessageType.Binary)
                {
                    Violation($"server sent a binary frame ({message.Data.Length} bytes); the protocol is text frames");
                }

                string text;
                try
                {
                    text = StrictUtf8.GetString(message.Data);
                }
                catch (DecoderFallbackException)
                {
                    Violation("server sent a text frame that is not UTF-8: the Python client closes the connection (1007)");
                    _closedReason = "invalid UTF-8";
                    await FailConnectionAsync(WebSocketCloseStatus.InvalidPayloadData, "invalid UTF-8");
                    continue;
                }

                await HandleIncomingAsync(text);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            reason = "client stopped";
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException or SocketException or OperationCanceledException)
        {
            reason = $"connection lost: {ex.Message}";
            if (ex.Message.Contains("KeepAliveTimeout", StringComparison.Ordinal) && !_closing)
            {
                Violation($"no pong within {Seconds(_options.PingInterval ?? TimeSpan.Zero)} s of a ping: the Python client closes the connection (1011 keepalive ping timeout)");
            }
        }
#pragma warning disable CA1031 // The loop must end cleanly whatever happens; a fault of the simulator is reported, not thrown.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Violation($"simulator fault in the receive loop: {ex}");
            reason = $"simulator fault: {ex.Message}";
        }
        finally
        {
            if (!_closing && _closedReason is null)
            {
                Note(reason);
            }

            _closedReason ??= reason;
            foreach (var (id, call) in _pending)
            {
                call.TrySetException(new SdkException($"connection closed before the reply to {call.Method} (id {id}): {_closedReason}"));
            }
        }
    }

    private async Task WhilePausedAsync()
    {
        while (Volatile.Read(ref _resume) is { } gate)
        {
            await gate.Task.WaitAsync(_stop.Token);
        }
    }

    private async Task AnswerCloseAsync(WebSocketCloseStatus? status)
    {
        if (_ws.State != WebSocketState.CloseReceived)
        {
            return;
        }

        try
        {
            await _sendLock.WaitAsync();
            try
            {
                await _ws.CloseOutputAsync(status ?? WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
            }
            finally
            {
                _sendLock.Release();
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException)
        {
        }
    }

    private async Task FailConnectionAsync(WebSocketCloseStatus status, string description)
    {
        foreach (var (id, call) in _pending)
        {
            call.TrySetException(new SdkException($"connection failed before the reply to {call.Method} (id {id}): {description}"));
        }

        try
        {
            await _sendLock.WaitAsync();
            try
            {
                await _ws.CloseOutputAsync(status, description, CancellationToken.None);
            }
            finally
            {
                _sendLock.Release();
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException)
        {
        }
    }

    /// <summary>One incoming message, taken through the same branches, in the same order, as the Python listener.</summary>
    private async Task HandleIncomingAsync(string text)
    {
        JsonNode? json = null;
        string? parseError = null;
        try
        {
            json = PyJson.Loads(text);
        }
        catch (JsonException ex)
        {
            parseError = ex.Message;
        }

        Record("in", json, text);
        if (parseError is not null)
        {
            Violation($"server sent a frame that is not JSON ({parseError}): {PyJson.Snip(text)}");
            if (ListenerWouldDie())
            {
                return;
            }

            await SendErrorAsync(_staleId, -32700, "Parse error", new JsonObject { ["error"] = parseError }, "a non-JSON frame");
            return;
        }

        if (json is not JsonObject obj)
        {
            Violation($"server sent a JSON {PyJson.TypeName(json)}, not an object: {PyJson.Snip(text)}");
            if (ListenerWouldDie())
            {
                return;
            }

            await SendErrorAsync(_staleId, -32603, "Internal error",
                new JsonObject { ["exception"] = $"'{PyJson.TypeName(json)}' object has no attribute 'get'" }, "a non-object frame");
            return;
        }

        obj.TryGetPropertyValue("id", out var id);
        _staleId = id?.DeepClone();
        _hasStaleId = true;

        if (!PyJson.IsStr(obj["jsonrpc"], "2.0"))
        {
            await SendErrorAsync(id, -32600, "Invalid JSON-RPC version. Expected '2.0'.", null,
                $"a frame with jsonrpc={PyJson.Repr(obj["jsonrpc"])} ({PyJson.Snip(text)})");
            return;
        }

        var hasMethod = obj.ContainsKey("method");
        if (PyJson.Truthy(id) && !hasMethod)
        {
            await OnReplyAsync(obj, id!, text);
            return;
        }

        if (!hasMethod)
        {
            await SendErrorAsync(id, -32600, "Missing required field: method", null, $"a frame with neither a usable id nor a method ({PyJson.Snip(text)})");
            return;
        }

        var method = obj["method"];
        var name = PyJson.PyStr(method);
        var handler = HandlerFor(name);
        if (handler is null)
        {
            await SendErrorAsync(id, -32601, $"Method '{name}' not found.", new JsonObject { ["method"] = method?.DeepClone() }, $"push '{name}'");
            return;
        }

        var parameters = obj.TryGetPropertyValue("params", out var p) ? p : new JsonObject();
        JsonNode? result;
        try
        {
            lock (_gate)
            {
                result = handler(parameters);
            }
        }
        catch (PyError e)
        {
            if (e.Is("KeyError"))
            {
                await SendErrorAsync(id, -32602, $"Missing key: {e.Message}", new JsonObject { ["missing_key"] = e.Message }, $"push '{name}'");
            }
            else
            {
                await SendErrorAsync(id, -32603, "Internal error", new JsonObject { ["exception"] = e.Message }, $"push '{name}'");
            }

            return;
        }
#pragma warning disable CA1031 // A fault of the simulator itself must not kill its listener; it is reported instead.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Violation($"simulator fault while handling push '{name}': {e}");
            await SendErrorAsync(id, -32603, "Internal error", new JsonObject { ["exception"] = e.Message }, $"push '{name}'");
            return;
        }

        if (id is null)
        {
            if (name != "heartbeat")
            {
                Note($"push '{name}' came as a notification: the Python client applies it but cannot report errors back");
            }

            return;
        }

        if (name == "heartbeat")
        {
            Note("a heartbeat came with an id: the Python client answers it with result null");
        }

        await SendAsync(new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id.DeepClone(), ["result"] = result }, CancellationToken.None);
    }

    /// <summary>
    /// The Python client notices a silent stretch only at the end of one of its timeout rounds, so a gap a little
    /// over the timeout passes or fails depending on timing; any such gap is reported even when this call survived.
    /// </summary>
    private void CheckHeartbeatGap(string id, string method, string what)
    {
        if (LongRunningMethods.Contains(method) && _heartbeats.TryGetValue(id, out var previous)
            && Stopwatch.GetElapsedTime(previous) is var gap && gap > _options.RequestTimeout)
        {
            Violation($"{Seconds(gap)} s without a heartbeat before this {what} for {method} (id {id}): over the "
                + $"{Seconds(_options.RequestTimeout)} s after which the Python client may give up");
        }
    }

    private bool ListenerWouldDie()
    {
        if (_hasStaleId)
        {
            return false;
        }

        Violation("this is the first message the Python listener handles, so its error path fails on an unset req_id "
            + "and the listener ends: every later call would time out");
        return true;
    }

    private async Task OnReplyAsync(JsonObject obj, JsonNode id, string text)
    {
        if (id is JsonObject or JsonArray)
        {
            await SendErrorAsync(id, -32603, "Internal error",
                new JsonObject { ["exception"] = $"unhashable type: '{PyJson.TypeName(id)}'" }, $"a reply whose id is a {PyJson.TypeName(id)}");
            return;
        }

        if (!PyJson.IsStr(id, out var key) || !_pending.TryRemove(key, out var call))
        {
            Violation($"reply for unknown id {PyJson.Repr(id)} (no call waits for it; the Python client drops it): {PyJson.Snip(text)}");
            return;
        }

        CheckHeartbeatGap(key, call.Method, "reply");

        if (obj.ContainsKey("error"))
        {
            if (obj["error"] is not JsonObject error)
            {
                Violation($"reply to {call.Method} has an error that is not an object: the Python client crashes reading it: {PyJson.Snip(text)}");
            }
            else if (!error.ContainsKey("data"))
            {
                Violation($"error reply to {call.Method} without error.data: the Python client raises KeyError('data') instead of the server's message: {PyJson.Snip(text)}");
            }

            call.TrySetResult(obj);
        }
        else if (obj.ContainsKey("result"))
        {
            call.TrySetResult(obj);
        }
        else
        {
            Violation($"reply to {call.Method} with neither result nor error: {PyJson.Snip(text)}");
            call.TrySetException(new SdkException($"Unexpected response format: {PyJson.Repr(obj)}", "ValueError"));
        }
    }

    private Task SendErrorAsync(JsonNode? id, int code, string message, JsonObject? data, string context)
    {
        var error = new JsonObject { ["code"] = code, ["message"] = message };
        if (data is { Count: > 0 })
        {
            error["data"] = data;
        }

        Violation($"the client answered {context} with error {code} \"{message}\"{(data is { Count: > 0 } ? " " + PyJson.Dumps(data) : "")}");
        return SendAsync(new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id?.DeepClone(), ["error"] = error }, CancellationToken.None);
    }

    // ---- plumbing -----------------------------------------------------------------------------------------

    private Task SendAsync(JsonObject message, CancellationToken ct) => SendTextAsync(PyJson.Dumps(message), message, ct);

    private async Task SendTextAsync(string text, JsonNode? json, CancellationToken ct)
    {
        await _sendLock.WaitAsync(ct);
        try
        {
            Record("out", json, text);
            await _ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, ct);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private void Record(string direction, JsonNode? json, string text)
    {
        lock (_logGate)
        {
            _frames.Add(new SdkFrame(direction, json, text, DateTimeOffset.UtcNow));
        }
    }

    private void Violation(string message)
    {
        lock (_logGate)
        {
            _violations.Add(message);
        }
    }

    private void Note(string message)
    {
        lock (_logGate)
        {
            _notes.Add(message);
        }
    }

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);

    private sealed class PendingCall(string method) : TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public string Method { get; } = method;
    }
}
