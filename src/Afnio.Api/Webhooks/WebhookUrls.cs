using System.Net;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Webhooks;

namespace Afnio.Api.Webhooks;

/// <summary>
/// The registration half of the SSRF guard: https only (unless allowed), no credentials, no
/// internal host names, and every address the host resolves to must be public. The Worker checks
/// the addresses again each time it connects, which is what defeats DNS rebinding.
/// </summary>
public static class WebhookUrls
{
    private static readonly TimeSpan ResolveTimeout = TimeSpan.FromSeconds(5);
    private static readonly string[] InternalSuffixes = [".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa"];

    public static async Task<string> CheckAsync(string? url, WebhookOptions options, string param, CancellationToken ct)
    {
        if (url is null)
        {
            throw ApiException.BadRequest("missing_field", $"'{param}' is required: where to send events.", param);
        }

        if (url.Length > 2048 || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http")
            || !string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Fragment) || url.Any(char.IsControl) || url.Any(char.IsWhiteSpace))
        {
            throw ApiException.BadRequest("invalid_url",
                $"'{param}' must be an absolute https URL without credentials or fragment, at most 2048 characters.", param);
        }

        if (uri.Scheme == "http" && !options.AllowHttp)
        {
            throw ApiException.BadRequest("webhook_url_not_allowed", $"'{param}' must use https (this server does not allow http: Afnio__Webhooks__AllowHttp).", param);
        }

        if (options.AllowPrivateAddresses)
        {
            return uri.AbsoluteUri;
        }

        var host = NetworkAddresses.HostForCheck(uri.IdnHost);
        if (host.Length > 253)
        {
            throw ApiException.BadRequest("invalid_url", $"'{param}' has a host name longer than 253 characters.", param);
        }

        if (IPAddress.TryParse(host, out var literal))
        {
            return NotPublic([literal]) is { } address ? throw Refused(param, address) : uri.AbsoluteUri;
        }

        if (!host.Contains('.', StringComparison.Ordinal) || host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || InternalSuffixes.Any(s => host.EndsWith(s, StringComparison.OrdinalIgnoreCase)))
        {
            throw ApiException.BadRequest("webhook_url_not_allowed", $"'{param}' names an internal host ({host}); webhooks go to public addresses only.", param);
        }

        IPAddress[] addresses;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            timeout.CancelAfter(ResolveTimeout);
            try
            {
                addresses = await Dns.GetHostAddressesAsync(host, timeout.Token);
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                throw ApiException.BadRequest("webhook_url_unresolvable", $"'{param}': the host {host} could not be resolved.", param);
            }
        }

        return NotPublic(addresses) is { } blocked ? throw Refused(param, blocked) : uri.AbsoluteUri;
    }

    private static IPAddress? NotPublic(IEnumerable<IPAddress> addresses) => addresses.FirstOrDefault(a => !NetworkAddresses.IsPublic(a));

    private static ApiException Refused(string param, IPAddress address) => ApiException.BadRequest("webhook_url_not_allowed",
        $"'{param}' points at a non-public address ({address}); webhooks go to public addresses only " +
        "(Afnio__Webhooks__AllowPrivateAddresses=true allows others, for local development).", param);
}
