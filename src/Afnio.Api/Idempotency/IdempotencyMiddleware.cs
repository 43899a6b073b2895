using System.Security.Cryptography;
using System.Text;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Idempotency;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Idempotency;

/// <summary>
/// <c>Idempotency-Key</c> on POST: the first request runs and its response is stored for
/// <see cref="AfnioOptions.IdempotencyOptions.RetentionHours"/>; a retry with the same key and the
/// same request replays it (header <c>Idempotent-Replayed: true</c>); the same key with another
/// request answers 422; a retry while the first is still running answers 409. Keys are scoped to
/// the caller's API key. Responses that failed on our side (5xx) or were refused before running
/// (401, 429, and errors raised as exceptions, such as validation) are not stored, and their writes
/// are rolled back, so a retry runs again. The endpoint's writes and the stored response commit in one
/// transaction (decision 005).
/// </summary>
public sealed class IdempotencyMiddleware(RequestDelegate next)
{
    public const string HeaderName = "Idempotency-Key";

    public async Task InvokeAsync(HttpContext http, AfnioDbContext db, IOptions<AfnioOptions> options, TimeProvider clock)
    {
        if (!HttpMethods.IsPost(http.Request.Method)
            || !http.Request.Headers.TryGetValue(HeaderName, out var values)
            || Scope(http) is not { } scope)
        {
            await next(http);
            return;
        }

        var key = values.Count == 1 ? ParseKey(values[0] ?? string.Empty) : null;
        if (key is null)
        {
            await Problems.WriteAsync(http, StatusCodes.Status400BadRequest, "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters, sent once.", HeaderName);
            return;
        }

        var settings = options.Value.Idempotency;
        var hash = await HashRequestAsync(http.Request, http.RequestAborted);
        var now = clock.GetUtcNow();
        var lockUntil = now.AddSeconds(settings.LockSeconds);
        // The request hash covers the full path; the stored copy is for people and fits its column.
        var path = http.Request.Path.Value is { Length: > 0 } p ? p[..Math.Min(p.Length, 2048)] : "/";

        var owned = await TryInsertAsync(db, scope, key, http.Request.Method, path, hash, now, lockUntil,
            now.AddHours(settings.RetentionHours), http.RequestAborted);
        if (!owned)
        {
            var existing = await db.IdempotencyRecords.AsNoTracking()
                .SingleOrDefaultAsync(r => r.Scope == scope && r.Key == key, http.RequestAborted);
            if (existing is null || existing.ExpiresAt < now)
            {
                // It expired (or was purged) between our insert and our read: start over once.
                await db.IdempotencyRecords.Where(r => r.Scope == scope && r.Key == key && r.ExpiresAt < now)
                    .ExecuteDeleteAsync(http.RequestAborted);
                owned = await TryInsertAsync(db, scope, key, http.Request.Method, path, hash, now, lockUntil,
                    now.AddHours(settings.RetentionHours), http.RequestAborted);
                existing = owned ? null : existing;
            }

            if (!owned)
            {
                if (existing is null)
                {
                    await Problems.WriteAsync(http, StatusCodes.Status409Conflict, "idempotency_request_in_progress",
                        "A request with this Idempotency-Key is being processed. Retry later.", HeaderName);
                    return;
                }

                if (existing.RequestHash != hash)
                {
                    await Problems.WriteAsync(http, StatusCodes.Status422UnprocessableEntity, "idempotency_key_reused",
                        "This Idempotency-Key was already used with a different request. Use a new key for a new request.",
                        HeaderName);
                    return;
                }

                if (existing.ResponseStatus is { } status)
                {
                    await ReplayAsync(http, existing, status);
                    return;
                }

                // In flight elsewhere; take it over only once its lock has lapsed (its owner died).
                owned = existing.LockedUntil < now && await db.IdempotencyRecords
                    .Where(r => r.Scope == scope && r.Key == key && r.ResponseStatus == null && r.LockedUntil == existing.LockedUntil)
                    .ExecuteUpdateAsync(s => s.SetProperty(r => r.LockedUntil, lockUntil), http.RequestAborted) == 1;
                if (!owned)
                {
                    await Problems.WriteAsync(http, StatusCodes.Status409Conflict, "idempotency_request_in_progress",
                        "A request with this Idempotency-Key is being processed. Retry later.", HeaderName);
                    return;
                }
            }
        }

        await RunAndStoreAsync(http, db, scope, key);
    }

