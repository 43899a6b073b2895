namespace Afnio.Worker.Jobs;

/// <summary>
/// Bounds the CPU-heavy sections of jobs to the machine's cores. A Worker runs many jobs at once
/// (<see cref="JobOptions.Slots"/>) because they mostly wait; the few sections that compute for a
/// while take one of these slots, so they never outnumber the cores.
/// </summary>
public sealed class CpuSlots : IDisposable
{
    private readonly SemaphoreSlim _slots = new(Math.Max(1, Environment.ProcessorCount));

    /// <summary>Runs <paramref name="work"/> once a core is free.</summary>
    public async Task<T> RunAsync<T>(Func<T> work, CancellationToken ct)
    {
        await _slots.WaitAsync(ct);
        try
        {
            return work();
        }
        finally
        {
            _slots.Release();
        }
    }

    public void Dispose() => _slots.Dispose();
}
