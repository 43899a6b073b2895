using System.Text.Json.Serialization;

namespace Afnio.Api.Projects;

/// <summary>Creates a project.</summary>
/// <param name="Name">A name for people; not unique.</param>
public sealed record CreateProjectRequest(string Name);

public sealed record ProjectResponse([property: JsonPropertyOrder(-2)] string Id, string Name, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "project";
}

/// <summary>Creates a project API key.</summary>
/// <param name="Name">What the key is for, e.g. "nightly CI"; defaults to "default".</param>
public sealed record CreateApiKeyRequest(string? Name = null);

/// <summary>A project API key. The secret is never shown again after creation; <c>hint</c> is its last four characters.</summary>
public sealed record ApiKeyResponse(
    [property: JsonPropertyOrder(-2)] string Id, string ProjectId, string Name, string Hint, long CreatedAt, long? RevokedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "api_key";
}

/// <summary>A new key with its secret in <c>key</c>, shown this once.</summary>
public sealed record ApiKeyCreatedResponse(
    [property: JsonPropertyOrder(-2)] string Id, string ProjectId, string Name, string Key, string Hint, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "api_key";
}
