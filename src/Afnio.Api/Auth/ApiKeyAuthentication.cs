using System.Security.Claims;
using System.Text.Encodings.Web;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Microsoft.AspNetCore.Authentication;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Auth;

/// <summary>
/// <c>Authorization: Bearer &lt;key&gt;</c> (or afnio's <c>Api-Key &lt;key&gt;</c>): the admin key from
/// configuration, a project key or a user key, looked up by its hash. Failures answer 401
/// ProblemDetails; there is no 403 in this API.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    AfnioDbContext db,
    ApiKeyCache keys,
    KeyLookupLimiter lookups,
    IOptions<AfnioOptions> afnio)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string ProjectClaim = "afnio:project_id";
    public const string UserClaim = "afnio:user_id";
    public const string ApiKeyClaim = "afnio:api_key_id";
    public const string AdminRole = "admin";

    private const string ThrottledItem = "afnio:key-lookup-throttled";

    private static readonly string[] Schemes = ["Bearer ", "Api-Key "];

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header))
        {
            return AuthenticateResult.NoResult();
        }

        var scheme = Array.Find(Schemes, s => header.StartsWith(s, StringComparison.OrdinalIgnoreCase));
        if (scheme is null)
        {
            return AuthenticateResult.Fail("The Authorization header must be 'Bearer <key>' (or 'Api-Key <key>').");
        }

        var token = header[scheme.Length..].Trim();
        if (afnio.Value.AdminKey is { Length: > 0 } adminKey && ApiKeys.SecretEquals(token, adminKey))
        {
            return Success(new Claim(ClaimTypes.Role, AdminRole));
        }

        var isUserKey = token.StartsWith(ApiKeys.UserPrefix, StringComparison.Ordinal);
        if (!ApiKeys.HasKeyFormat(token))
        {
            return AuthenticateResult.Fail("The API key is not valid.");
        }

        var hash = ApiKeys.Hash(token);
        if (!keys.TryGet(hash, out var key))
        {
            // Unknown keys are answered from memory, and lookups per client address are bounded,
            // so random keys cannot turn into database load (docs/decisions/016-connection-budget.md).
            if (keys.IsKnownUnknown(hash))
            {
                return AuthenticateResult.Fail("The API key is not valid or has been revoked.");
            }

            // A request that can share a lookup already under way takes no token for it.
            if (!keys.IsBeingLookedUp(hash) && !lookups.TryLookUp(Context.Connection.RemoteIpAddress))
            {
                Context.Items[ThrottledItem] = lookups.RetryAfterSeconds;
                return AuthenticateResult.Fail("Too many requests with API keys this server does not know came from this address.");
            }

            // Not bound to this request's cancellation: other requests may be waiting for the answer.
            key = await keys.LookUpOnceAsync(hash, async () =>
            {
                var found = isUserKey
                    ? await db.UserApiKeys.AsNoTracking()
                        .Where(k => k.SecretHash == hash && k.RevokedAt == null)
                        .Select(k => new ApiKeyCache.Entry(k.Id, null, k.UserId))
                        .SingleOrDefaultAsync(CancellationToken.None)
                    : await db.ApiKeys.AsNoTracking()
                        .Where(k => k.SecretHash == hash && k.RevokedAt == null)
                        .Select(k => new ApiKeyCache.Entry(k.Id, k.ProjectId, null))
                        .SingleOrDefaultAsync(CancellationToken.None);
                lookups.Looked(found is not null);
                return found;
            });
        }

        return key switch
        {
            null => AuthenticateResult.Fail("The API key is not valid or has been revoked."),
            { UserId: { } user } => Success(new Claim(UserClaim, user.ToString("N")), new Claim(ApiKeyClaim, key.KeyId.ToString("N"))),
            _ => Success(new Claim(ProjectClaim, key.ProjectId!.Value.ToString("N")), new Claim(ApiKeyClaim, key.KeyId.ToString("N"))),
        };
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await Context.AuthenticateAsync(SchemeName);
        if (Context.Items[ThrottledItem] is int retryAfter)
        {
            Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await Problems.WriteAsync(Context, StatusCodes.Status429TooManyRequests, "too_many_key_lookups",
                $"Too many requests with API keys this server does not know (unknown, mistyped or revoked) came from this address. " +
                $"Check the key, then retry after {retryAfter} s.");
            return;
        }

        Response.Headers.WWWAuthenticate = "Bearer";
        var (code, detail) = result.Failure is { } failure
            ? ("invalid_api_key", failure.Message)
            : ("missing_api_key", "Send an API key as 'Authorization: Bearer <key>'.");
        await Problems.WriteAsync(Context, StatusCodes.Status401Unauthorized, code, detail);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        // Authenticated with the wrong kind of key. Answer 401, never 403: 403 would confirm that
        // the resource exists.
        var user = Context.User;
        var (code, detail) = Context.GetEndpoint()?.Metadata.GetMetadata<UserKeyEndpoint>() is not null
            ? ("user_key_required", "This call works for a user: use a user API key (afu_…), as the afnio client does.")
            : user.IsInRole(AdminRole)
                ? ("project_key_required", "This call works on a project's data: use a project API key (afn_…), not the admin key.")
                : user.HasClaim(c => c.Type == UserClaim)
                    ? ("project_key_required", "This call works on a project's data: use a project API key (afn_…); user keys (afu_…) serve the afnio protocol under /api/v0 and /ws/v0.")
                    : ("admin_key_required", "This call manages projects and accounts: use the admin key.");
        return Problems.WriteAsync(Context, StatusCodes.Status401Unauthorized, code, detail).AsTask();
    }

    private static AuthenticateResult Success(params Claim[] claims) =>
        AuthenticateResult.Success(new AuthenticationTicket(
            new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName)), SchemeName));
}

/// <summary>Marks endpoints that need a user key, so a wrong kind of key is told what to send.</summary>
public sealed class UserKeyEndpoint;
