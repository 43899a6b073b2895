using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.Accounts;

/// <summary>Which namespaces, and so which projects, a user's key reaches: the user's own and its organizations'.</summary>
public static class NamespaceAccess
{
    /// <summary>Slugs no user or organization may take: the first segment of the service's own routes.</summary>
    public static IReadOnlySet<string> ReservedSlugs { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "api", "v0", "v1", "ws", "swagger", "healthz", "studio", "admin", "static", "assets",
    };

    /// <summary>The ids of every namespace <paramref name="userId"/> belongs to.</summary>
    public static IQueryable<Guid> ReachableBy(this AfnioDbContext db, Guid userId) =>
        db.Namespaces.Where(n => n.Id == userId
            || db.OrganizationMembers.Any(m => m.UserId == userId && m.OrganizationId == n.Id)).Select(n => n.Id);

    /// <summary>The namespace called <paramref name="slug"/> when the user belongs to it; null for one that does not exist or is another's.</summary>
    public static Task<ProjectNamespace?> FindReachableAsync(this AfnioDbContext db, Guid userId, string slug, CancellationToken ct) =>
        db.Namespaces.AsNoTracking()
            .Where(n => n.Slug == slug && (n.Id == userId || db.OrganizationMembers.Any(m => m.UserId == userId && m.OrganizationId == n.Id)))
            .SingleOrDefaultAsync(ct);

    /// <summary>Whether the user belongs to the namespace that owns the project.</summary>
    public static Task<bool> CanReachProjectAsync(this AfnioDbContext db, Guid userId, Guid projectId, CancellationToken ct) =>
        db.Projects.AnyAsync(p => p.Id == projectId && p.NamespaceId != null && db.ReachableBy(userId).Contains(p.NamespaceId.Value), ct);
}
