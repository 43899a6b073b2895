using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Schedules;
using Hangfire;

namespace Afnio.Api.Schedules;

public static class ScheduleSetup
{
    /// <summary>
    /// Registers the firing service, the mirror and its reconciler and, unless turned off, a small
    /// Hangfire server for the <c>schedules</c> queue: a firing creates its run through the API's own
    /// run-creation path (docs/decisions/012-schedules-and-webhooks.md).
    /// </summary>
    public static IServiceCollection AddAfnioSchedules(this IServiceCollection services, AfnioOptions.ScheduleOptions options)
    {
        services.AddScoped<ScheduleFirings>();
        services.AddScoped<ISchedulerJobs>(sp => sp.GetRequiredService<ScheduleFirings>());
        services.AddSingleton<ScheduleMirror>();
        services.AddHostedService<ScheduleReconciler>();
        if (options.RunFirings)
        {
            services.AddAfnioHangfireServer("schedules", 2, o =>
            {
                o.ServerName = $"afnio-schedules-{Environment.MachineName}:{Environment.ProcessId}";
                o.Queues = [ISchedulerJobs.Queue];
                o.SchedulePollingInterval = TimeSpan.FromSeconds(Math.Max(1, options.PollIntervalSeconds));
                o.StopTimeout = TimeSpan.FromSeconds(2);
                o.ShutdownTimeout = TimeSpan.FromSeconds(10);
            });
        }

        return services;
    }
}
