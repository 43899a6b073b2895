using System.Collections.Concurrent;
using System.Threading.Channels;
using Afnio.Data;
using Afnio.Data.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Afnio.Worker.Jobs;

/// <summary>
/// Takes ready jobs from the <c>jobs</c> table and runs them, up to <see cref="JobOptions.Slots"/> at
/// once. It claims as many jobs as it has free slots in one statement (fair across projects, see
/// <see cref="JobRecorder.ClaimReadyAsync"/>), and looks again when a job is queued or a lease is given
/// back (a notification on <see cref="JobNotifications.QueueChannel"/>), when one of its jobs ends, and
/// every <see cref="JobOptions.RecoveryIntervalSeconds"/>, which also finds jobs whose Worker died (their
/// lease ran out). See docs/decisions/018-jobs-table-as-queue.md.
/// </summary>
public sealed partial class JobDispatcher(
    IServiceScopeFactory scopes,
    IDbContextFactory<AfnioDbContext> contexts,
    IConfiguration configuration,
    IOptions<JobOptions> options,
    TimeProvider clock,
    ILogger<JobDispatcher> log) : BackgroundService
{
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly ConcurrentDictionary<Guid, Task> _running = new();
    private readonly CancellationTokenSource _abort = new();

    /// <summary>How many jobs this Worker runs now.</summary>
    public int Running => _running.Count;

    /// <summary>Whether the queue's notifications reach this dispatcher (it polls at the recovery interval meanwhile).</summary>
    public bool Listening { get; private set; }

    /// <summary>Makes the dispatcher look for ready jobs now.</summary>
    public void Wake() => _wake.Writer.TryWrite(true);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var slots = Math.Max(1, options.Value.Slots);
        await WarmUpAsync(stoppingToken);
        var listener = PostgresListener.ListenAsync(configuration.GetPostgresConnectionString(), "afnio-dispatcher", JobNotifications.QueueChannel,
            _ => Wake(),
            connected: () =>
            {
                Listening = true;
                Wake();
            },
            lost: e =>
            {
                Listening = false;
                LogListenerLost(log, e);
            },
            clock, stoppingToken);
        var poll = PollAsync(stoppingToken);
        LogStarted(log, slots, options.Value.MaxRunningPerProject);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var free = slots - _running.Count;
                var more = false;
                if (free > 0)
                {
                    try
                    {
                        var claimed = await ClaimAsync(free, stoppingToken);
                        foreach (var job in claimed)
                        {
                            Start(job);
                        }

                        // A full batch may have left more ready jobs behind.
                        more = claimed.Count == free;
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        LogClaimFailed(log, e);
                        await Task.Delay(TimeSpan.FromSeconds(1), clock, stoppingToken);
                    }
                }

                if (!more)
                {
                    await _wake.Reader.ReadAsync(stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await DrainAsync();
        await Task.WhenAll(listener, poll).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    // The claim and the heartbeat, once each before the first job (nothing matches: no row changes).
    private async Task WarmUpAsync(CancellationToken ct)
    {
        if (!configuration.GetValue("Afnio:WarmUp", true))
        {
            return;
        }

        try
        {
            await using var db = await contexts.CreateDbContextAsync(ct);
            var recorder = new JobRecorder(db, clock, options);
            await recorder.ClaimReadyAsync(0, options.Value.MaxRunningPerProject, ct);
            await recorder.HeartbeatAsync(Guid.Empty, string.Empty, null, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogClaimFailed(log, e);
        }
    }

    private async Task<IReadOnlyList<Job>> ClaimAsync(int free, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await new JobRecorder(db, clock, options).ClaimReadyAsync(free, options.Value.MaxRunningPerProject, ct);
    }

    private void Start(Job job)
    {
        // Registered before it runs, so a job that ends at once is removed after it was added.
        var run = new TaskCompletionSource();
        _running[job.Id] = run.Task;
        _ = Task.Run(async () =>
        {
            try
            {
                await RunAsync(job);
            }
            finally
            {
                _running.TryRemove(job.Id, out _);
                run.SetResult();
                Wake();
            }
        });
    }

    private async Task RunAsync(Job job)
    {
        await using var scope = scopes.CreateAsyncScope();
        scope.ServiceProvider.GetRequiredService<ClaimedJob>().Set(job);
        var services = scope.ServiceProvider;
        var ct = _abort.Token;
        try
        {
            await (job.Type switch
            {
                BackwardJobArguments.JobType => services.GetRequiredService<IBackwardJobs>().RunAsync(job.Id, ct),
                OptimizerStepJobArguments.JobType => services.GetRequiredService<IOptimizerJobs>().RunStepAsync(job.Id, ct),
                TrainingJobArguments.FitJobType => services.GetRequiredService<ITrainingJobs>().FitAsync(job.Id, ct),
                TrainingJobArguments.TestJobType => services.GetRequiredService<ITrainingJobs>().TestAsync(job.Id, ct),
                IHousekeepingJobs.JobType => services.GetRequiredService<IHousekeepingJobs>().RunAsync(job.Id, ct),
                _ => UnknownTypeAsync(services, job),
            });
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopped by shutdown: the job gave its lease back and another delivery resumes it.
        }
        catch (Exception e)
        {
            // A delivery that gave its lease back (a transient database error) is taken again at once.
            LogDeliveryEnded(log, job.Id, job.Type, e);
        }
    }

    private static Task UnknownTypeAsync(IServiceProvider services, Job job) =>
        services.GetRequiredService<JobRecorder>().FailAsync(job.Id, job.LeaseOwner!, "job_type_unknown",
            $"No Worker method runs jobs of type '{job.Type}'; this Worker is older or newer than the API that queued it.");

    private async Task PollAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(0.1, options.Value.RecoveryIntervalSeconds)), clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                Wake();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // Running jobs get a few seconds to end on their own; the rest are cancelled, give their leases
    // back and resume on another Worker.
    private async Task DrainAsync()
    {
        var running = _running.Values.ToArray();
        if (running.Length == 0)
        {
            return;
        }

        LogDraining(log, running.Length);
        var all = Task.WhenAll(running);
        if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(Math.Max(0, options.Value.StopSeconds)), clock)) != all)
        {
            await _abort.CancelAsync();
            await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(10), clock));
        }
    }

    public override void Dispose()
    {
        _abort.Dispose();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job dispatcher started: {Slots} slots, at most {PerProject} running jobs per project (0: no limit)")]
    private static partial void LogStarted(ILogger logger, int slots, int perProject);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The job dispatcher lost its queue listener; it polls until it reconnects")]
    private static partial void LogListenerLost(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Claiming jobs failed; retrying")]
    private static partial void LogClaimFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A delivery of job {JobId} ({Type}) ended with an error; the job is taken again")]
    private static partial void LogDeliveryEnded(ILogger logger, Guid jobId, string type, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping: waiting for {Count} running jobs")]
    private static partial void LogDraining(ILogger logger, int count);
}
