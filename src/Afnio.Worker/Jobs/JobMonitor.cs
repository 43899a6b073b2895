using Afnio.Data;
using Afnio.Data.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Afnio.Worker.Jobs;

/// <summary>
/// Runs beside a job: renews its lease, publishes progress and notices cancel requests. When the
/// lease is lost, <see cref="Lost"/> fires and the job stops at once; when a cancel is requested,
/// <see cref="CancelRequested"/> fires and the job stops between steps.
/// </summary>
public sealed partial class JobMonitor : IAsyncDisposable
{
    private readonly IDbContextFactory<AfnioDbContext> _contexts;
    private readonly Guid _jobId;
    private readonly string _owner;
    private readonly TimeProvider _clock;
    private readonly JobOptions _options;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _cancel = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _beat = new(1, 1);
    private readonly Task _loop;
    private int _completed;
    private int _published;

    public JobMonitor(
        IDbContextFactory<AfnioDbContext> contexts, Guid jobId, string owner, int completed, TimeProvider clock, JobOptions options, ILogger log)
    {
        (_contexts, _jobId, _owner, _clock, _options, _log) = (contexts, jobId, owner, clock, options, log);
        _completed = completed;
        _published = completed;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Fires when another delivery owns the job now: stop without writing anything.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>Fires when a user asked to cancel: finish the steps in flight, start no more.</summary>
    public CancellationToken CancelRequested => _cancel.Token;

    /// <summary>Counts one committed step.</summary>
    public void StepCompleted() => Interlocked.Increment(ref _completed);

    /// <summary>Sets the count from the steps found committed when a delivery resumes; published at the next beat.</summary>
    public void StepsAlreadyCompleted(int count) => Interlocked.Exchange(ref _completed, count);

    /// <summary>Publishes progress now and reports whether the lease is still held.</summary>
    public async Task<bool> FlushAsync(CancellationToken ct) => await BeatAsync(ct) is not null;

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(_options.MonitorIntervalMs), _clock);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                try
                {
                    if (await BeatAsync(_stop.Token) is null)
                    {
                        LogLeaseLost(_log, _jobId);
                        await _lost.CancelAsync();
                        return;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A missed heartbeat is retried at the next tick; the lease outlasts several.
                    LogHeartbeatFailed(_log, _jobId, e);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    private async Task<JobStatus?> BeatAsync(CancellationToken ct)
    {
        await _beat.WaitAsync(ct);
        try
        {
            var completed = Volatile.Read(ref _completed);
            await using var db = await _contexts.CreateDbContextAsync(ct);
            var recorder = new JobRecorder(db, _clock, Microsoft.Extensions.Options.Options.Create(_options));
            var status = await recorder.HeartbeatAsync(_jobId, _owner, completed != _published ? completed : null, ct);
            _published = completed;
            if (status == JobStatus.Cancelling && !_cancel.IsCancellationRequested)
            {
                await _cancel.CancelAsync();
            }

            return status;
        }
        finally
        {
            _beat.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
        _lost.Dispose();
        _cancel.Dispose();
        _beat.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: the lease was lost to another delivery; stopping")]
    private static partial void LogLeaseLost(ILogger logger, Guid jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: heartbeat failed")]
    private static partial void LogHeartbeatFailed(ILogger logger, Guid jobId, Exception exception);
}
