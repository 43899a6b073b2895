using System.Collections.Concurrent;
using Afnio.Api.Infrastructure;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Auth;

/// <summary>
/// Remembers valid project and user keys for a few seconds (<see cref="AfnioOptions.KeyCacheSeconds"/>), so
/// a request costs no key lookup. Revoking evicts the key in every API process (the revocation is
/// announced on the job signal channel). Keys the database did not know are remembered too, for
/// <see cref="AfnioOptions.KeyLookupOptions.NegativeCacheSeconds"/> and at most
/// <see cref="AfnioOptions.KeyLookupOptions.NegativeCacheSize"/> of them, so repeating a bad key
/// costs no lookup either. Concurrent requests with the same key not in memory share one lookup.
/// </summary>
public sealed class ApiKeyCache(IMemoryCache cache, IOptions<AfnioOptions> options) : IDisposable
{
    // A cache of its own: a size limit on the shared one would require a size on every entry of every user.
    private readonly MemoryCache _unknown = new(new MemoryCacheOptions { SizeLimit = Math.Max(1, options.Value.KeyLookups.NegativeCacheSize) });
    private readonly ConcurrentDictionary<string, Task<Entry?>> _lookups = new();

    /// <summary>A valid key: a project key has <see cref="ProjectId"/>, a user key <see cref="UserId"/>.</summary>
    public sealed record Entry(Guid KeyId, Guid? ProjectId, Guid? UserId = null);

    public bool TryGet(string secretHash, out Entry? entry) => cache.TryGetValue(CacheKey(secretHash), out entry);

    public void Set(string secretHash, Entry entry)
    {
        if (options.Value.KeyCacheSeconds > 0)
        {
            cache.Set(CacheKey(secretHash), entry, TimeSpan.FromSeconds(options.Value.KeyCacheSeconds));
        }
    }

    /// <summary>True while a lookup of this key is under way: a request may wait for it instead of causing one.</summary>
    public bool IsBeingLookedUp(string secretHash) => _lookups.ContainsKey(secretHash);

    /// <summary>
    /// Looks the key up with <paramref name="lookUp"/> and remembers the answer (the key, or that it is
    /// unknown), unless a lookup of the same key is already under way: then its answer is shared. So a
    /// client that opens many requests at once with a key this process has not seen yet causes one
    /// lookup, not one per request.
    /// </summary>
    public async Task<Entry?> LookUpOnceAsync(string secretHash, Func<Task<Entry?>> lookUp)
    {
        ArgumentNullException.ThrowIfNull(lookUp);
        var mine = new TaskCompletionSource<Entry?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var shared = _lookups.GetOrAdd(secretHash, mine.Task);
        if (shared != mine.Task)
        {
            return await shared;
        }

        try
        {
            var entry = await lookUp();
            if (entry is null)
            {
                SetUnknown(secretHash);
            }
            else
            {
                Set(secretHash, entry);
            }

            mine.SetResult(entry);
            return entry;
        }
        catch (Exception e)
        {
            mine.SetException(e);
            _ = mine.Task.Exception; // observed here: each waiter rethrows it for its own request
            throw;
        }
        finally
        {
            _lookups.TryRemove(new KeyValuePair<string, Task<Entry?>>(secretHash, mine.Task));
        }
    }

    public void Evict(string secretHash) => cache.Remove(CacheKey(secretHash));

    /// <summary>True when a lookup of this key found nothing a short while ago.</summary>
    public bool IsKnownUnknown(string secretHash) => _unknown.TryGetValue(secretHash, out _);

    /// <summary>Remembers that no active key has this hash (unknown or revoked).</summary>
    public void SetUnknown(string secretHash)
    {
        if (options.Value.KeyLookups.NegativeCacheSeconds > 0)
        {
            _unknown.Set(secretHash, true, new MemoryCacheEntryOptions
            {
                Size = 1,
                AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(options.Value.KeyLookups.NegativeCacheSeconds),
            });
        }
    }

    /// <summary>
    /// A key was just created in this process. Its 256 random bits make an earlier lookup of it all but
    /// impossible; forgetting any miss anyway makes "a new key works at once" not depend on that.
    /// </summary>
    public void Created(string secretHash) => _unknown.Remove(secretHash);

    public void Dispose() => _unknown.Dispose();

    private static string CacheKey(string secretHash) => "api-key:" + secretHash;
}
