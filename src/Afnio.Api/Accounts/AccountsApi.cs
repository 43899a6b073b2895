using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Variables;
using Afnio.Data;
using Afnio.Data.Accounts;
using Afnio.Data.Jobs;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Afnio.Api.Accounts;

/// <summary>
/// Admin-only: users with their user-level API keys, and organizations with their members. A user
/// and an organization are each a namespace; the afnio protocol finds projects by namespace slug.
/// </summary>
public static class AccountsApi
{
    private const int MaxMembersListed = 1000;

    public static RouteGroupBuilder MapAccounts(this RouteGroupBuilder v1)
    {
        var users = v1.MapGroup("/users").WithTags("Users").RequireAuthorization(AuthSetup.AdminPolicy);
        users.MapPost("/", CreateUser).WithName("createUser").ProducesProblem(StatusCodes.Status409Conflict)
            .WithDescription("Creates a user; its namespace slug is python-slugify of the username.");
        users.MapGet("/", ListUsers).WithName("listUsers");
        users.MapGet("/{id}", GetUser).WithName("retrieveUser");
        users.MapDelete("/{id}", DeleteUser).WithName("deleteUser")
            .WithDescription("Deletes the user, its keys and memberships. Its projects stay, reachable with the admin and project keys.");
        users.MapPost("/{id}/api_keys", CreateUserApiKey).WithName("createUserApiKey")
            .WithDescription("Creates a user API key (afu_…) for the afnio protocol; the secret is returned once, in 'key'.");
        users.MapGet("/{id}/api_keys", ListUserApiKeys).WithName("listUserApiKeys");
        users.MapDelete("/{id}/api_keys/{keyId}", RevokeUserApiKey).WithName("revokeUserApiKey");

        var organizations = v1.MapGroup("/organizations").WithTags("Organizations").RequireAuthorization(AuthSetup.AdminPolicy);
        organizations.MapPost("/", CreateOrganization).WithName("createOrganization").ProducesProblem(StatusCodes.Status409Conflict);
        organizations.MapGet("/", ListOrganizations).WithName("listOrganizations");
        organizations.MapGet("/{id}", GetOrganization).WithName("retrieveOrganization");
        organizations.MapDelete("/{id}", DeleteOrganization).WithName("deleteOrganization")
            .WithDescription("Deletes the organization and its memberships. Its projects stay, reachable with the admin and project keys.");
        organizations.MapPost("/{id}/members", AddMember).WithName("addOrganizationMember");
        organizations.MapGet("/{id}/members", ListMembers).WithName("listOrganizationMembers");
        organizations.MapDelete("/{id}/members/{userId}", RemoveMember).WithName("removeOrganizationMember");
        return v1;
    }

    public static async Task<Created<UserResponse>> CreateUser(CreateUserRequest request, AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var username = request.Username ?? throw ApiException.BadRequest("missing_field", "'username' is required.", "username");
        if (username.Length is 0 or > 150 || username.Any(char.IsControl))
        {
            throw ApiException.BadRequest("invalid_username", "username must be 1 to 150 characters, without control characters.", "username");
        }

        var email = (request.Email ?? throw ApiException.BadRequest("missing_field", "'email' is required.", "email")).Trim();
        if (email.Length is < 3 or > 254 || !email.Contains('@', StringComparison.Ordinal) || email.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            throw ApiException.BadRequest("invalid_email", "email must be an address such as 'ada@example.com' (at most 254 characters).", "email");
        }

        var slug = CheckSlug(Slugs.Slugify(username), "username", $"The username '{username}' has no letter or digit to make a namespace slug from.");
        if (await db.Users.AnyAsync(u => u.Username == username, ct))
        {
            throw ApiException.Conflict("username_taken", $"A user named '{username}' exists already.", "username");
        }

        var now = clock.GetUtcNow();
        var id = PrefixedId.NewGuid();
        db.Namespaces.Add(new ProjectNamespace { Id = id, Slug = slug, Kind = ProjectNamespace.UserKind, CreatedAt = now });
        var user = new User { Id = id, Username = username, Email = email, CreatedAt = now };
        db.Users.Add(user);
        await SaveNewAsync(db, slug, ct, ("ix_users_username", "username_taken", $"A user named '{username}' exists already.", "username"));
        var response = ToResponse(user, slug);
        return TypedResults.Created($"/v1/users/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<UserResponse>>> ListUsers([AsParameters] PageQuery page, AfnioDbContext db, CancellationToken ct)
    {
        var (rows, limit) = await db.Users.AsNoTracking().FetchPageAsync(PrefixedId.User, page, ct);
        var slugs = await SlugsAsync(db, [.. rows.Select(u => u.Id)], ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(u => ToResponse(u, slugs[u.Id]))], limit, u => u.Id));
    }

