using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Afnio.Api.Tests.Infrastructure;

/// <summary>
/// An OpenAI-compatible chat completions server on loopback, owned by the tests: the real OpenAI
/// client talks to it over HTTP. Replies are scripted (a queue of steps, then a default), and it
/// can inject latency, 429 with Retry-After, 500, a hang (for timeouts) and malformed JSON. It keeps
/// every request it received and the peak number of requests in flight.
/// </summary>
public sealed class FakeOpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<FakeReply> _script = new();
    private readonly ConcurrentQueue<JsonElement> _requests = new();
    private readonly ConcurrentQueue<string> _authorizations = new();
    private int _inFlight;
    private int _peak;

    private FakeOpenAiServer(WebApplication app) => _app = app;

    /// <summary>The base address to give the client, ending in <c>/v1</c>.</summary>
    public Uri Endpoint { get; private set; } = null!;

    /// <summary>What the server answers when the script is empty.</summary>
    public Func<JsonElement, FakeReply> Default { get; set; } = _ => FakeReply.Text("ok");

    /// <summary>Every request body received, in arrival order.</summary>
    public IReadOnlyList<JsonElement> Requests => [.. _requests];

    /// <summary>The most requests that were being answered at the same time.</summary>
    public int PeakConcurrency => Volatile.Read(ref _peak);

    public static async Task<FakeOpenAiServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeOpenAiServer(app);
        app.MapPost("/v1/chat/completions", server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Endpoint = new Uri($"{address}/v1");
        return server;
    }

    /// <summary>Queues replies that are used, one per request, before <see cref="Default"/>.</summary>
    /// <summary>The Authorization header of every request, in arrival order.</summary>
    public IReadOnlyList<string> Authorizations => [.. _authorizations];

    /// <summary>Forgets the requests, the script and the peak, and answers "ok" again.</summary>
    public void Reset()
    {
        _requests.Clear();
        _authorizations.Clear();
        _script.Clear();
        Volatile.Write(ref _peak, 0);
        Default = _ => FakeReply.Text("ok");
    }

    /// <summary>
    /// The number of requests received once no more arrive for a moment: after a client is killed,
    /// requests it had already sent may still be read off their sockets.
    /// </summary>
    public async Task<int> SettledRequestCountAsync()
    {
        var count = _requests.Count;
        while (true)
        {
            await Task.Delay(300);
            if (_requests.Count == count && Volatile.Read(ref _inFlight) == 0)
            {
                return count;
            }

            count = _requests.Count;
        }
    }

    /// <summary>The text of the request's message with <paramref name="role"/> (the last one, if several).</summary>
    /// <summary>The text of the request's last message with this role, or "" when it has none.</summary>
    public static string MessageText(JsonElement request, string role) =>
        request.GetProperty("messages").EnumerateArray().Where(m => m.GetProperty("role").GetString() == role)
            .Select(m => m.GetProperty("content").GetString()!).LastOrDefault() ?? string.Empty;

    public void Enqueue(params FakeReply[] replies)
    {
        foreach (var reply in replies)
        {
            _script.Enqueue(reply);
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var inFlight = Interlocked.Increment(ref _inFlight);
        int peak;
        while (inFlight > (peak = Volatile.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, inFlight, peak) != peak)
        {
        }

        try
        {
            var body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            var request = body.RootElement.Clone();
            _requests.Enqueue(request);
            _authorizations.Enqueue(context.Request.Headers.Authorization.ToString());
            var reply = _script.TryDequeue(out var scripted) ? scripted : Default(request);
            if (reply.Delay > TimeSpan.Zero)
            {
                await Task.Delay(reply.Delay, context.RequestAborted);
            }

            context.Response.StatusCode = reply.Status;
            foreach (var (name, value) in reply.Headers ?? [])
            {
                context.Response.Headers[name] = value;
            }

            if (reply.RetryAfterSeconds is { } retryAfter)
            {
                context.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(reply.Body ?? Completion(request, reply), Encoding.UTF8, context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client gave up (its timeout): nothing to answer.
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private static string Completion(JsonElement request, FakeReply reply) => JsonSerializer.Serialize(new
    {
        id = $"chatcmpl-{Guid.NewGuid():N}",
        @object = "chat.completion",
        created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
        model = request.TryGetProperty("model", out var model) ? model.GetString() : "fake-model",
        choices = new[]
        {
            new { index = 0, message = new { role = "assistant", content = reply.Content }, finish_reason = "stop" },
        },
        usage = new
        {
            prompt_tokens = reply.PromptTokens,
            completion_tokens = reply.CompletionTokens,
            total_tokens = reply.PromptTokens + reply.CompletionTokens,
            prompt_tokens_details = new { cached_tokens = reply.CachedTokens },
        },
    });

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>One scripted answer of <see cref="FakeOpenAiServer"/>.</summary>
public sealed record FakeReply
{
    public int Status { get; init; } = 200;
    public string Content { get; init; } = string.Empty;
    public string? Body { get; init; }
    public TimeSpan Delay { get; init; }
    public int? RetryAfterSeconds { get; init; }

    /// <summary>Extra response headers, e.g. an odd Retry-After.</summary>
    public Dictionary<string, string>? Headers { get; init; }
    public int PromptTokens { get; init; } = 10;
    public int CachedTokens { get; init; }
    public int CompletionTokens { get; init; } = 5;

    public static FakeReply Text(string content, TimeSpan delay = default) => new() { Content = content, Delay = delay };

    public static FakeReply RateLimited(int retryAfterSeconds) =>
        new() { Status = 429, RetryAfterSeconds = retryAfterSeconds, Body = """{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}""" };

    public static FakeReply ServerError() => new() { Status = 500, Body = """{"error":{"message":"The server had an error","type":"server_error"}}""" };

    /// <summary>A 200 whose body is not JSON.</summary>
    public static FakeReply Junk() => new() { Body = "{\"id\": \"chatcmpl-1\", \"choices\": [ {" };

    /// <summary>Answers only after <paramref name="delay"/>: longer than the client's timeout, it is a timeout.</summary>
    public static FakeReply Hang(TimeSpan delay) => new() { Content = "too late", Delay = delay };
}
