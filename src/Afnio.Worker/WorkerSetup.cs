using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Webhooks;
using Afnio.Domain.Autodiff;
using Afnio.Worker.Backward;
using Afnio.Worker.Housekeeping;
using Afnio.Worker.Jobs;
using Afnio.Worker.Optimizers;
using Afnio.Worker.Training;
using Afnio.Worker.Webhooks;
using Hangfire;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Afnio.Worker;

/// <summary>The job implementations, the job dispatcher and the Hangfire servers; used by the Worker and by the API in in-process mode.</summary>
public static class WorkerSetup
{
    /// <summary>Registers job implementations, the dispatcher, the Hangfire servers and the recurring schedules.</summary>
    public static IServiceCollection AddAfnioWorker(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.Configure<JobOptions>(configuration.GetSection(JobOptions.Section));
        services.AddScoped<JobRecorder>();
        services.AddScoped<ClaimedJob>();
        services.AddSingleton<CpuSlots>();
        services.AddScoped<IHousekeepingJobs, HousekeepingJobs>();
        services.AddScoped<JobExecution>();
        services.AddScoped<IBackwardJobs, BackwardJobs>();
        services.AddScoped<IOptimizerJobs, OptimizerJobs>();
        services.AddScoped<ITrainingJobs, TrainingJobs>();
        // Jobs come from the jobs table, not from Hangfire (docs/decisions/018-jobs-table-as-queue.md).
        services.AddSingleton<JobDispatcher>();
        services.AddHostedService(provider => provider.GetRequiredService<JobDispatcher>());
        services.AddHostedService<FetchWatchdog>();
        // Hangfire still fires the recurring housekeeping (and drains entries queued by older versions,
        // whose jobs the dispatcher may already have run: they are then no-ops).
        services.AddAfnioHangfireServer("control", 1, o =>
        {
            o.ServerName = $"afnio-{JobRecorder.ProcessName}";
            o.Queues = AfnioDataSetup.Queues;
            o.StopTimeout = TimeSpan.FromSeconds(5);
            o.ShutdownTimeout = TimeSpan.FromSeconds(15);
        });
        services.AddSingleton<WebhookSender>();
        services.AddScoped<IWebhookJobs, WebhookJobs>();
        services.AddHostedService<WebhookDispatcher>();
        // Webhooks have their own server and queue: slow receivers never hold up model work.
        services.AddAfnioHangfireServer("webhooks", Math.Max(1, configuration.GetValue<int?>($"{WebhookOptions.Section}:WorkerCount") ?? 8), o =>
        {
            o.ServerName = $"afnio-webhooks-{JobRecorder.ProcessName}";
            o.Queues = [IWebhookJobs.Queue];
            o.StopTimeout = TimeSpan.FromSeconds(2);
            o.ShutdownTimeout = TimeSpan.FromSeconds(15);
        });
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        services.AddHostedService<RecurringJobsRegistration>();
        return services;
    }
}

/// <summary>
/// Keeps the recurring schedules in Hangfire in step with configuration on every start.
/// <c>Afnio:Housekeeping:Schedule</c> is a cron expression (default hourly), or <c>never</c>.
/// </summary>
internal sealed class RecurringJobsRegistration(IRecurringJobManager recurring, IConfiguration configuration) : IHostedService
{
    public const string HousekeepingId = "housekeeping";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var schedule = configuration["Afnio:Housekeeping:Schedule"] ?? Cron.Hourly();
        if (string.Equals(schedule, "never", StringComparison.OrdinalIgnoreCase))
        {
            recurring.RemoveIfExists(HousekeepingId);
        }
        else
        {
            recurring.AddOrUpdate<IHousekeepingJobs>(
                HousekeepingId, AfnioDataSetup.Queues[0], j => j.RunScheduledAsync(CancellationToken.None), schedule);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
