using Afnio.Api.Auth;
using Afnio.Data;
using Afnio.Data.Jobs;
using Npgsql;

namespace Afnio.Api.Jobs;

/// <summary>
/// Wakes event streams and long polls when their job changes or their key is revoked. One LISTEN
/// connection per API process (<see cref="JobSignalListener"/>) fans PostgreSQL's notifications out
/// to the waiters in memory, by job id and by key id. A notification only wakes a waiter, which
/// then reads the database; waiters also read at a fallback interval, so a lost notification (a
/// dropped listener connection) only delays them.
/// </summary>
public sealed class JobSignals
{
    private readonly Lock _lock = new();
    private readonly Dictionary<Guid, HashSet<JobWaiter>> _byJob = [];
    private readonly Dictionary<Guid, HashSet<JobWaiter>> _byKey = [];

    /// <summary>True while this process's listener is connected and listening.</summary>
    public bool Listening { get; internal set; }

    /// <summary>Starts watching a job (and the key of the caller, when given). Watch before reading, so no change is missed.</summary>
    public JobWaiter Watch(Guid jobId, Guid? keyId)
    {
        var waiter = new JobWaiter(this, jobId, keyId);
        lock (_lock)
        {
            Add(_byJob, jobId, waiter);
            if (keyId is { } key)
            {
                Add(_byKey, key, waiter);
            }
        }

        return waiter;
    }

    /// <summary>The job has new events (or a new status).</summary>
    public void JobChanged(Guid jobId)
    {
        foreach (var waiter in Snapshot(_byJob, jobId))
        {
            waiter.Wake();
        }
    }

    /// <summary>The key was revoked: its waiters end.</summary>
    public void KeyRevoked(Guid keyId)
    {
        foreach (var waiter in Snapshot(_byKey, keyId))
        {
            waiter.Revoke();
        }
    }

    /// <summary>Wakes every waiter: after the listener (re)connects, changes may have gone unnoticed.</summary>
    public void WakeAll()
    {
        JobWaiter[] all;
        lock (_lock)
        {
            all = [.. _byJob.Values.SelectMany(w => w)];
        }

        foreach (var waiter in all)
        {
            waiter.Wake();
        }
    }

    internal void Release(JobWaiter waiter)
    {
        lock (_lock)
        {
            Remove(_byJob, waiter.JobId, waiter);
            if (waiter.KeyId is { } key)
            {
                Remove(_byKey, key, waiter);
            }
        }
    }

    private JobWaiter[] Snapshot(Dictionary<Guid, HashSet<JobWaiter>> index, Guid id)
    {
        lock (_lock)
        {
            return index.TryGetValue(id, out var set) ? [.. set] : [];
        }
    }

    private static void Add(Dictionary<Guid, HashSet<JobWaiter>> index, Guid id, JobWaiter waiter)
    {
        if (!index.TryGetValue(id, out var set))
        {
            index[id] = set = [];
        }

        set.Add(waiter);
    }

    private static void Remove(Dictionary<Guid, HashSet<JobWaiter>> index, Guid id, JobWaiter waiter)
    {
        if (index.TryGetValue(id, out var set) && set.Remove(waiter) && set.Count == 0)
        {
            index.Remove(id);
        }
    }
}

/// <summary>One stream's or long poll's registration; dispose it when the wait ends.</summary>
public sealed class JobWaiter : IDisposable
{
    private readonly JobSignals _owner;
    private TaskCompletionSource _wake = NewWake();
    private volatile bool _revoked;
    private DateTimeOffset _keyCheckedAt;

    internal JobWaiter(JobSignals owner, Guid jobId, Guid? keyId) => (_owner, JobId, KeyId) = (owner, jobId, keyId);

    public Guid JobId { get; }

    public Guid? KeyId { get; }

    /// <summary>A revocation of the caller's key was announced.</summary>
    public bool KeyRevoked => _revoked;

    /// <summary>
    /// Waits for a signal since the last wait (or since <see cref="JobSignals.Watch"/>), at most
    /// <paramref name="timeout"/>; true when woken. Re-read the database after it returns either way.
    /// </summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, TimeProvider clock, CancellationToken ct)
    {
        var current = Volatile.Read(ref _wake);
        bool woken;
        try
        {
            await current.Task.WaitAsync(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero, clock, ct);
            woken = true;
        }
        catch (TimeoutException)
        {
            woken = false;
        }

        // Re-armed before the caller reads, so a change committed after this point wakes the next wait.
        Interlocked.CompareExchange(ref _wake, NewWake(), current);
        return woken;
    }