    /// <summary>
    /// Runs the endpoint inside one request transaction and stores its response in that same
    /// transaction: the work and the answer commit together or not at all, so a retry after any
    /// crash either replays the answer or runs a request that left nothing behind.
    /// </summary>
    private async Task RunAndStoreAsync(HttpContext http, AfnioDbContext db, string scope, string key)
    {
        var original = http.Response.Body;
        using var buffer = new MemoryStream();
        http.Response.Body = buffer;
        var stored = false;
        try
        {
            await using var transaction = await db.BeginRequestTransactionAsync(http.RequestAborted);
            await next(http);
            var status = http.Response.StatusCode;
            if (status < 500 && status is not (StatusCodes.Status401Unauthorized or StatusCodes.Status429TooManyRequests))
            {
                var body = buffer.ToArray();
                var contentType = http.Response.ContentType;
                var location = http.Response.Headers.Location.ToString();
                // The work is done: finishing it does not depend on the client still being there.
                await db.IdempotencyRecords.Where(r => r.Scope == scope && r.Key == key).ExecuteUpdateAsync(s => s
                    .SetProperty(r => r.ResponseStatus, status)
                    .SetProperty(r => r.ResponseContentType, contentType)
                    .SetProperty(r => r.ResponseBody, body)
                    .SetProperty(r => r.ResponseLocation, location.Length > 0 ? location : null), CancellationToken.None);
                await transaction.CommitAsync(CancellationToken.None);
                stored = true;
            }
        }
        finally
        {
            http.Response.Body = original;
            // Not stored means rolled back: nothing of the request is left, so a retry may run at once.
            if (!stored)
            {
                db.ChangeTracker.Clear();
                await db.IdempotencyRecords.Where(r => r.Scope == scope && r.Key == key && r.ResponseStatus == null)
                    .ExecuteDeleteAsync(CancellationToken.None);
            }
        }

        buffer.Position = 0;
        await buffer.CopyToAsync(original, http.RequestAborted);
    }

    private static async Task ReplayAsync(HttpContext http, IdempotencyRecord record, int status)
    {
        http.Response.StatusCode = status;
        http.Response.Headers["Idempotent-Replayed"] = "true";
        if (record.ResponseContentType is { } contentType)
        {
            http.Response.ContentType = contentType;
        }

        if (record.ResponseLocation is { } location)
        {
            http.Response.Headers.Location = location;
        }

        if (record.ResponseBody is { Length: > 0 } body)
        {
            await http.Response.Body.WriteAsync(body, http.RequestAborted);
        }
    }

    private static async Task<bool> TryInsertAsync(AfnioDbContext db, string scope, string key, string method, string path,
        string hash, DateTimeOffset now, DateTimeOffset lockUntil, DateTimeOffset expiresAt, CancellationToken ct) =>
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            INSERT INTO idempotency_records (scope, key, method, path, request_hash, created_at, locked_until, expires_at)
            VALUES ({scope}, {key}, {method}, {path}, {hash}, {now}, {lockUntil}, {expiresAt})
            ON CONFLICT (scope, key) DO NOTHING
            """, ct) == 1;

    private static string? Scope(HttpContext http) =>
        http.User.FindFirst(ApiKeyAuthenticationHandler.ApiKeyClaim)?.Value
        ?? (http.User.IsInRole(ApiKeyAuthenticationHandler.AdminRole) ? "admin" : null);

    /// <summary>Accepts the plain form and the RFC 8941 quoted-string form (<c>"abc"</c>).</summary>
    private static string? ParseKey(string raw)
    {
        var key = raw.Length >= 2 && raw[0] == '"' && raw[^1] == '"' ? raw[1..^1] : raw;
        return key.Length is >= 1 and <= 255 && key.All(c => c is >= ' ' and <= '~')
            ? key
            : null;
    }

    private static async Task<string> HashRequestAsync(HttpRequest request, CancellationToken ct)
    {
        request.EnableBuffering();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes($"{request.Method}\n{request.Path}{request.QueryString}\n"));
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            sha.AppendData(chunk, 0, read);
        }

        request.Body.Position = 0;
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
