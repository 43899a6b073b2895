namespace Afnio.Data.Webhooks;

/// <summary>Webhook delivery settings (<c>Afnio:Webhooks</c>), read by the API (registration) and the Worker (delivery).</summary>
public sealed class WebhookOptions
{
    public const string Section = "Afnio:Webhooks";

    /// <summary>
    /// Allow loopback, private and link-local targets, at registration and at connect time. Only for
    /// tests and local development: it lets anyone with a project key make the service call into its network.
    /// </summary>
    public bool AllowPrivateAddresses { get; set; }

    /// <summary>Allow plain <c>http</c> URLs (signatures still protect integrity, but not secrecy).</summary>
    public bool AllowHttp { get; set; }

    /// <summary>How long one attempt may take, connection to last byte (default 15 s).</summary>
    public int TimeoutSeconds { get; set; } = 15;

    /// <summary>
    /// How long one attempt may take once its endpoint's last <see cref="FailingAfterAttempts"/> attempts
    /// all failed (default 3 s); the first success restores <see cref="TimeoutSeconds"/>.
    /// </summary>
    public int FailingTimeoutSeconds { get; set; } = 3;

    /// <summary>Consecutive failed attempts after which an endpoint gets <see cref="FailingTimeoutSeconds"/> (default 3).</summary>
    public int FailingAfterAttempts { get; set; } = 3;

    /// <summary>
    /// Attempts of one project in flight at once, across all Worker processes (default 2). Below
    /// <see cref="WorkerCount"/>, so one project's slow receivers never hold every delivery slot.
    /// </summary>
    public int MaxInFlightPerProject { get; set; } = 2;

    /// <summary>Attempts to one endpoint in flight at once, across all Worker processes (default 1).</summary>
    public int MaxInFlightPerEndpoint { get; set; } = 1;

    /// <summary>The waits after each failed attempt when none are configured: eight attempts over about 27.6 hours.</summary>
    public static readonly IReadOnlyList<int> DefaultRetrySchedule = [5, 300, 1800, 7200, 18000, 36000, 36000];

    /// <summary>
    /// Waits after each failed attempt, in seconds (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
    /// A receiver's <c>Retry-After</c> can only lengthen a wait. Up to 10% jitter is added.
    /// </summary>
    public int[] RetryScheduleSeconds { get; set; } = [];

    /// <summary>The configured schedule, or the default one.</summary>
    public IReadOnlyList<int> RetrySchedule => RetryScheduleSeconds.Length > 0 ? RetryScheduleSeconds : DefaultRetrySchedule;

    /// <summary>An endpoint whose attempts have all failed for this long is disabled (default 5 days).</summary>
    public int DisableAfterFailingSeconds { get; set; } = 5 * 24 * 3600;

    /// <summary>After a rotation, the previous secret keeps signing for this long (default 24 h).</summary>
    public int PreviousSecretSeconds { get; set; } = 24 * 3600;

    /// <summary>The dispatcher's fallback poll when no notification arrives (default 5 s).</summary>
    public double PollIntervalSeconds { get; set; } = 5;

    /// <summary>A delivery handed to Hangfire but not attempted for this long is handed over again (default 120 s).</summary>
    public int RedispatchAfterSeconds { get; set; } = 120;

    /// <summary>Events (with their deliveries and attempt log) are kept this long, unless a delivery is still pending (default 30 days).</summary>
    public int EventRetentionDays { get; set; } = 30;

    /// <summary>Hangfire workers for the <c>c_webhooks</c> queue in each Worker process (default 8).</summary>
    public int WorkerCount { get; set; } = 8;
}
