using System.Globalization;
using System.Text.Json;

namespace Afnio.Api.Sdk;

/// <summary>What <c>GET /api/v0/verify-api-key/</c> tells the afnio client about the key's user.</summary>
public sealed record SdkUserResponse(string Uuid, string Username, string Slug, string Email, string Message);

/// <summary>afnio's project: every key present, as the client indexes them directly after a create.</summary>
public sealed record SdkProjectResponse(
    string Uuid, string Id, string DisplayName, string Slug, string DateCreated, string? LastRunDate, string Visibility, string? Role,
    string? OrgUuid, string? OrgDisplayName, string? OrgSlug);

/// <summary><c>POST /api/v0/{namespace}/projects/</c>.</summary>
public sealed record SdkCreateProjectRequest
{
    public string? DisplayName { get; init; }

    public string? Visibility { get; init; }
}

public sealed record SdkRunProject(string Uuid, string DisplayName, string Slug);

public sealed record SdkRunUser(string Uuid, string Username, string Slug);

/// <summary>afnio's run, with the service's own id beside the uuid.</summary>
public sealed record SdkRunResponse(
    string Uuid, string Id, string Name, string? Description, string Status, string DateCreated, string DateUpdated,
    SdkRunProject Project, SdkRunUser? User);

/// <summary><c>POST …/runs/</c>: any of name, description and status.</summary>
public sealed record SdkCreateRunRequest
{
    public string? Name { get; init; }

    public string? Description { get; init; }

    public string? Status { get; init; }
}

/// <summary><c>PATCH …/runs/{uuid}/</c>.</summary>
public sealed record SdkUpdateRunRequest
{
    public string? Status { get; init; }

    public string? Description { get; init; }
}

/// <summary><c>POST …/metrics/</c>: a value Python's <c>float()</c> accepts, and an optional step.</summary>
public sealed record SdkLogMetricRequest
{
    public string? Name { get; init; }

    public JsonElement Value { get; init; }

    public long? Step { get; init; }
}

public sealed record SdkMetricResponse(string Id, string Name, double Value, long Step, string DateCreated);

/// <summary>What the run page link the client prints answers, until Studio serves a page there.</summary>
public sealed record SdkRunPageResponse(string Object, SdkRunResponse Run, IReadOnlyList<SdkMetricResponse> Metrics, IReadOnlyDictionary<string, string> Links);

internal static class SdkDates
{
    /// <summary>ISO 8601 in UTC with six fractional digits: a width Python 3.9's <c>fromisoformat</c> reads.</summary>
    public static string Format(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
}
