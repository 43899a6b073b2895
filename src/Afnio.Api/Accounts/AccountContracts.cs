using System.Text.Json.Serialization;

namespace Afnio.Api.Accounts;

/// <summary>Creates a user. Its namespace slug is python-slugify of the username, as the afnio client expects.</summary>
/// <param name="Username">1 to 150 characters, unique; its slug must be free and not reserved.</param>
/// <param name="Email">The address shown by afnio's login.</param>
public sealed record CreateUserRequest(string? Username, string? Email);

public sealed record UserResponse([property: JsonPropertyOrder(-2)] string Id, string Username, string Slug, string Email, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "user";
}

/// <summary>Creates a user API key.</summary>
/// <param name="Name">What the key is for, e.g. "laptop"; defaults to "default".</param>
public sealed record CreateUserApiKeyRequest(string? Name = null);

/// <summary>A user API key. The secret is never shown again after creation; <c>hint</c> is its last four characters.</summary>
public sealed record UserApiKeyResponse(
    [property: JsonPropertyOrder(-2)] string Id, string UserId, string Name, string Hint, long CreatedAt, long? RevokedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "user_api_key";
}

/// <summary>A new user key with its secret in <c>key</c>, shown this once.</summary>
public sealed record UserApiKeyCreatedResponse(
    [property: JsonPropertyOrder(-2)] string Id, string UserId, string Name, string Key, string Hint, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "user_api_key";
}

/// <summary>Creates an organization.</summary>
/// <param name="Slug">Its namespace: lower-case letters, digits and single dashes, 1 to 100 characters, free and not reserved.</param>
/// <param name="DisplayName">A name for people, 1 to 200 characters.</param>
public sealed record CreateOrganizationRequest(string? Slug, string? DisplayName);

public sealed record OrganizationResponse([property: JsonPropertyOrder(-2)] string Id, string Slug, string DisplayName, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "organization";
}

/// <summary>Adds a user to an organization.</summary>
/// <param name="UserId">The user (<c>user_…</c>).</param>
public sealed record AddMemberRequest(string? UserId);

public sealed record MemberResponse(string OrganizationId, string UserId, string Username, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "organization.member";
}
