using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>
/// The HTTP/1.1 upgrade done by hand, the way websockets 15 (the Python client's library) does it. Done by
/// hand because the point is to observe what ClientWebSocket hides: whether the server's 101 and its welcome
/// frame arrive in one read.
/// </summary>
internal static class WebSocketUpgrade
{
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    private const int MaxBodyBytes = 1024 * 1024;

    internal sealed record Result(
        Stream Stream,
        bool HeadersInFirstRead,
        bool WelcomeInFirstRead,
        WebSocketDeflateOptions? Deflate,
        IReadOnlyList<string> Notes);

    public static string BuildRequest(Uri url, string resource, string key, string apiKey, string userAgent)
    {
        var secure = url.Scheme == "wss";
        var host = url.HostNameType == UriHostNameType.IPv6 ? $"[{url.IdnHost}]" : url.IdnHost;
        // websockets leaves the port out of Host only when it is the scheme's default.
        if (url.Port != (secure ? 443 : 80))
        {
            host += ":" + url.Port;
        }

        // Header order is websockets': its own headers, then additional_headers, then User-Agent.
        return $"GET {resource} HTTP/1.1\r\n"
            + $"Host: {host}\r\n"
            + "Upgrade: websocket\r\n"
            + "Connection: Upgrade\r\n"
            + $"Sec-WebSocket-Key: {key}\r\n"
            + "Sec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            + $"Authorization: Api-Key {apiKey}\r\n"
            + $"User-Agent: {userAgent}\r\n"
            + "\r\n";
    }

#pragma warning disable CA5350 // RFC 6455 fixes SHA-1 for Sec-WebSocket-Accept; it is a handshake check, not security.
    public static string AcceptFor(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));
