namespace Afnio.Api.Infrastructure;

/// <summary>The <c>Afnio</c> configuration section (environment: <c>Afnio__AdminKey</c> and so on).</summary>
public sealed class AfnioOptions
{
    public const string Section = "Afnio";

    /// <summary>The key that manages projects and their API keys. Without it, admin calls answer 401.</summary>
    public string? AdminKey { get; set; }

    /// <summary>Requests with a larger body are refused with 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>The body limit of dataset uploads (<c>Afnio__MaxUploadBytes</c>), which carry many items at once.</summary>
    public long MaxUploadBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>How long a process remembers a valid project key; 0 looks every key up on every request.</summary>
    public int KeyCacheSeconds { get; set; } = 10;

    public RateLimitOptions RateLimit { get; set; } = new();

    public StreamOptions Streams { get; set; } = new();

    public KeyLookupOptions KeyLookups { get; set; } = new();

    public IdempotencyOptions Idempotency { get; set; } = new();

    public WorkerOptions Worker { get; set; } = new();

    public ScheduleOptions Schedules { get; set; } = new();

    public ImportOptions Imports { get; set; } = new();

    public sealed class RateLimitOptions
    {
        /// <summary>Burst size per API key.</summary>
        public int TokenLimit { get; set; } = 200;

        /// <summary>Requests added back to each key's bucket per second.</summary>
        public int TokensPerSecond { get; set; } = 50;
    }

    /// <summary>Event streams (<c>GET /v1/jobs/{id}/events</c> as SSE) and long polls (<c>wait_seconds</c>).</summary>
    public sealed class StreamOptions
    {
        /// <summary>Open event streams and long polls one API key may hold in this process; more answer 429 too_many_streams.</summary>
        public int MaxPerKey { get; set; } = 20;

        /// <summary>Open event streams and long polls of all keys in this process.</summary>
        public int MaxTotal { get; set; } = 1000;

        /// <summary>An event stream ends after this long; the client resumes it with Last-Event-ID.</summary>
        public double MaxDurationSeconds { get; set; } = 600;

        /// <summary>How often a waiting stream reads the database without a notification (a lost one only delays it this long).</summary>
        public double FallbackIntervalSeconds { get; set; } = 5;
    }

    /// <summary>Key lookups in the database, and what keeps unknown keys from causing them.</summary>
    public sealed class KeyLookupOptions
    {
        /// <summary>Lookups of keys not in memory one client address may cause in a burst; then 429 too_many_key_lookups.</summary>
        public int BurstPerAddress { get; set; } = 20;

        /// <summary>Lookups added back to each address's bucket per second.</summary>
        public double PerSecondPerAddress { get; set; } = 2;

        /// <summary>How long a key that was not found (unknown or revoked) is answered 401 from memory, without a lookup.</summary>
        public int NegativeCacheSeconds { get; set; } = 30;

        /// <summary>The most unknown keys remembered at once; beyond it, misses are not remembered.</summary>
        public int NegativeCacheSize { get; set; } = 10000;
    }

    public sealed class IdempotencyOptions
    {
        /// <summary>How long a stored response can be replayed.</summary>
        public double RetentionHours { get; set; } = 24;

        /// <summary>How long a request in flight holds its key before a retry may take it over.</summary>
        public double LockSeconds { get; set; } = 60;
    }

    public sealed class WorkerOptions
    {
        /// <summary>True: the API process also runs the Hangfire server (one-machine mode).</summary>
        public bool InProcess { get; set; }
    }

    public sealed class ScheduleOptions
    {
        /// <summary>
        /// True (default): this API process serves the <c>schedules</c> Hangfire queue, where firings
        /// run. At least one API process must, or planned firings wait in the queue.
        /// </summary>
        public bool RunFirings { get; set; } = true;

        /// <summary>How often this process looks for due recurring jobs and scheduled retries (Hangfire's default 15 s).</summary>
        public double PollIntervalSeconds { get; set; } = 15;
    }

    /// <summary>
    /// Caps on what one <c>POST /v1/imports</c> may decompress, measured on the bytes actually
    /// inflated (never the sizes the zip headers claim). A process holds at most
    /// <see cref="MaxConcurrent"/> × (the body, up to <see cref="MaxUploadBytes"/>, plus
    /// <see cref="MaxTotalBytes"/>) for imports at any time.
    /// </summary>
    public sealed class ImportOptions
    {
        /// <summary>Largest uncompressed <c>manifest.json</c>; it is read before anything else.</summary>
        public long MaxManifestBytes { get; set; } = 64 * 1024;

        /// <summary>Largest uncompressed size of one file the manifest lists (413 beyond).</summary>
        public long MaxEntryBytes { get; set; } = 64L * 1024 * 1024;

        /// <summary>Largest uncompressed size of the manifest and the files it lists, together (413 beyond).</summary>
        public long MaxTotalBytes { get; set; } = 64L * 1024 * 1024;

        /// <summary>Largest ratio of inflated to compressed bytes of one file while it is read (400 beyond).</summary>
        public int MaxCompressionRatio { get; set; } = 100;

        /// <summary>Imports this process decompresses at once; more wait for a turn.</summary>
        public int MaxConcurrent { get; set; } = 2;
    }
}
