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
