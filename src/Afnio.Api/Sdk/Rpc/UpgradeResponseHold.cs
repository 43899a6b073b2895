using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Afnio.Api.Sdk.Rpc;

/// <summary>
/// Lets a request hold back the flush of its <c>101 Switching Protocols</c> response, so the 101 and
/// the first WebSocket frame leave in one write. The afnio client reads the welcome frame itself right
/// after the handshake while its listener task also reads; only when the welcome arrives together
/// with the 101 is it already buffered and the two readers never race (see the SDK wire notes).
/// </summary>
public interface IUpgradeResponseHold
{
    /// <summary>Skips the next flush of this connection's output: the bytes stay buffered until the flush after it.</summary>
    void HoldNextFlush();
}

/// <summary>Kestrel connection middleware that gives every connection an <see cref="IUpgradeResponseHold"/>.</summary>
public static class UpgradeResponseHoldSetup
{
    public static void UseUpgradeResponseHold(this ListenOptions listen) => listen.Use(next => connection =>
    {
        var hold = new HoldingTransport(connection.Transport);
        connection.Transport = hold;
        connection.Features.Set<IUpgradeResponseHold>(hold);
        return next(connection);
    });

    private sealed class HoldingTransport(IDuplexPipe inner) : IDuplexPipe, IUpgradeResponseHold
    {
        private readonly HoldingWriter _output = new(inner.Output);

        public PipeReader Input => inner.Input;

        public PipeWriter Output => _output;

        public void HoldNextFlush() => _output.HoldNextFlush();
    }

    private sealed class HoldingWriter(PipeWriter inner) : PipeWriter
    {
        private int _hold;

        public void HoldNextFlush() => Volatile.Write(ref _hold, 1);

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) =>
            Interlocked.Exchange(ref _hold, 0) == 1
                ? new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false))
                : inner.FlushAsync(cancellationToken);

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            var remaining = source.Span;
            while (remaining.Length > 0)
            {
                var span = inner.GetSpan();
                var count = Math.Min(span.Length, remaining.Length);
                remaining[..count].CopyTo(span);
                inner.Advance(count);
                remaining = remaining[count..];
            }

            return FlushAsync(cancellationToken);
        }
    }
}
