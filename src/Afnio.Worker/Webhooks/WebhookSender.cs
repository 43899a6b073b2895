using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using Afnio.Data;
using Afnio.Data.Webhooks;
using Microsoft.Extensions.Options;

namespace Afnio.Worker.Webhooks;

/// <summary>What one attempt got back: a status (or none), the start of the body, how long it took.</summary>
public sealed record WebhookResponse(int? Status, string? Body, string? Error, int DurationMs, TimeSpan? RetryAfter)
{
    public bool Succeeded => Status is >= 200 and < 300;
}

/// <summary>
/// Sends signed webhook requests through a guarded client: every connection checks the addresses
/// it resolves (no private, loopback or link-local targets unless allowed), redirects are not
/// followed, no proxy is used, and each attempt has a hard timeout.
/// </summary>
public sealed class WebhookSender : IDisposable
{
    /// <summary>How much of a response body the attempt log keeps.</summary>
    public const int BodyLimit = 2048;

    private readonly HttpClient _http;

    public WebhookSender(IOptions<WebhookOptions> options)
    {
        var settings = options.Value;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            ConnectCallback = NetworkAddresses.GuardedConnect(settings.AllowPrivateAddresses, host =>
                $"The webhook host '{host}' resolves to a non-public address; webhooks are only sent to public addresses " +
                "(Afnio__Webhooks__AllowPrivateAddresses=true allows others, for local development)."),
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("Afnio-Webhooks", "1"));
    }

    /// <summary>POSTs <paramref name="payload"/> to <paramref name="url"/> with the Standard Webhooks headers, within <paramref name="limit"/>.</summary>
    public async Task<WebhookResponse> SendAsync(
        string url, string messageId, DateTimeOffset timestamp, string signature, string payload, TimeSpan limit, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new StringContent(payload, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("webhook-id", messageId);
        request.Headers.Add("webhook-timestamp", timestamp.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add("webhook-signature", signature);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(limit);
        var watch = Stopwatch.StartNew();
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var body = await ReadStartAsync(response, timeout.Token);
            var status = (int)response.StatusCode;
            string? error = status switch
            {
                >= 200 and < 300 => null,
                >= 300 and < 400 => $"The receiver answered {status} (a redirect, which is not followed).",
                _ => $"The receiver answered {status}.",
            };
            return new WebhookResponse(status, body, error, Elapsed(watch), RetryAfter(response));
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new WebhookResponse(null, null, $"No response within {limit.TotalSeconds:0} s.", Elapsed(watch), null);
        }
        catch (HttpRequestException e)
        {
            var blocked = BlockedAddressException.Find(e);
            return new WebhookResponse(null, null, blocked?.Message ?? $"The request failed: {e.Message}", Elapsed(watch), null);
        }
        catch (IOException e)
        {
            // The connection broke while the response was read (a receiver that cut its answer short).
            return new WebhookResponse(null, null, $"The response could not be read: {e.Message}", Elapsed(watch), null);
        }
    }

    public void Dispose() => _http.Dispose();

    private static async Task<string> ReadStartAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[BodyLimit];
        var read = 0;
        while (read < buffer.Length && await stream.ReadAsync(buffer.AsMemory(read), ct) is var n and > 0)
        {
            read += n;
        }

        // PostgreSQL text cannot hold NUL; a body cut mid-character ends in a replacement character.
        return Encoding.UTF8.GetString(buffer, 0, read).Replace('\0', '\uFFFD');
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow,
        _ => null,
    };

    private static int Elapsed(Stopwatch watch) => (int)Math.Min(int.MaxValue, watch.ElapsedMilliseconds);

}