#pragma warning restore CA5350

    public static async Task<Result> HandshakeAsync(Stream stream, string request, string key, CancellationToken ct)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), ct);
        await stream.FlushAsync(ct);

        var buffer = new byte[64 * 1024];
        var first = await stream.ReadAsync(buffer, ct);
        if (first == 0)
        {
            throw new SdkHandshakeException(0, "", "connection closed while reading HTTP status line");
        }

        var received = new MemoryStream();
        received.Write(buffer, 0, first);
        var headerEnd = FindHeaderEnd(received.GetBuffer().AsSpan(0, (int)received.Length));
        var headersInFirstRead = headerEnd >= 0;
        while (headerEnd < 0)
        {
            if (received.Length > 128 * 8192)
            {
                throw new SdkHandshakeException(0, "", "HTTP response headers too large");
            }

            var n = await stream.ReadAsync(buffer, ct);
            if (n == 0)
            {
                throw new SdkHandshakeException(0, "", "connection closed while reading HTTP response headers");
            }

            received.Write(buffer, 0, n);
            headerEnd = FindHeaderEnd(received.GetBuffer().AsSpan(0, (int)received.Length));
        }

        var all = received.ToArray();
        var head = Encoding.Latin1.GetString(all, 0, headerEnd);
        var rest = all.AsSpan(headerEnd + 4).ToArray();
        var lines = head.Split("\r\n");
        var status = ParseStatus(lines[0]);
        var headers = new List<(string Name, string Value)>();
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                throw new SdkHandshakeException(status, "", $"invalid HTTP header line: {line}");
            }

            headers.Add((line[..colon].Trim(), line[(colon + 1)..].Trim()));
        }

        if (status != 101)
        {
            var body = await ReadBodyAsync(stream, status, headers, rest, buffer, ct);
            throw new SdkHandshakeException(status, body, $"server rejected WebSocket connection: HTTP {status}");
        }

        Validate(headers, key);
        var notes = new List<string>();
        var deflate = NegotiateDeflate(headers, notes);

        // What the single first read carried beyond the headers decides whether the Python client is safe.
        var firstReadRest = headersInFirstRead ? first - (headerEnd + 4) : 0;
        var welcomeInFirstRead = headersInFirstRead && HasCompleteMessage(rest.AsSpan(0, Math.Max(0, firstReadRest)));
        return new Result(new PrefixedStream(rest, stream), headersInFirstRead, welcomeInFirstRead, deflate, notes);
    }

    private static int FindHeaderEnd(ReadOnlySpan<byte> data) => data.IndexOf("\r\n\r\n"u8);

    private static int ParseStatus(string statusLine)
    {
        var parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || parts[0] != "HTTP/1.1" || !int.TryParse(parts[1], out var status) || status is < 100 or > 599)
        {
            throw new SdkHandshakeException(0, "", $"invalid HTTP status line: {statusLine}");
        }

        return status;
    }

    private static IEnumerable<string> Values(List<(string Name, string Value)> headers, string name) =>
        headers.Where(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value);

    private static void Validate(List<(string Name, string Value)> headers, string key)
    {
        var connection = Values(headers, "Connection").SelectMany(v => v.Split(',')).Select(v => v.Trim()).ToList();
        if (!connection.Any(v => v.Equals("upgrade", StringComparison.OrdinalIgnoreCase)))
        {
            throw new SdkHandshakeException(101, "", $"invalid Connection header: {string.Join(", ", connection)}");
        }

        var upgrade = Values(headers, "Upgrade").SelectMany(v => v.Split(',')).Select(v => v.Trim()).ToList();
        if (upgrade.Count != 1 || !upgrade[0].Equals("websocket", StringComparison.OrdinalIgnoreCase))
        {
            throw new SdkHandshakeException(101, "", $"invalid Upgrade header: {string.Join(", ", upgrade)}");
        }

        var accept = Values(headers, "Sec-WebSocket-Accept").ToList();
        if (accept.Count != 1)
        {
            throw new SdkHandshakeException(101, "", accept.Count == 0
                ? "missing Sec-WebSocket-Accept header"
                : "invalid Sec-WebSocket-Accept header: multiple values");
        }

        if (accept[0] != AcceptFor(key))
        {
            throw new SdkHandshakeException(101, "", $"invalid Sec-WebSocket-Accept header: {accept[0]}");
        }

        if (Values(headers, "Sec-WebSocket-Protocol").Any())
        {
            throw new SdkHandshakeException(101, "", "no subprotocols supported");
        }
    }

    /// <summary>The client offered permessage-deflate; .NET must be told exactly what the server accepted.</summary>
    private static WebSocketDeflateOptions? NegotiateDeflate(List<(string Name, string Value)> headers, List<string> notes)
    {
        var offers = Values(headers, "Sec-WebSocket-Extensions")
            .SelectMany(v => v.Split(','))
            .Select(v => v.Trim())
            .Where(v => v.Length > 0)
            .ToList();
        if (offers.Count == 0)
        {
            return null;
        }

        WebSocketDeflateOptions? options = null;
        foreach (var offer in offers)
        {
            var parts = offer.Split(';').Select(p => p.Trim()).ToList();
            if (parts[0] != "permessage-deflate" || options is not null)
            {
                throw new SdkHandshakeException(101, "", $"Unsupported extension: {offer}");
            }

            options = new WebSocketDeflateOptions();
            var seen = new HashSet<string>();
            foreach (var param in parts.Skip(1))
            {
                var eq = param.IndexOf('=', StringComparison.Ordinal);
                var name = eq < 0 ? param : param[..eq].Trim();
                var value = eq < 0 ? null : param[(eq + 1)..].Trim().Trim('"');
                if (!seen.Add(name))
                {
                    throw new SdkHandshakeException(101, "", $"duplicate parameter {name} in {offer}");
                }

                switch (name)
                {
                    case "server_no_context_takeover" when value is null:
                        options.ServerContextTakeover = false;
                        break;
                    case "client_no_context_takeover" when value is null:
                        options.ClientContextTakeover = false;
                        break;
                    case "server_max_window_bits" when WindowBits(value) is { } bits:
                        options.ServerMaxWindowBits = Math.Max(bits, 9);
                        break;
                    case "client_max_window_bits" when WindowBits(value) is { } bits:
                        if (bits < 9)
                        {
                            notes.Add($"server asked for client_max_window_bits={bits}; .NET compresses with 9");
                        }

                        options.ClientMaxWindowBits = Math.Max(bits, 9);
                        break;
                    default:
                        throw new SdkHandshakeException(101, "", $"Unsupported extension parameter: {param} in {offer}");
                }
            }
        }

        return options;
    }

    private static int? WindowBits(string? value) =>
        int.TryParse(value, out var bits) && bits is >= 8 and <= 15 ? bits : null;

    /// <summary>Whether the bytes hold one whole data message (all its frames), skipping control frames.</summary>
    internal static bool HasCompleteMessage(ReadOnlySpan<byte> data)
    {
        var pos = 0;
        while (true)
        {
            if (data.Length - pos < 2)
            {
                return false;
            }

            var b0 = data[pos];
            var b1 = data[pos + 1];
            long length = b1 & 0x7F;
            var header = 2;
            if (length == 126)
            {
                if (data.Length - pos < 4)
                {
                    return false;
                }

                length = (data[pos + 2] << 8) | data[pos + 3];
                header = 4;
            }
            else if (length == 127)
            {
                if (data.Length - pos < 10)
                {
                    return false;
                }

                length = 0;
                for (var n = 0; n < 8; n++)
                {
                    length = (length << 8) | data[pos + 2 + n];
                }

                header = 10;
            }

            if ((b1 & 0x80) != 0)
            {
                header += 4;
            }

            if (data.Length - pos < header + length)
            {
                return false;
            }

            pos += (int)(header + length);
            var opcode = b0 & 0x0F;
            if (opcode < 8 && (b0 & 0x80) != 0)
            {
                return true;
            }
        }
    }

    private static async Task<string> ReadBodyAsync(
        Stream stream, int status, List<(string Name, string Value)> headers, byte[] already, byte[] buffer, CancellationToken ct)
    {
        if (status is >= 100 and < 200 or 204 or 304)
        {
            return "";
        }

        var body = new MemoryStream();
        body.Write(already);
        var chunked = Values(headers, "Transfer-Encoding").Any(v => v.Contains("chunked", StringComparison.OrdinalIgnoreCase));
        var lengthHeader = Values(headers, "Content-Length").FirstOrDefault();
        try
        {
            if (chunked)
            {
                while (!TryDechunk(body.ToArray(), out _))
                {
                    if (!await ReadMoreAsync(stream, body, buffer, ct))
                    {
                        break;
                    }
                }

                return TryDechunk(body.ToArray(), out var decoded) ? Encoding.UTF8.GetString(decoded) : Encoding.UTF8.GetString(body.ToArray());
            }

            if (lengthHeader is not null && int.TryParse(lengthHeader, out var length) && length <= MaxBodyBytes)
            {
                while (body.Length < length && await ReadMoreAsync(stream, body, buffer, ct))
                {
                }

                return Encoding.UTF8.GetString(body.GetBuffer(), 0, (int)Math.Min(length, body.Length));
            }

            while (body.Length <= MaxBodyBytes && await ReadMoreAsync(stream, body, buffer, ct))
            {
            }
        }
        catch (IOException)
        {
            // A server that resets after its error answer still told us what it had to say.
        }

        return Encoding.UTF8.GetString(body.GetBuffer(), 0, (int)Math.Min(body.Length, MaxBodyBytes));
    }

    private static async Task<bool> ReadMoreAsync(Stream stream, MemoryStream into, byte[] buffer, CancellationToken ct)
    {
        var n = await stream.ReadAsync(buffer, ct);
        if (n == 0)
        {
            return false;
        }

        into.Write(buffer, 0, n);
        return true;
    }

    private static bool TryDechunk(byte[] raw, out byte[] decoded)
    {
        var output = new MemoryStream();
        var pos = 0;
        decoded = [];
        while (true)
        {
            var lineEnd = raw.AsSpan(pos).IndexOf("\r\n"u8);
            if (lineEnd < 0)
            {
                return false;
            }

            var sizeText = Encoding.ASCII.GetString(raw, pos, lineEnd).Split(';')[0].Trim();
            if (!int.TryParse(sizeText, System.Globalization.NumberStyles.HexNumber, null, out var size))
            {
                return false;
            }

            pos += lineEnd + 2;
            if (size == 0)
            {
                decoded = output.ToArray();
                return true;
            }

            if (raw.Length - pos < size + 2)
            {
                return false;
            }

            output.Write(raw, pos, size);
            pos += size + 2;
        }
    }
}

/// <summary>Serves bytes the handshake already read before reading on; writes go straight through.</summary>
internal sealed class PrefixedStream(byte[] prefix, Stream inner) : Stream
{
    private int _offset;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (TakePrefix(buffer) is var n and > 0)
        {
            return n;
        }

        return inner.Read(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (TakePrefix(buffer.Span) is var n and > 0)
        {
            return ValueTask.FromResult(n);
        }

        return inner.ReadAsync(buffer, cancellationToken);
    }

    private int TakePrefix(Span<byte> buffer)
    {
        var left = prefix.Length - _offset;
        if (left <= 0 || buffer.Length == 0)
        {
            return 0;
        }

        var n = Math.Min(left, buffer.Length);
        prefix.AsSpan(_offset, n).CopyTo(buffer);
        _offset += n;
        return n;
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        inner.WriteAsync(buffer, cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