    /// <summary>True at most once per <paramref name="interval"/>: time to confirm in the database that the key is still active.</summary>
    public bool KeyCheckDue(DateTimeOffset now, TimeSpan interval)
    {
        if (_keyCheckedAt == default)
        {
            _keyCheckedAt = now;
        }

        if (now - _keyCheckedAt < interval)
        {
            return false;
        }

        _keyCheckedAt = now;
        return true;
    }

    public void Dispose() => _owner.Release(this);

    internal void Wake() => Volatile.Read(ref _wake).TrySetResult();

    internal void Revoke()
    {
        _revoked = true;
        Wake();
    }

    private static TaskCompletionSource NewWake() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// The API process's one LISTEN connection on <see cref="JobNotifications.Channel"/>, outside the pools.
/// It reconnects after a failure and then wakes every waiter, since notifications sent meanwhile are lost.
/// </summary>
internal sealed partial class JobSignalListener(
    JobSignals signals, ApiKeyCache keys, IConfiguration configuration, TimeProvider clock, ILogger<JobSignalListener> log) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        PostgresListener.ListenAsync(configuration.GetPostgresConnectionString(), "afnio-signals", JobNotifications.Channel, Dispatch,
            connected: () =>
            {
                signals.Listening = true;
                signals.WakeAll();
            },
            lost: e =>
            {
                signals.Listening = false;
                LogLost(log, e);
            },
            clock, stoppingToken);

    private void Dispatch(string payload)
    {
        var parts = payload.Split(':');
        if (parts is ["j", var job] && Guid.TryParseExact(job, "N", out var jobId))
        {
            signals.JobChanged(jobId);
        }
        else if (parts is ["k", var key, var hash] && Guid.TryParseExact(key, "N", out var keyId))
        {
            // Every process stops accepting the key now, not when its cache entry expires.
            keys.Evict(hash);
            signals.KeyRevoked(keyId);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The job signal listener lost its connection; streams fall back to polling until it reconnects.")]
    private static partial void LogLost(ILogger logger, Exception exception);
}

/// <summary>
/// Open event streams and long polls, per API key and in all (<see cref="Infrastructure.AfnioOptions.StreamOptions"/>).
/// A slot is held for the whole response and given back when the request ends.
/// </summary>
public sealed class StreamSlots(Microsoft.Extensions.Options.IOptions<Infrastructure.AfnioOptions> options)
{
    public const int RetryAfterSeconds = 5;

    private readonly Lock _lock = new();
    private readonly Dictionary<Guid, int> _perKey = [];
    private int _total;

    /// <summary>Takes a slot for <paramref name="keyId"/>, or throws 429 too_many_streams.</summary>
    public IDisposable Acquire(Guid keyId)
    {
        var limits = options.Value.Streams;
        lock (_lock)
        {
            var mine = _perKey.GetValueOrDefault(keyId);
            if (mine >= limits.MaxPerKey)
            {
                throw TooMany($"This API key has {mine} open event streams and long polls, the most one key may hold. " +
                    $"Close one, or retry after {RetryAfterSeconds} s.");
            }

            if (_total >= limits.MaxTotal)
            {
                throw TooMany($"The server holds {_total} open event streams and long polls, the most it serves at once. Retry after {RetryAfterSeconds} s.");
            }

            _perKey[keyId] = mine + 1;
            _total++;
        }

        return new Slot(this, keyId);
    }

    private void Release(Guid keyId)
    {
        lock (_lock)
        {
            _total--;
            if (--_perKey[keyId] == 0)
            {
                _perKey.Remove(keyId);
            }
        }
    }

    private static Infrastructure.ApiException TooMany(string message) =>
        new(StatusCodes.Status429TooManyRequests, "too_many_streams", message) { RetryAfterSeconds = RetryAfterSeconds };

    private sealed class Slot(StreamSlots owner, Guid keyId) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                owner.Release(keyId);
            }
        }
    }
}

public static class JobStreamsSetup
{
    /// <summary>The job signals, their listener, and the stream slots.</summary>
    public static IServiceCollection AddAfnioJobStreams(this IServiceCollection services)
    {
        services.AddSingleton<JobSignals>();
        services.AddSingleton<StreamSlots>();
        services.AddHostedService<JobSignalListener>();
        return services;
    }
}
