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
                || (b[0] == 198 && (b[1] == 18 || b[1] == 19))
                || (b[0] == 192 && b[1] == 0 && b[2] == 2) // documentation ranges
                || (b[0] == 198 && b[1] == 51 && b[2] == 100)
                || (b[0] == 203 && b[1] == 0 && b[2] == 113));
        }

        var v6 = address.GetAddressBytes();
        if (address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast || address.IsIPv6Teredo
            || (v6[0] & 0xFE) == 0xFC // unique local fc00::/7
            || (v6[0] == 0x01 && v6[1] == 0x00 && v6.AsSpan(2, 6).IndexOfAnyExcept((byte)0) < 0) // discard 100::/64
            || (v6[0] == 0x20 && v6[1] == 0x01 && v6[2] == 0x0d && v6[3] == 0xb8) // documentation 2001:db8::/32
            || (v6[0] == 0x00 && v6[1] == 0x64 && v6[2] == 0xff && v6[3] == 0x9b)) // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
        {
            return false;
        }

        // Forms that carry an IPv4 address: IPv4-compatible ::a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d, 6to4 2002:aabb:ccdd::.
        if (v6.AsSpan(0, 12).IndexOfAnyExcept((byte)0) < 0
            || (v6.AsSpan(0, 8).IndexOfAnyExcept((byte)0) < 0 && v6[8] == 0xff && v6[9] == 0xff && v6[10] == 0 && v6[11] == 0))
        {
            return IsPublic(new IPAddress(v6.AsSpan(12, 4)));
        }

        return v6[0] != 0x20 || v6[1] != 0x02 || IsPublic(new IPAddress(v6.AsSpan(2, 4)));
    }

    /// <summary>
    /// A URL's host as the address check sees it: without the trailing dots of a fully qualified name, so
    /// <c>127.0.0.1.</c> is the address 127.0.0.1 and <c>localhost.</c> the name localhost.
    /// </summary>
    public static string HostForCheck(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return host.TrimEnd('.');
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
        var host = HostForCheck(context.DnsEndPoint.Host);
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
public sealed class BlockedAddressException(string message) : Exception(message)
{
    /// <summary>The refusal somewhere in <paramref name="e"/>'s chain of inner exceptions (HTTP clients wrap it), or null.</summary>
    public static BlockedAddressException? Find(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is BlockedAddressException blocked)
            {
                return blocked;
            }
        }

        return null;
    }
}