    public static async Task<Ok<UserResponse>> GetUser(string id, AfnioDbContext db, CancellationToken ct)
    {
        var user = await FindUserAsync(db, id, "id", ct);
        return TypedResults.Ok(ToResponse(user, (await SlugsAsync(db, [user.Id], ct))[user.Id]));
    }

    public static async Task<Ok<DeletedResponse>> DeleteUser(string id, AfnioDbContext db, ApiKeyCache keys, CancellationToken ct)
    {
        var user = await FindUserAsync(db, id, "id", ct);
        var userKeys = await db.UserApiKeys.Where(k => k.UserId == user.Id).Select(k => new { k.Id, k.SecretHash }).ToListAsync(ct);
        // The namespace row owns the user row: deleting it deletes the user, its keys and memberships.
        await db.Namespaces.Where(n => n.Id == user.Id).ExecuteDeleteAsync(ct);
        foreach (var key in userKeys)
        {
            keys.Evict(key.SecretHash);
            await JobNotifications.KeyRevokedAsync(db, key.Id, key.SecretHash, ct);
        }
        return TypedResults.Ok(new DeletedResponse(id, "user.deleted", true));
    }

    public static async Task<Created<UserApiKeyCreatedResponse>> CreateUserApiKey(
        string id, CreateUserApiKeyRequest request, AfnioDbContext db, ApiKeyCache keys, TimeProvider clock, CancellationToken ct)
    {
        var user = await FindUserAsync(db, id, "id", ct);
        var name = request.Name?.Trim() is { Length: > 0 } n ? StorableText.Check(n, "invalid_name", "name") : "default";
        if (name.Length > 200)
        {
            throw ApiException.BadRequest("invalid_name", "name must be at most 200 characters.", "name");
        }

        var secret = ApiKeys.GenerateUserKey();
        var key = new UserApiKey
        {
            Id = PrefixedId.NewGuid(),
            UserId = user.Id,
            Name = name,
            SecretHash = ApiKeys.Hash(secret),
            Hint = ApiKeys.Hint(secret),
            CreatedAt = clock.GetUtcNow(),
        };
        db.UserApiKeys.Add(key);
        await db.SaveChangesAsync(ct);
        keys.Created(key.SecretHash);
        var keyId = PrefixedId.Format(PrefixedId.UserApiKey, key.Id);
        return TypedResults.Created($"/v1/users/{id}/api_keys/{keyId}", new UserApiKeyCreatedResponse(
            keyId, PrefixedId.Format(PrefixedId.User, user.Id), key.Name, secret, key.Hint, UnixTime.Of(key.CreatedAt)));
    }

