namespace Afnio.Worker.Jobs;

/// <summary>The <c>Afnio:Jobs</c> configuration section: how running jobs hold and hand over their work.</summary>
public sealed class JobOptions
{
    public const string Section = "Afnio:Jobs";

    /// <summary>
    /// How long a running job's claim lasts without renewal. A worker that dies mid-job stops
    /// renewing; once the lease runs out, recovery hands the job to another worker.
    /// </summary>
    public double LeaseSeconds { get; set; } = 60;

    /// <summary>How often a running job renews its lease, publishes progress and looks for a cancel request.</summary>
    public int MonitorIntervalMs { get; set; } = 250;

    /// <summary>How often each worker looks for jobs whose worker died.</summary>
    public double RecoveryIntervalSeconds { get; set; } = 30;

    /// <summary>
    /// How many nodes of one backward pass may run at once. Nodes that finish together commit
    /// together, so a wide bound also means fewer commits; language-model calls are limited per model.
    /// </summary>
    public int BackwardConcurrency { get; set; } = 64;

    /// <summary>
    /// How many deliveries of one job may die (their worker killed, for example out of memory) before
    /// the job is failed with <c>job_delivery_limit</c> instead of being delivered again (default 3).
    /// A delivery that makes progress before it dies starts the count again.
    /// </summary>
    public int MaxDeliveries { get; set; } = 3;

    /// <summary>Jobs one worker process runs at once (Hangfire workers); default two per core, 4 to 20.</summary>
    public int? WorkerCount { get; set; }

    public TimeSpan Lease => TimeSpan.FromSeconds(LeaseSeconds);
}
