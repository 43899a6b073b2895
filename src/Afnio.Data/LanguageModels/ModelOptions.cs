using Afnio.Domain.Pricing;

namespace Afnio.Data.LanguageModels;

/// <summary>How provider calls are made (<c>Afnio:Models</c>; environment <c>Afnio__Models__…</c>).</summary>
public sealed class ModelOptions
{
    public const string Section = "Afnio:Models";

    /// <summary>
    /// Bytes of a call's request stored whole in the call journal; a larger one is stored as its hash,
    /// its size and an excerpt of half this size.
    /// </summary>
    public int MaxJournaledRequestBytes { get; set; } = 64 * 1024;

    /// <summary>Attempts per call, the first included, before a transient fault fails the call.</summary>
    public int MaxAttempts { get; set; } = 4;

    /// <summary>First backoff delay; it doubles per attempt (with jitter) unless the provider sends Retry-After.</summary>
    public int RetryBaseDelayMs { get; set; } = 500;

    /// <summary>No wait between attempts is longer than this, whatever Retry-After asks.</summary>
    public int MaxRetryDelaySeconds { get; set; } = 60;

    /// <summary>A provider that sends nothing back for this long has timed out (the attempt is retried).</summary>
    public int NetworkTimeoutSeconds { get; set; } = 120;

    /// <summary>Concurrent calls per model client when it was registered without <c>max_concurrency</c>.</summary>
    public int DefaultMaxConcurrency { get; set; } = 8;

    /// <summary>
    /// Whether model clients may reach loopback, private and link-local addresses (a local vLLM or Ollama).
    /// Off by default: a hosted service must not let a project's <c>base_url</c> reach its internal network.
    /// Checked when a connection is made, so a DNS name that later points inside is refused too.
    /// </summary>
    public bool AllowPrivateAddresses { get; set; }

    /// <summary>
    /// Whether model calls go through the proxy named by <c>HTTPS_PROXY</c>/<c>HTTP_PROXY</c>. Off by
    /// default: through a proxy the address check would see the proxy's address, not the provider's.
    /// </summary>
    public bool UseProxy { get; set; }

    /// <summary>
    /// Where model clients registered without <c>base_url</c> send their calls; OpenAI's own endpoint
    /// when unset. An operator can point it at an OpenAI-compatible gateway (LiteLLM, a proxy with
    /// audit logging), which then also serves afnio clients that name no base URL.
    /// </summary>
    public string? OpenAiBaseUrl { get; set; }

    /// <summary>A JSON file in the shipped <c>model_prices.json</c> format that replaces the built-in table.</summary>
    public string? PriceFile { get; set; }

    /// <summary>Per-model price overrides, USD per million tokens (e.g. <c>Afnio__Models__Prices__my-model__Input=0.5</c>).</summary>
    public Dictionary<string, PriceOverride> Prices { get; set; } = [];

    /// <summary>The price table these options describe.</summary>
    public PriceTable BuildPriceTable()
    {
        var table = PriceFile is { Length: > 0 } path ? LoadFile(path) : PriceTable.Default;
        return Prices.Count == 0
            ? table
            : table.With(Prices.ToDictionary(p => p.Key, p => new ModelPrice(p.Value.Input, p.Value.Cached, p.Value.Output)));
    }

    private static PriceTable LoadFile(string path)
    {
        using var stream = File.OpenRead(path);
        return PriceTable.Load(stream);
    }
}

/// <summary>One model's prices in configuration; a missing price is not charged.</summary>
public sealed class PriceOverride
{
    public decimal? Input { get; set; }
    public decimal? Cached { get; set; }
    public decimal? Output { get; set; }
}
