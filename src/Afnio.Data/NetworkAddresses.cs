using System.Net;
using System.Net.Sockets;

namespace Afnio.Data;

/// <summary>Tells public internet addresses from loopback, private, link-local and other internal ones (SSRF guard).</summary>
public static class NetworkAddresses
{
    /// <summary>True for an address on the public internet.</summary>
    public static bool IsPublic(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.Broadcast))
        {
            return false;
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var b = address.GetAddressBytes();
            return !(b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224
                || (b[0] == 169 && b[1] == 254)
                || (b[0] == 172 && b[1] >= 16 && b[1] <= 31)
                || (b[0] == 192 && b[1] == 168)
                || (b[0] == 192 && b[1] == 0 && b[2] == 0)
                || (b[0] == 100 && b[1] >= 64 && b[1] <= 127)
                || (b[0] == 198 && (b[1] == 18 || b[1] == 19)));
        }

        var v6 = address.GetAddressBytes();
        return !(address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast
            || (v6[0] & 0xFE) == 0xFC // unique local fc00::/7
            || address.IsIPv6Teredo);
    }

    /// <summary>
    /// A <see cref="System.Net.Http.SocketsHttpHandler.ConnectCallback"/> that resolves the host and refuses
    /// to connect when any of its addresses is not public (unless <paramref name="allowPrivate"/>), then
    /// connects to exactly the addresses it checked: a name that resolves differently later (DNS
    /// rebinding) gains nothing.
    /// </summary>
    public static Func<System.Net.Http.SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> GuardedConnect(
        bool allowPrivate, Func<string, string> refusal) => async (context, ct) =>
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        if (!allowPrivate && addresses.Any(a => !IsPublic(a)))
        {
            throw new BlockedAddressException(refusal(host));
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, context.DnsEndPoint.Port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    };
}

/// <summary>A connection refused because its address is not public and private addresses are not allowed.</summary>
public sealed class BlockedAddressException(string message) : Exception(message);
