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

    /// <summary>
    /// How often each Worker looks at the queue without being notified (default 30 s); that is also how
    /// soon, at the latest, a job whose Worker died is taken once its lease has run out.
    /// </summary>
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

    /// <summary>
    /// Jobs one Worker process runs at once (default 64). A job spends its time waiting on providers
    /// and the database, so slots are not tied to cores: CPU-heavy sections (planning a backward pass)
    /// take one of <see cref="CpuSlots"/> as well, and each model's calls stay within its own limits.
    /// </summary>
    public int Slots { get; set; } = 64;

    /// <summary>
    /// Jobs one project may have running at once, across all Workers (default 32; 0: no limit). Its
    /// other jobs wait queued while other projects' jobs are taken.
    /// </summary>
    public int MaxRunningPerProject { get; set; } = 32;

    /// <summary>On shutdown, how long running jobs may take to end before they are stopped and handed over (default 5 s).</summary>
    public double StopSeconds { get; set; } = 5;

    public TimeSpan Lease => TimeSpan.FromSeconds(LeaseSeconds);
}
