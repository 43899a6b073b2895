using System.Collections.Concurrent;
using System.Threading.RateLimiting;

namespace Afnio.Data.LanguageModels;

/// <summary>
/// The per-model-client limits of this process: one concurrency gate and one requests-per-minute
/// window per model, shared by every request and job, so a batch and two concurrent jobs together
/// never exceed them.
/// </summary>
public sealed class ModelLimits : IDisposable
{
    private readonly ConcurrentDictionary<Guid, Lazy<Gate>> _gates = new();

    /// <summary>Waits for a slot (and a request permit) on the model; dispose the lease to give the slot back.</summary>
    public async Task<IDisposable> AcquireAsync(ResolvedModel model, CancellationToken cancellationToken)
    {
        var gate = _gates.GetOrAdd(model.Id, _ => new Lazy<Gate>(() => new Gate(model.MaxConcurrency, model.RequestsPerMinute))).Value;
        // The slot first, then the permit: a permit is spent only by a request that is sent right away,
        // so no window lets more than its limit through.
        await gate.Slots.WaitAsync(cancellationToken);
        var lease = new Lease(gate.Slots);
        try
        {
            if (gate.PerMinute is { } limiter)
            {
                using var permit = await limiter.AcquireAsync(1, cancellationToken);
                if (!permit.IsAcquired)
                {
                    throw new InvalidOperationException("The requests-per-minute queue refused a request.");
                }
            }

            return lease;
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var gate in _gates.Values.Where(g => g.IsValueCreated))
        {
            gate.Value.Slots.Dispose();
            gate.Value.PerMinute?.Dispose();
        }
    }

    private sealed class Gate(int maxConcurrency, int? requestsPerMinute)
    {
        public SemaphoreSlim Slots { get; } = new(Math.Max(1, maxConcurrency));

        public SlidingWindowRateLimiter? PerMinute { get; } = requestsPerMinute is { } rpm
            ? new SlidingWindowRateLimiter(new SlidingWindowRateLimiterOptions
            {
                PermitLimit = rpm,
                Window = TimeSpan.FromMinutes(1),
                SegmentsPerWindow = 12,
                QueueLimit = int.MaxValue,
                QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
                AutoReplenishment = true,
            })
            : null;
    }

    private sealed class Lease(SemaphoreSlim slots) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                slots.Release();
            }
        }
    }
}
