using System.Diagnostics.Metrics;
using System.Net;
using System.Threading.RateLimiting;
using Afnio.Api.Infrastructure;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Auth;

/// <summary>
/// Bounds the key lookups one client address may cause: a token bucket per address, taken before
/// the database is asked about a key not in <see cref="ApiKeyCache"/>. Random keys from one address
/// then reach the database a few times a second at most, and get 429 too_many_key_lookups without
/// a lookup; keys in the cache are never limited here. Counts lookups as the metric
/// <c>afnio.api_key.lookups</c> (meter <c>Afnio.Api.Auth</c>).
/// </summary>
public sealed class KeyLookupLimiter : IDisposable
{
    public const string MeterName = "Afnio.Api.Auth";
    public const string LookupsCounter = "afnio.api_key.lookups";
    public const string RefusedCounter = "afnio.api_key.lookups_refused";

    private readonly PartitionedRateLimiter<string> _buckets;
    private readonly Counter<long> _lookups;
    private readonly Counter<long> _refused;

    public KeyLookupLimiter(IOptions<AfnioOptions> options, IMeterFactory meters)
    {
        var limits = options.Value.KeyLookups;
        var perToken = TimeSpan.FromSeconds(1 / Math.Max(0.001, limits.PerSecondPerAddress));
        _buckets = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.GetTokenBucketLimiter(address, _ =>
            new TokenBucketRateLimiterOptions
            {
                TokenLimit = Math.Max(1, limits.BurstPerAddress),
                TokensPerPeriod = 1,
                ReplenishmentPeriod = perToken,
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
        RetryAfterSeconds = Math.Max(1, (int)Math.Ceiling(perToken.TotalSeconds));
        var meter = meters.Create(MeterName);
        _lookups = meter.CreateCounter<long>(LookupsCounter, description: "API key lookups in the database.");
        _refused = meter.CreateCounter<long>(RefusedCounter, description: "API key lookups refused because the client address sent too many keys the server did not know.");
    }

    /// <summary>When a refused client may try again.</summary>
    public int RetryAfterSeconds { get; }

    /// <summary>Takes a token for one lookup from <paramref name="address"/>'s bucket; false when it is empty.</summary>
    public bool TryLookUp(IPAddress? address)
    {
        using var lease = _buckets.AttemptAcquire(address?.ToString() ?? "unknown");
        if (!lease.IsAcquired)
        {
            _refused.Add(1);
            return false;
        }

        return true;
    }

    /// <summary>Counts a lookup that reached the database.</summary>
    public void Looked(bool found) => _lookups.Add(1, new KeyValuePair<string, object?>("result", found ? "found" : "not_found"));

    public void Dispose() => _buckets.Dispose();
}
