using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Threading.Channels;

namespace Afnio.Api.Sdk.Rpc;

/// <summary>A request from the client: its id (a string or a number, echoed as given), method and params.</summary>
public sealed record RpcRequest(JsonNode Id, string Method, JsonObject Params);

/// <summary>
/// One JSON-RPC 2.0 peer over a WebSocket, as the afnio client expects it: a receive loop that always
/// runs (so pings are answered and the client's replies to server requests are read at any time),
/// client requests handled one at a time in arrival order, server requests ("pushes") that the
/// client answers, heartbeats for long calls, and limits on message sizes, requests in flight and a
/// client that stops reading.
/// </summary>
public sealed partial class RpcConnection : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly WebSocket _socket;
    private readonly SdkOptions _options;
    private readonly ILogger _log;
    private readonly Func<RpcRequest, CancellationToken, Task<JsonNode?>> _dispatch;
    private readonly IReadOnlySet<string> _longRunning;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly ConcurrentDictionary<string, TaskCompletionSource<JsonObject>> _pending = new(StringComparer.Ordinal);
    private readonly Channel<RpcRequest> _requests;
    private readonly CancellationTokenSource _closed = new();

    public RpcConnection(
        WebSocket socket, SdkOptions options, ILogger log, IReadOnlySet<string> longRunningMethods,
        Func<RpcRequest, CancellationToken, Task<JsonNode?>> dispatch)
    {
        (_socket, _options, _log, _longRunning, _dispatch) = (socket, options, log, longRunningMethods, dispatch);
        _requests = Channel.CreateBounded<RpcRequest>(new BoundedChannelOptions(Math.Max(1, options.MaxRequestsInFlight))
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>Cancelled when the connection ends: the client closed it, dropped it, or stopped reading.</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>Sends the welcome frame, then serves the connection until it ends.</summary>
    public async Task RunAsync(JsonObject welcome, CancellationToken stopping)
    {
        using var link = CancellationTokenSource.CreateLinkedTokenSource(stopping, _closed.Token);
        var token = link.Token;
        try
        {
            await SendAsync(welcome, token);
            var processing = ProcessAsync(token);
            await ReceiveAsync(token);
            _requests.Writer.TryComplete();
            await _closed.CancelAsync();
            await processing;
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException)
        {
            // The client went away or the server is stopping.
        }
        finally
        {
            await _closed.CancelAsync();
            foreach (var pending in _pending.Values)
            {
                pending.TrySetCanceled(CancellationToken.None);
            }

            _pending.Clear();
            await CloseAsync();
        }
    }

    /// <summary>Sends a server request and waits for the client's answer (run_callable).</summary>
    /// <exception cref="RpcClientException">The client answered with an error.</exception>
    public async Task<JsonObject> CallClientAsync(string method, JsonObject parameters, TimeSpan timeout, CancellationToken ct)
    {
        var reply = await SendRequestAsync(method, parameters, ct);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct, _closed.Token);
        limit.CancelAfter(timeout);
        try
        {
            return await reply.WaitAsync(limit.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && !_closed.IsCancellationRequested)
        {
            throw new RpcClientException($"The client did not answer {method} within {timeout.TotalSeconds:F0} s.");
        }
    }

    /// <summary>
    /// Sends a server request whose answer is only checked: the client handles requests in arrival
    /// order, so anything sent before a reply is applied before the caller sees that reply.
    /// </summary>
    public async Task PushAsync(string method, JsonObject parameters, CancellationToken ct)
    {
        var reply = await SendRequestAsync(method, parameters, ct);
        _ = reply.ContinueWith(t =>
        {
            if (t.IsFaulted && t.Exception?.InnerException is RpcClientException e)
            {
                LogPushRefused(_log, method, e.Message);
            }
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Sends a notification (no id, no answer), such as a heartbeat.</summary>
    public Task NotifyAsync(string method, JsonObject parameters, CancellationToken ct) =>
        SendAsync(new JsonObject { ["jsonrpc"] = "2.0", ["method"] = method, ["params"] = parameters }, ct);

    public async ValueTask DisposeAsync()
    {
        await _closed.CancelAsync();
        _closed.Dispose();
        _sendLock.Dispose();
    }

    private async Task<Task<JsonObject>> SendRequestAsync(string method, JsonObject parameters, CancellationToken ct)
    {
        var id = Guid.NewGuid().ToString();
        var reply = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = reply;
        try
        {
            await SendAsync(new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id, ["method"] = method, ["params"] = parameters }, ct);
        }
        catch
        {
            _pending.TryRemove(id, out _);
            throw;
        }

        return reply.Task;
    }

    /// <summary>
    /// Sends one message. Messages the client would refuse (over <see cref="SdkOptions.MaxFrameBytes"/>)
    /// are not sent: the caller gets <see cref="RpcException"/>. A client that does not take a message
    /// within the send timeout is disconnected.
    /// </summary>
    private async Task SendAsync(JsonObject message, CancellationToken ct)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(message, Json);
        if (bytes.Length > _options.MaxFrameBytes)
        {
            throw new RpcException(RpcCodes.ServerError,
                $"The answer is {bytes.Length} bytes, more than the {_options.MaxFrameBytes} bytes the afnio client accepts in one message. " +
                "Use smaller batches; everything computed is stored and can be read through the REST API.", "message_too_large");
        }

        await _sendLock.WaitAsync(ct);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct, _closed.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(_options.SendTimeoutSeconds));
            try
            {
                await _socket.SendAsync(bytes, WebSocketMessageType.Text, endOfMessage: true, timeout.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested && !_closed.IsCancellationRequested)
            {
                // A cancelled send aborts the socket: the client stopped reading.
                LogSlowClient(_log, _options.SendTimeoutSeconds);
                await _closed.CancelAsync();
                throw;
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private async Task ReceiveAsync(CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (_socket.State == WebSocketState.Open && !ct.IsCancellationRequested)
            {
                var message = await ReadMessageAsync(buffer, ct);
                if (message is null)
                {
                    return;
                }

                await HandleMessageAsync(message.Value, ct);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private readonly record struct Incoming(string? Text, WebSocketMessageType Type, long Length, string Head, string Tail);

    /// <summary>One whole message; one over the size limit is read to its end, keeping only its first and last bytes.</summary>
    private async Task<Incoming?> ReadMessageAsync(byte[] buffer, CancellationToken ct)
    {
        const int Edge = 512;
        var kept = new ArrayBufferWriter<byte>();
        byte[]? head = null;
        var tail = new byte[Edge];
        var tailLength = 0;
        long length = 0;
        while (true)
        {
            var result = await _socket.ReceiveAsync(buffer.AsMemory(), ct);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return null;
            }

            length += result.Count;
            if (head is null && length <= _options.MaxMessageBytes)
            {
                kept.Write(buffer.AsSpan(0, result.Count));
            }
            else
            {
                if (head is null)
                {
                    head = kept.WrittenSpan[..Math.Min(Edge, kept.WrittenCount)].ToArray();
                    tailLength = KeepTail(tail, tailLength, kept.WrittenSpan);
                    kept.Clear();
                }

                tailLength = KeepTail(tail, tailLength, buffer.AsSpan(0, result.Count));
            }

            if (result.EndOfMessage)
            {
                return head is null
                    ? new Incoming(result.MessageType == WebSocketMessageType.Text ? Encoding.UTF8.GetString(kept.WrittenSpan) : null,
                        result.MessageType, length, string.Empty, string.Empty)
                    : new Incoming(null, result.MessageType, length, Encoding.UTF8.GetString(head), Encoding.UTF8.GetString(tail, 0, tailLength));
            }
        }
    }

    // The last bytes of everything seen so far, in tail[0..returned).
    private static int KeepTail(byte[] tail, int length, ReadOnlySpan<byte> more)
    {
        if (more.Length >= tail.Length)
        {
            more[^tail.Length..].CopyTo(tail);
            return tail.Length;
        }

        var keep = Math.Min(length, tail.Length - more.Length);
        tail.AsSpan(length - keep, keep).CopyTo(tail);
        more.CopyTo(tail.AsSpan(keep));
        return keep + more.Length;
    }

    private async Task HandleMessageAsync(Incoming message, CancellationToken ct)
    {
        if (message.Length > _options.MaxMessageBytes)
        {
            await SendErrorAsync(IdIn(message.Tail) ?? IdIn(message.Head), new RpcException(RpcCodes.InvalidRequest,
                $"The message has {message.Length} bytes; this server accepts messages of at most {_options.MaxMessageBytes} bytes.", "message_too_large"), ct);
            return;
        }

        if (message.Type != WebSocketMessageType.Text)
        {
            await SendErrorAsync(null, new RpcException(RpcCodes.InvalidRequest, "Send JSON-RPC 2.0 messages as text frames.", "invalid_request"), ct);
            return;
        }

        JsonObject json;
        try
        {
            json = JsonNode.Parse(message.Text!, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonObject
                ?? throw new RpcException(RpcCodes.InvalidRequest, "A JSON-RPC message must be a JSON object.", "invalid_request");
        }
        catch (JsonException e)
        {
            await SendErrorAsync(IdIn(message.Text!), new RpcException(RpcCodes.ParseError, "Parse error", "invalid_json",
                extra: new JsonObject { ["error"] = e.Message }), ct);
            return;
        }
        catch (RpcException e)
        {
            await SendErrorAsync(null, e, ct);
            return;
        }

        var id = json["id"];
        if (json["jsonrpc"] is not JsonValue version || version.GetValueKind() != JsonValueKind.String || version.GetValue<string>() != "2.0")
        {
            await SendErrorAsync(id, new RpcException(RpcCodes.InvalidRequest, "Invalid JSON-RPC version. Expected '2.0'.", "invalid_request"), ct);
            return;
        }

        if (!json.ContainsKey("method"))
        {
            if (id is JsonValue idValue && idValue.GetValueKind() == JsonValueKind.String && _pending.TryRemove(idValue.GetValue<string>(), out var reply))
            {
                CompletePush(reply, json);
                return;
            }

            // A response is never answered: the client answers an id-less error of ours with an error of its
            // own, and answering that would bounce errors back and forth for ever.
            if (id is not null || json.ContainsKey("result") || json.ContainsKey("error"))
            {
                LogUnexpectedReply(_log);
                return;
            }

            await SendErrorAsync(null, new RpcException(RpcCodes.InvalidRequest, "Missing required field: method", "invalid_request"), ct);
            return;
        }

        if (json["method"] is not JsonValue method || method.GetValueKind() != JsonValueKind.String)
        {
            await SendErrorAsync(id, new RpcException(RpcCodes.InvalidRequest, "'method' must be a string.", "invalid_request"), ct);
            return;
        }

        if (id is null)
        {
            // A notification: nothing to answer, and the client sends none the server acts on.
            return;
        }

        if (id.GetValueKind() is not (JsonValueKind.String or JsonValueKind.Number))
        {
            await SendErrorAsync(null, new RpcException(RpcCodes.InvalidRequest, "'id' must be a string or a number.", "invalid_request"), ct);
            return;
        }

        var parameters = json["params"] switch
        {
            null => new JsonObject(),
            JsonObject p => p,
            _ => null,
        };
        if (parameters is null)
        {
            await SendErrorAsync(id, RpcException.InvalidParams("'params' must be a JSON object of named parameters."), ct);
            return;
        }

        if (!_requests.Writer.TryWrite(new RpcRequest(id.DeepClone(), method.GetValue<string>(), (JsonObject)parameters.DeepClone())))
        {
            await SendErrorAsync(id, new RpcException(RpcCodes.ServerError,
                $"Too many requests in flight on this connection (at most {_options.MaxRequestsInFlight}); wait for the answers before sending more.",
                "too_many_requests"), ct);
        }
    }

    private static void CompletePush(TaskCompletionSource<JsonObject> reply, JsonObject json)
    {
        if (json["error"] is JsonObject error)
        {
            var text = error["data"]?["exception"]?.ToString() ?? error["message"]?.ToString() ?? error.ToJsonString();
            reply.TrySetException(new RpcClientException(text));
        }
        else
        {
            reply.TrySetResult(json["result"] as JsonObject ?? []);
        }
    }

    private async Task ProcessAsync(CancellationToken ct)
    {
        await foreach (var request in _requests.Reader.ReadAllAsync(ct))
        {
            using var heartbeats = _longRunning.Contains(request.Method) ? StartHeartbeats(request, ct) : null;
            JsonObject reply;
            try
            {
                var result = await _dispatch(request, ct);
                reply = new JsonObject { ["jsonrpc"] = "2.0", ["id"] = request.Id.DeepClone(), ["result"] = result };
            }
            catch (Exception e) when (ct.IsCancellationRequested && e is OperationCanceledException)
            {
                return;
            }
            catch (Exception e)
            {
                reply = ErrorReply(request.Id, Describe(request.Method, e));
            }

            if (heartbeats is not null)
            {
                await heartbeats.CancelAsync();
            }

            try
            {
                await SendAsync(reply, ct);
            }
            catch (RpcException tooLarge)
            {
                await SendAsync(ErrorReply(request.Id, tooLarge), ct);
            }
        }
    }

    private RpcException Describe(string method, Exception e)
    {
        if (RpcException.From(e) is { } known)
        {
            return known;
        }

        if (e is RpcClientException client)
        {
            return new RpcException(RpcCodes.ServerError, client.Message, "client_error");
        }

        LogFailure(_log, method, e);
        return new RpcException(RpcCodes.InternalError,
            $"The server failed to handle {method}; the failure is logged. Nothing this call would have stored was stored.", "internal_error");
    }

    /// <summary>A heartbeat at once, then every few seconds, until the call is answered.</summary>
    private CancellationTokenSource StartHeartbeats(RpcRequest request, CancellationToken ct)
    {
        var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var token = stop.Token;
        var interval = TimeSpan.FromSeconds(_options.HeartbeatSeconds);
        _ = Task.Run(async () =>
        {
            try
            {
                while (!token.IsCancellationRequested)
                {
                    await NotifyAsync("heartbeat", new JsonObject { ["id"] = request.Id.DeepClone() }, token);
                    await Task.Delay(interval, token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException or ObjectDisposedException)
            {
                // The call was answered, or the connection ended.
            }
        }, CancellationToken.None);
        return stop;
    }

    private Task SendErrorAsync(JsonNode? id, RpcException error, CancellationToken ct) => SendAsync(ErrorReply(id, error), ct);

    private static JsonObject ErrorReply(JsonNode? id, RpcException error) =>
        new() { ["jsonrpc"] = "2.0", ["id"] = id?.DeepClone(), ["error"] = error.ToError() };

    // The afnio client writes the request id last: the last "id" of a message's tail is the request's.
    private static JsonNode? IdIn(string text)
    {
        var matches = IdPattern().Matches(text);
        if (matches.Count == 0)
        {
            return null;
        }

        var value = matches[^1].Groups[1].Value;
        try
        {
            return JsonNode.Parse(value);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private async Task CloseAsync()
    {
        try
        {
            if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Already gone.
        }
    }

    [GeneratedRegex("\"id\"\\s*:\\s*(\"(?:[^\"\\\\]|\\\\.){1,200}\"|-?[0-9]{1,20})")]
    private static partial Regex IdPattern();

    [LoggerMessage(Level = LogLevel.Warning, Message = "The afnio client refused the server's {Method}: {Reason}")]
    private static partial void LogPushRefused(ILogger logger, string method, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "The afnio client answered a request the server did not send or no longer waits for")]
    private static partial void LogUnexpectedReply(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "An afnio client did not read a message within {Seconds} s; its connection is closed")]
    private static partial void LogSlowClient(ILogger logger, double seconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "The afnio protocol method {Method} failed")]
    private static partial void LogFailure(ILogger logger, string method, Exception exception);
}

/// <summary>The client answered a server request with an error, or not at all.</summary>
public sealed class RpcClientException(string message) : Exception(message);
