using Afnio.Api.Infrastructure;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Auth;

/// <summary>
/// Remembers valid project and user keys for a few seconds (<see cref="AfnioOptions.KeyCacheSeconds"/>), so
/// a request costs no key lookup. Revoking evicts the key in the process that revoked it; other
/// API processes stop accepting it when their entry expires. Unknown keys are never cached.
/// </summary>
public sealed class ApiKeyCache(IMemoryCache cache, IOptions<AfnioOptions> options)
{
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

    public void Evict(string secretHash) => cache.Remove(CacheKey(secretHash));

    private static string CacheKey(string secretHash) => "api-key:" + secretHash;
}
