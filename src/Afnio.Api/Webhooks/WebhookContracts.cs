using System.Text.Json;
using System.Text.Json.Serialization;

namespace Afnio.Api.Webhooks;

/// <summary>Registers a URL to receive the project's events.</summary>
public sealed record CreateWebhookEndpointRequest
{
    /// <summary>An absolute https URL on a public address.</summary>
    public string? Url { get; init; }

    /// <summary>The event types to send (see <c>GET /v1/events</c>); <c>["*"]</c> for all.</summary>
    public List<string>? Events { get; init; }

    public string? Description { get; init; }

    /// <summary>Whether deliveries start at once (default true).</summary>
    public bool? Enabled { get; init; }
}

/// <summary>Changes an endpoint; fields left out stay. Enabling clears a disable by the service.</summary>
public sealed record UpdateWebhookEndpointRequest
{
    public string? Url { get; init; }

    public List<string>? Events { get; init; }

    public string? Description { get; init; }

    public bool? Enabled { get; init; }
}

/// <summary>Replaces an endpoint's secret.</summary>
public sealed record RotateWebhookSecretRequest
{
    /// <summary>How long the previous secret keeps signing too (0 to 604,800 s; default 86,400).</summary>
    public int? ExpirePreviousInSeconds { get; init; }
}

/// <summary>A webhook endpoint. <c>secret</c> appears only in the answer that creates it or rotates it.</summary>
public sealed record WebhookEndpointResponse(
    [property: JsonPropertyOrder(-2)] string Id, string Url, string? Description, IReadOnlyList<string> Events, bool Enabled,
    string? DisabledReason, long? DisabledAt, long? FailingSince, long? PreviousSecretExpiresAt, long CreatedAt, long UpdatedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Secret = null)
{
    [JsonPropertyOrder(-1)]
    public string Object => "webhook_endpoint";
}

/// <summary>One HTTP attempt of a delivery.</summary>
public sealed record WebhookAttemptResponse(
    string Id, int Number, string Trigger, string Status, string Url, long StartedAt, int? DurationMs, int? ResponseStatus,
    string? ResponseBody, string? Error);

/// <summary>An event on its way to an endpoint, with every attempt so far.</summary>
public sealed record WebhookDeliveryResponse(
    [property: JsonPropertyOrder(-2)] string Id, string EventId, string EventType, string EndpointId, string Status, int AttemptCount,
    long? NextAttemptAt, int? LastStatusCode, string? LastError, long CreatedAt, long? SucceededAt, IReadOnlyList<WebhookAttemptResponse> Attempts)
{
    [JsonPropertyOrder(-1)]
    public string Object => "webhook_delivery";
}

/// <summary>A project event, exactly as webhooks deliver it: thin, with the affected object's id in <c>data.id</c>.</summary>
public sealed record EventResponse([property: JsonPropertyOrder(-2)] string Id, string Type, long CreatedAt, JsonElement Data)
{
    [JsonPropertyOrder(-1)]
    public string Object => "event";
}
