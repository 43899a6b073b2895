using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Afnio.Api.Tests.Infrastructure;

/// <summary>One request a receiver got, exactly as it arrived.</summary>
public sealed record ReceivedWebhook(string Path, string? Id, string? Timestamp, string? Signature, string Body, DateTimeOffset ReceivedAt);

/// <summary>How the receiver answers one request.</summary>
/// <param name="Status"></param>
/// <param name="Delay"></param>
/// <param name="Location"></param>
/// <param name="Body"></param>
/// <param name="RetryAfter"></param>
/// <param name="CutShort">Promise a longer body than is sent, then drop the connection.</param>
public sealed record ReceiverReply(int Status, TimeSpan Delay = default, string? Location = null, string Body = "ok", string? RetryAfter = null, bool CutShort = false);

/// <summary>
/// A webhook receiver on loopback, owned by the tests. It records every request, answers from a
/// script (status, delay, redirect, Retry-After; 200 by default), and verifies Standard Webhooks
/// signatures with its own HMAC code, independent of the service's signer.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceivedWebhook> _received = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<ReceiverReply>> _scripts = new();
    private readonly ConcurrentDictionary<string, ReceiverReply> _defaults = new();

    private WebhookReceiver(WebApplication app) => _app = app;

    /// <summary>The receiver's base address (http://127.0.0.1:port).</summary>
    public string BaseUrl { get; private set; } = string.Empty;

    public IReadOnlyList<ReceivedWebhook> Received => [.. _received];

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/{**path}", receiver.HandleAsync);
        await app.StartAsync();
        receiver.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return receiver;
    }

    /// <summary>A URL on this receiver; requests are told apart by path.</summary>
    public string Url(string path) => $"{BaseUrl}/{path}";

    /// <summary>Queues the answers to the next requests on <paramref name="path"/>.</summary>
    public void Enqueue(string path, params ReceiverReply[] replies)
    {
        var script = _scripts.GetOrAdd(path, _ => new());
        foreach (var reply in replies)
        {
            script.Enqueue(reply);
        }
    }

    /// <summary>What requests on <paramref name="path"/> get once its script is empty (200 unless set).</summary>
    public void SetDefault(string path, ReceiverReply reply) => _defaults[path] = reply;

    /// <summary>The requests that arrived on <paramref name="path"/>.</summary>
    public IReadOnlyList<ReceivedWebhook> On(string path) => [.. _received.Where(r => r.Path == path)];

    /// <summary>Waits until <paramref name="count"/> requests arrived on <paramref name="path"/>.</summary>
    public async Task<IReadOnlyList<ReceivedWebhook>> WaitForAsync(string path, int count, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (On(path).Count < count)
        {
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"Only {On(path).Count} of {count} webhooks arrived on /{path} within {seconds} s.");
            }

            await Task.Delay(50);
        }

        return On(path);
    }

    /// <summary>
    /// Verifies a request per Standard Webhooks, written from the spec with the BCL's HMAC: some
    /// <c>v1,</c> signature in the header equals base64(HMAC-SHA256(key, "id.timestamp.body")),
    /// where key is the base64 part of the <c>whsec_</c> secret; the timestamp is within 5 minutes.
    /// </summary>
    public static bool Verify(string secret, ReceivedWebhook request)
    {
        if (request.Id is null || request.Timestamp is null || request.Signature is null || !long.TryParse(request.Timestamp, out var seconds)
            || Math.Abs(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - seconds) > 300)
        {
            return false;
        }

        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var expected = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{request.Id}.{request.Timestamp}.{request.Body}"));
        return request.Signature.Split(' ').Any(part => part.StartsWith("v1,", StringComparison.Ordinal)
            && CryptographicOperations.FixedTimeEquals(TryBase64(part[3..]), expected));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static byte[] TryBase64(string text)
    {
        try
        {
            return Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            return [];
        }
    }

    private async Task HandleAsync(HttpContext context, string path)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync();
        _received.Enqueue(new ReceivedWebhook(path, context.Request.Headers["webhook-id"].FirstOrDefault(), context.Request.Headers["webhook-timestamp"].FirstOrDefault(),
            context.Request.Headers["webhook-signature"].FirstOrDefault(), body, DateTimeOffset.UtcNow));
        var reply = _scripts.TryGetValue(path, out var script) && script.TryDequeue(out var next) ? next : _defaults.GetValueOrDefault(path, new ReceiverReply(200));
        if (reply.Delay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(reply.Delay, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        context.Response.StatusCode = reply.Status;
        if (reply.Location is not null)
        {
            context.Response.Headers.Location = reply.Location;
        }

        if (reply.RetryAfter is not null)
        {
            context.Response.Headers.RetryAfter = reply.RetryAfter;
        }

        if (reply.CutShort)
        {
            context.Response.ContentLength = reply.Body.Length + 100;
            await context.Response.WriteAsync(reply.Body);
            await context.Response.Body.FlushAsync();
            context.Abort();
            return;
        }

        await context.Response.WriteAsync(reply.Body);
    }
}
