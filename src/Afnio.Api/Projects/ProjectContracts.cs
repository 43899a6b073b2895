using System.Text.Json.Serialization;

namespace Afnio.Api.Projects;

/// <summary>Creates a project.</summary>
/// <param name="Name">A name for people; not unique unless the project is in a namespace.</param>
/// <param name="Namespace">A user's or organization's namespace slug to put the project in; its slug is then python-slugify of the name, unique in the namespace.</param>
public sealed record CreateProjectRequest(string Name, string? Namespace = null);

/// <summary>A project.</summary>
/// <param name="Id">The project id.</param>
/// <param name="Name">A name for people.</param>
/// <param name="Namespace">The slug of the user or organization that owns it, or null.</param>
/// <param name="Slug">Its slug in that namespace (what afnio's client computes from the name), or null.</param>
/// <param name="CreatedAt">Unix seconds.</param>
public sealed record ProjectResponse([property: JsonPropertyOrder(-2)] string Id, string Name, string? Namespace, string? Slug, long CreatedAt)
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
