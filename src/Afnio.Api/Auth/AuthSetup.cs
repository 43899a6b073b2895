using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;

namespace Afnio.Api.Auth;

public static class AuthSetup
{
    public const string AdminPolicy = "admin";
    public const string ProjectPolicy = "project";
    public const string UserPolicy = "user";

    /// <summary>Every endpoint needs a project key unless it says otherwise.</summary>
    public static IServiceCollection AddAfnioAuth(this IServiceCollection services)
    {
        services.AddHttpContextAccessor();
        services.AddMemoryCache();
        services.AddSingleton<ApiKeyCache>();
        services.AddSingleton<KeyLookupLimiter>();
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        var project = new AuthorizationPolicyBuilder(ApiKeyAuthenticationHandler.SchemeName)
            .RequireClaim(ApiKeyAuthenticationHandler.ProjectClaim).Build();
        services.AddAuthorizationBuilder()
            .AddPolicy(ProjectPolicy, project)
            .AddPolicy(AdminPolicy, p => p.AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
                .RequireRole(ApiKeyAuthenticationHandler.AdminRole))
            .AddPolicy(UserPolicy, p => p.AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
                .RequireClaim(ApiKeyAuthenticationHandler.UserClaim))
            .SetFallbackPolicy(project);
        services.AddScoped(sp => ProjectContext.FromUser(
            sp.GetRequiredService<IHttpContextAccessor>().HttpContext?.User ?? new ClaimsPrincipal()));
        services.AddScoped(sp => UserContext.FromUser(
            sp.GetRequiredService<IHttpContextAccessor>().HttpContext?.User ?? new ClaimsPrincipal()));
        return services;
    }
}