    public static async Task<Ok<ListResponse<UserApiKeyResponse>>> ListUserApiKeys(string id, AfnioDbContext db, CancellationToken ct)
    {
        var user = await FindUserAsync(db, id, "id", ct);
        var rows = await db.UserApiKeys.AsNoTracking().Where(k => k.UserId == user.Id).OrderBy(k => k.Id).ToListAsync(ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(ToResponse)], int.MaxValue, k => k.Id));
    }

    /// <summary>Revoking is immediate and permanent; revoking a revoked key changes nothing.</summary>
    public static async Task<Ok<UserApiKeyResponse>> RevokeUserApiKey(
        string id, string keyId, AfnioDbContext db, ApiKeyCache keys, TimeProvider clock, CancellationToken ct)
    {
        var user = await FindUserAsync(db, id, "id", ct);
        if (!PrefixedId.TryParse(PrefixedId.UserApiKey, keyId, out var keyGuid))
        {
            throw ApiException.NotFound("api_key", "key_id");
        }

        var key = await db.UserApiKeys.SingleOrDefaultAsync(k => k.Id == keyGuid && k.UserId == user.Id, ct)
            ?? throw ApiException.NotFound("api_key", "key_id");
        key.RevokedAt ??= clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        keys.Evict(key.SecretHash);
        await JobNotifications.KeyRevokedAsync(db, key.Id, key.SecretHash, ct);
        return TypedResults.Ok(ToResponse(key));
    }

    public static async Task<Created<OrganizationResponse>> CreateOrganization(
        CreateOrganizationRequest request, AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var wanted = request.Slug ?? throw ApiException.BadRequest("missing_field", "'slug' is required.", "slug");
        if (wanted.Length is 0 or > 100 || Slugs.Slugify(wanted) != wanted)
        {
            throw ApiException.BadRequest("invalid_slug",
                $"slug must be 1 to 100 lower-case letters, digits and single dashes (for example '{(Slugs.Slugify(wanted) is { Length: > 0 } s ? s : "acme")}').", "slug");
        }

        var slug = CheckSlug(wanted, "slug", "slug must hold a letter or digit.");
        var displayName = request.DisplayName ?? throw ApiException.BadRequest("missing_field", "'display_name' is required.", "display_name");
        if (displayName.Trim().Length is 0 || displayName.Length > 200)
        {
            throw ApiException.BadRequest("invalid_display_name", "display_name must be 1 to 200 characters.", "display_name");
        }

        var now = clock.GetUtcNow();
        var id = PrefixedId.NewGuid();
        db.Namespaces.Add(new ProjectNamespace { Id = id, Slug = slug, Kind = ProjectNamespace.OrganizationKind, CreatedAt = now });
        var organization = new Organization { Id = id, DisplayName = StorableText.Check(displayName, "invalid_display_name", "display_name"), CreatedAt = now };
        db.Organizations.Add(organization);
        await SaveNewAsync(db, slug, ct);
        var response = ToResponse(organization, slug);
        return TypedResults.Created($"/v1/organizations/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<OrganizationResponse>>> ListOrganizations([AsParameters] PageQuery page, AfnioDbContext db, CancellationToken ct)
    {
        var (rows, limit) = await db.Organizations.AsNoTracking().FetchPageAsync(PrefixedId.Organization, page, ct);
        var slugs = await SlugsAsync(db, [.. rows.Select(o => o.Id)], ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(o => ToResponse(o, slugs[o.Id]))], limit, o => o.Id));
    }

    public static async Task<Ok<OrganizationResponse>> GetOrganization(string id, AfnioDbContext db, CancellationToken ct)
    {
        var organization = await FindOrganizationAsync(db, id, ct);
        return TypedResults.Ok(ToResponse(organization, (await SlugsAsync(db, [organization.Id], ct))[organization.Id]));
    }

    public static async Task<Ok<DeletedResponse>> DeleteOrganization(string id, AfnioDbContext db, CancellationToken ct)
    {
        var organization = await FindOrganizationAsync(db, id, ct);
        await db.Namespaces.Where(n => n.Id == organization.Id).ExecuteDeleteAsync(ct);
        return TypedResults.Ok(new DeletedResponse(id, "organization.deleted", true));
    }

    /// <summary>Adding a member twice changes nothing and answers the existing membership.</summary>
    public static async Task<Created<MemberResponse>> AddMember(
        string id, AddMemberRequest request, AfnioDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var organization = await FindOrganizationAsync(db, id, ct);
        var user = await FindUserAsync(db, request.UserId ?? throw ApiException.BadRequest("missing_field", "'user_id' is required.", "user_id"),
            "user_id", ct);
        await db.Database.ExecuteSqlAsync($"""
            INSERT INTO organization_members (organization_id, user_id, created_at)
            VALUES ({organization.Id}, {user.Id}, {clock.GetUtcNow()})
            ON CONFLICT (organization_id, user_id) DO NOTHING
            """, ct);
        var member = await db.OrganizationMembers.AsNoTracking().SingleAsync(m => m.OrganizationId == organization.Id && m.UserId == user.Id, ct);
        return TypedResults.Created($"/v1/organizations/{id}/members", ToResponse(member, user.Username));
    }

    public static async Task<Ok<ListResponse<MemberResponse>>> ListMembers(string id, AfnioDbContext db, CancellationToken ct)
    {
        var organization = await FindOrganizationAsync(db, id, ct);
        var rows = await db.OrganizationMembers.AsNoTracking().Where(m => m.OrganizationId == organization.Id)
            .Join(db.Users, m => m.UserId, u => u.Id, (m, u) => new { Member = m, u.Username })
            .OrderBy(r => r.Member.UserId).Take(MaxMembersListed + 1).ToListAsync(ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(r => ToResponse(r.Member, r.Username))], MaxMembersListed, m => m.UserId));
    }

    public static async Task<Ok<DeletedResponse>> RemoveMember(string id, string userId, AfnioDbContext db, CancellationToken ct)
    {
        var organization = await FindOrganizationAsync(db, id, ct);
        var user = await FindUserAsync(db, userId, "user_id", ct);
        var removed = await db.OrganizationMembers.Where(m => m.OrganizationId == organization.Id && m.UserId == user.Id).ExecuteDeleteAsync(ct);
        return removed == 1
            ? TypedResults.Ok(new DeletedResponse(userId, "organization.member.deleted", true))
            : throw ApiException.NotFound("member", "user_id");
    }

    private static string CheckSlug(string slug, string param, string emptyMessage)
    {
        if (slug.Length == 0)
        {
            throw ApiException.BadRequest("invalid_" + param, emptyMessage, param);
        }

        return NamespaceAccess.ReservedSlugs.Contains(slug)
            ? throw ApiException.BadRequest("reserved_slug", $"The namespace '{slug}' is reserved for the service's own routes; choose another.", param)
            : slug;
    }

    private static async Task SaveNewAsync(AfnioDbContext db, string slug, CancellationToken ct, params (string Index, string Code, string Message, string Param)[] others)
    {
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } unique)
        {
            if (Array.Find(others, o => o.Index == unique.ConstraintName) is { Code: not null } other)
            {
                throw ApiException.Conflict(other.Code, other.Message, other.Param);
            }

            throw ApiException.Conflict("namespace_taken", $"The namespace '{slug}' belongs to another user or organization.");
        }
    }

    private static async Task<Dictionary<Guid, string>> SlugsAsync(AfnioDbContext db, IReadOnlyCollection<Guid> ids, CancellationToken ct) =>
        await db.Namespaces.AsNoTracking().Where(n => ids.Contains(n.Id)).ToDictionaryAsync(n => n.Id, n => n.Slug, ct);

    public static async Task<User> FindUserAsync(AfnioDbContext db, string id, string param, CancellationToken ct) =>
        PrefixedId.TryParse(PrefixedId.User, id, out var guid)
        && await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.Id == guid, ct) is { } user
            ? user
            : throw ApiException.NotFound("user", param);

    private static async Task<Organization> FindOrganizationAsync(AfnioDbContext db, string id, CancellationToken ct) =>
        PrefixedId.TryParse(PrefixedId.Organization, id, out var guid)
        && await db.Organizations.AsNoTracking().SingleOrDefaultAsync(o => o.Id == guid, ct) is { } organization
            ? organization
            : throw ApiException.NotFound("organization", "id");

    private static UserResponse ToResponse(User u, string slug) =>
        new(PrefixedId.Format(PrefixedId.User, u.Id), u.Username, slug, u.Email, UnixTime.Of(u.CreatedAt));

    private static UserApiKeyResponse ToResponse(UserApiKey k) => new(
        PrefixedId.Format(PrefixedId.UserApiKey, k.Id), PrefixedId.Format(PrefixedId.User, k.UserId),
        k.Name, k.Hint, UnixTime.Of(k.CreatedAt), UnixTime.Of(k.RevokedAt));

    private static OrganizationResponse ToResponse(Organization o, string slug) =>
        new(PrefixedId.Format(PrefixedId.Organization, o.Id), slug, o.DisplayName, UnixTime.Of(o.CreatedAt));

    private static MemberResponse ToResponse(OrganizationMember m, string username) => new(
        PrefixedId.Format(PrefixedId.Organization, m.OrganizationId), PrefixedId.Format(PrefixedId.User, m.UserId), username, UnixTime.Of(m.CreatedAt));
}
