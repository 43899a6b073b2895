using System.Security.Claims;

namespace Afnio.Api.Auth;

/// <summary>The caller's project. Every query of project data filters on <see cref="ProjectId"/>.</summary>
public sealed record ProjectContext(Guid ProjectId, Guid ApiKeyId)
{
    public static ProjectContext FromUser(ClaimsPrincipal user) =>
        user.FindFirstValue(ApiKeyAuthenticationHandler.ProjectClaim) is { } project
        && user.FindFirstValue(ApiKeyAuthenticationHandler.ApiKeyClaim) is { } key
            ? new(Guid.ParseExact(project, "N"), Guid.ParseExact(key, "N"))
            : throw new InvalidOperationException("ProjectContext used on an endpoint that does not require a project key.");
}

/// <summary>The caller of a user-key endpoint: the user and the key it used.</summary>
public sealed record UserContext(Guid UserId, Guid ApiKeyId)
{
    public static UserContext FromUser(ClaimsPrincipal user) =>
        user.FindFirstValue(ApiKeyAuthenticationHandler.UserClaim) is { } id
        && user.FindFirstValue(ApiKeyAuthenticationHandler.ApiKeyClaim) is { } key
            ? new(Guid.ParseExact(id, "N"), Guid.ParseExact(key, "N"))
            : throw new InvalidOperationException("UserContext used on an endpoint that does not require a user key.");
}
