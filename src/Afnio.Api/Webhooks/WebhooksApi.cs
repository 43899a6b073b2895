using System.Text.Json;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Runs;
using Afnio.Data;
using Afnio.Data.Events;
using Afnio.Data.Webhooks;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Webhooks;

/// <summary>
/// Webhook endpoints, their delivery log, and the project's events. Events are written in the
/// transaction of the change they report; the Worker delivers them signed per Standard Webhooks.
/// </summary>
public static class WebhooksApi
{
    /// <summary>Endpoints one project may have.</summary>
    public const int MaxEndpoints = 50;

    private const int MaxPreviousSecondsLimit = 7 * 24 * 3600;

    public static RouteGroupBuilder MapWebhooks(this RouteGroupBuilder v1)
    {
        var endpoints = v1.MapGroup("/webhook_endpoints").WithTags("Webhooks");
        endpoints.MapPost("/", CreateEndpoint).WithName("createWebhookEndpoint")
            .WithDescription("Registers an https URL for the listed event types. The answer holds the signing secret (whsec_…), shown only this once.");
        endpoints.MapGet("/", ListEndpoints).WithName("listWebhookEndpoints");
        endpoints.MapGet("/{id}", GetEndpoint).WithName("retrieveWebhookEndpoint");
        endpoints.MapPatch("/{id}", UpdateEndpoint).WithName("updateWebhookEndpoint")
            .WithDescription("Changes the URL, events, description or enabled flag. Enabling an endpoint the service disabled starts it afresh.");
        endpoints.MapDelete("/{id}", DeleteEndpoint).WithName("deleteWebhookEndpoint");
        endpoints.MapPost("/{id}/rotate_secret", RotateSecret).WithName("rotateWebhookSecret")
            .WithDescription("Replaces the signing secret (shown once). Until the previous one expires, requests carry a signature for each.");
        endpoints.MapGet("/{id}/deliveries", ListDeliveries).WithName("listWebhookDeliveries")
            .WithDescription("The endpoint's deliveries, newest first, each with its attempts: status, latency and the start of the response.");
        var deliveries = v1.MapGroup("/webhook_deliveries").WithTags("Webhooks");
        deliveries.MapGet("/{id}", GetDelivery).WithName("retrieveWebhookDelivery");
        deliveries.MapPost("/{id}/retry", RetryDelivery).WithName("retryWebhookDelivery").ProducesProblem(StatusCodes.Status409Conflict)
            .WithDescription("Sends the event to the endpoint again now (a manual attempt), whatever the delivery's status.");
        var events = v1.MapGroup("/events").WithTags("Webhooks");
        events.MapGet("/", ListEvents).WithName("listEvents")
            .WithDescription("The project's events, newest first; filter with ?type=.");
        events.MapGet("/{id}", GetEvent).WithName("retrieveEvent");
        return v1;
    }

    public static async Task<Created<WebhookEndpointResponse>> CreateEndpoint(
        CreateWebhookEndpointRequest request, AfnioDbContext db, ProjectContext project, WebhookSecrets secrets,
        IOptions<WebhookOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var url = await WebhookUrls.CheckAsync(request.Url, options.Value, "url", ct);
        var events = EventList(request.Events ?? throw ApiException.BadRequest("missing_field",
            "'events' is required: the event types to send, or [\"*\"] for all.", "events"));
        var description = request.Description is null ? null : RunsApi.Text(request.Description, 2000, "description");
        if (await db.WebhookEndpoints.CountAsync(e => e.ProjectId == project.ProjectId, ct) >= MaxEndpoints)
        {
            throw ApiException.BadRequest("too_many_webhook_endpoints", $"A project may have at most {MaxEndpoints} webhook endpoints.");
        }

        var secret = WebhookSecrets.NewSecret();
        var now = clock.GetUtcNow();
        var endpoint = new WebhookEndpoint
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = project.ProjectId,
            Url = url,
            Description = description,
            EventTypes = events,
            Enabled = request.Enabled ?? true,
            Secret = secrets.Protect(secret),
            CreatedAt = now,
            UpdatedAt = now,
        };
        db.WebhookEndpoints.Add(endpoint);
        await db.SaveChangesAsync(ct);
        var response = ToResponse(endpoint) with { Secret = secret };
        return TypedResults.Created($"/v1/webhook_endpoints/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<WebhookEndpointResponse>>> ListEndpoints(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var (rows, limit) = await db.WebhookEndpoints.AsNoTracking().Where(e => e.ProjectId == project.ProjectId)
            .FetchPageAsync(PrefixedId.WebhookEndpoint, page, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(ToResponse)], limit, e => e.Id));
    }

    public static async Task<Ok<WebhookEndpointResponse>> GetEndpoint(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct) =>
        TypedResults.Ok(ToResponse(await FindAsync(db, project, id, ct)));

    public static async Task<Ok<WebhookEndpointResponse>> UpdateEndpoint(
        string id, UpdateWebhookEndpointRequest request, AfnioDbContext db, ProjectContext project, IOptions<WebhookOptions> options,
        TimeProvider clock, CancellationToken ct)
    {
        var endpoint = await FindAsync(db, project, id, ct, tracked: true);
        if (request.Url is not null)
        {
            endpoint.Url = await WebhookUrls.CheckAsync(request.Url, options.Value, "url", ct);
        }

        if (request.Events is not null)
        {
            endpoint.EventTypes = EventList(request.Events);
        }

        if (request.Description is not null)
        {
            endpoint.Description = RunsApi.Text(request.Description, 2000, "description");
        }

        if (request.Enabled is { } enabled && enabled != endpoint.Enabled)
        {
            endpoint.Enabled = enabled;
            endpoint.DisabledReason = null;
            endpoint.DisabledAt = enabled ? null : clock.GetUtcNow();
            endpoint.FailingSince = null;
            endpoint.ConsecutiveFailures = 0;
        }

        endpoint.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(ToResponse(endpoint));
    }

    public static async Task<NoContent> DeleteEndpoint(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var endpoint = await FindAsync(db, project, id, ct);
        await db.WebhookEndpoints.Where(e => e.Id == endpoint.Id).ExecuteDeleteAsync(ct);
        return TypedResults.NoContent();
    }

    public static async Task<Ok<WebhookEndpointResponse>> RotateSecret(
        string id, RotateWebhookSecretRequest? request, AfnioDbContext db, ProjectContext project, WebhookSecrets secrets,
        IOptions<WebhookOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var overlap = request?.ExpirePreviousInSeconds ?? options.Value.PreviousSecretSeconds;
        if (overlap is < 0 or > MaxPreviousSecondsLimit)
        {
            throw ApiException.BadRequest("invalid_expire_previous_in_seconds",
                $"'expire_previous_in_seconds' must be between 0 and {MaxPreviousSecondsLimit}.", "expire_previous_in_seconds");
        }

        var endpoint = await FindAsync(db, project, id, ct, tracked: true);
        var now = clock.GetUtcNow();
        var secret = WebhookSecrets.NewSecret();
        endpoint.PreviousSecret = overlap > 0 ? endpoint.Secret : null;
        endpoint.PreviousSecretExpiresAt = overlap > 0 ? now.AddSeconds(overlap) : null;
        endpoint.Secret = secrets.Protect(secret);
        endpoint.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(ToResponse(endpoint) with { Secret = secret });
    }

    public static async Task<Ok<ListResponse<WebhookDeliveryResponse>>> ListDeliveries(
        string id, [AsParameters] PageQuery page, [FromQuery(Name = "status")] string? status, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var endpoint = await FindAsync(db, project, id, ct);
        var query = db.WebhookDeliveries.AsNoTracking().Where(d => d.EndpointId == endpoint.Id);
        if (status is not null)
        {
            query = status is WebhookDelivery.Pending or WebhookDelivery.Succeeded or WebhookDelivery.Failed
                ? query.Where(d => d.Status == status)
                : throw ApiException.BadRequest("invalid_status", "'status' must be pending, succeeded or failed.", "status");
        }

        var (rows, limit) = await query.FetchPageAsync(PrefixedId.WebhookDelivery, page, ct);
        return TypedResults.Ok(Paging.ToList(await ToResponsesAsync(db, rows, ct), limit, d => d.Id));
    }

    public static async Task<Ok<WebhookDeliveryResponse>> GetDelivery(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct) =>
        TypedResults.Ok((await ToResponsesAsync(db, [await FindDeliveryAsync(db, project, id, ct)], ct))[0]);

    public static async Task<Accepted<WebhookDeliveryResponse>> RetryDelivery(
        string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var delivery = await FindDeliveryAsync(db, project, id, ct);
        if (!await db.WebhookEndpoints.AnyAsync(e => e.Id == delivery.EndpointId && e.Enabled, ct))
        {
            throw ApiException.Conflict("webhook_endpoint_disabled", "The endpoint is disabled; enable it before retrying its deliveries.", "id");
        }

        var now = clock.GetUtcNow();
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var changed = await db.WebhookDeliveries
            .Where(d => d.Id == delivery.Id && (d.LeaseExpiresAt == null || d.LeaseExpiresAt < now))
            .ExecuteUpdateAsync(s => s
                .SetProperty(d => d.Status, WebhookDelivery.Pending)
                .SetProperty(d => d.NextAttemptAt, now)
                .SetProperty(d => d.NextTrigger, WebhookAttempt.Manual)
                .SetProperty(d => d.DispatchedAt, (DateTimeOffset?)null)
                .SetProperty(d => d.UpdatedAt, now), ct);
        if (changed == 0)
        {
            throw ApiException.Conflict("webhook_delivery_in_progress", "An attempt of this delivery is in flight; retry when it has finished.", "id");
        }

        await EventOutbox.NotifyAsync(db, ct);
        await tx.CommitAsync(ct);
        var response = (await ToResponsesAsync(db, [await FindDeliveryAsync(db, project, id, ct)], ct))[0];
        return TypedResults.Accepted($"/v1/webhook_deliveries/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<EventResponse>>> ListEvents(
        [AsParameters] PageQuery page, [FromQuery(Name = "type")] string? type, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var query = db.Events.AsNoTracking().Where(e => e.ProjectId == project.ProjectId);
        if (type is not null)
        {
            query = EventTypes.All.Contains(type)
                ? query.Where(e => e.Type == type)
                : throw ApiException.BadRequest("invalid_event_type", $"Unknown event type '{type}'. Known types: {string.Join(", ", EventTypes.All)}.", "type");
        }

        var (rows, limit) = await query.FetchPageAsync(PrefixedId.Event, page, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(ToResponse)], limit, e => e.Id));
    }

    public static async Task<Ok<EventResponse>> GetEvent(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct) =>
        PrefixedId.TryParse(PrefixedId.Event, id, out var guid)
            && await db.Events.AsNoTracking().SingleOrDefaultAsync(e => e.Id == guid && e.ProjectId == project.ProjectId, ct) is { } row
            ? TypedResults.Ok(ToResponse(row))
            : throw ApiException.NotFound("event", "id");

    private static string[] EventList(List<string> events)
    {
        if (events.Count == 0)
        {
            throw ApiException.BadRequest("invalid_events", "'events' must list at least one event type, or [\"*\"] for all.", "events");
        }

        for (var i = 0; i < events.Count; i++)
        {
            if (events[i] != EventTypes.Any && !EventTypes.All.Contains(events[i]))
            {
                throw ApiException.BadRequest("invalid_event_type",
                    $"Unknown event type '{events[i]}'. Known types: {string.Join(", ", EventTypes.All)}, or * for all.", $"events[{i}]");
            }
        }

        return [.. events.Distinct(StringComparer.Ordinal)];
    }

    private static async Task<WebhookEndpoint> FindAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct, bool tracked = false)
    {
        if (!PrefixedId.TryParse(PrefixedId.WebhookEndpoint, id, out var guid))
        {
            throw ApiException.NotFound("webhook_endpoint", "id");
        }

        var query = tracked ? db.WebhookEndpoints : db.WebhookEndpoints.AsNoTracking();
        return await query.SingleOrDefaultAsync(e => e.Id == guid && e.ProjectId == project.ProjectId, ct)
            ?? throw ApiException.NotFound("webhook_endpoint", "id");
    }

    private static async Task<WebhookDelivery> FindDeliveryAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct) =>
        PrefixedId.TryParse(PrefixedId.WebhookDelivery, id, out var guid)
            ? await db.WebhookDeliveries.AsNoTracking().SingleOrDefaultAsync(d => d.Id == guid && d.ProjectId == project.ProjectId, ct)
                ?? throw ApiException.NotFound("webhook_delivery", "id")
            : throw ApiException.NotFound("webhook_delivery", "id");

    private static WebhookEndpointResponse ToResponse(WebhookEndpoint e) => new(
        PrefixedId.Format(PrefixedId.WebhookEndpoint, e.Id), e.Url, e.Description, e.EventTypes, e.Enabled, e.DisabledReason,
        UnixTime.Of(e.DisabledAt), UnixTime.Of(e.FailingSince), e.PreviousSecret is null ? null : UnixTime.Of(e.PreviousSecretExpiresAt),
        UnixTime.Of(e.CreatedAt), UnixTime.Of(e.UpdatedAt));

    private static EventResponse ToResponse(OutboxEvent e)
    {
        using var payload = JsonDocument.Parse(e.Payload);
        return new(PrefixedId.Format(PrefixedId.Event, e.Id), e.Type, UnixTime.Of(e.CreatedAt), payload.RootElement.GetProperty("data").Clone());
    }

    private static async Task<List<WebhookDeliveryResponse>> ToResponsesAsync(AfnioDbContext db, IReadOnlyList<WebhookDelivery> rows, CancellationToken ct)
    {
        var ids = rows.Select(d => d.Id).ToList();
        var eventIds = rows.Select(d => d.EventId).Distinct().ToList();
        var attempts = (await db.WebhookAttempts.AsNoTracking().Where(a => ids.Contains(a.DeliveryId)).OrderBy(a => a.Number).ThenBy(a => a.Id).ToListAsync(ct))
            .ToLookup(a => a.DeliveryId);
        var types = await db.Events.AsNoTracking().Where(e => eventIds.Contains(e.Id)).ToDictionaryAsync(e => e.Id, e => e.Type, ct);
        return [.. rows.Select(d => new WebhookDeliveryResponse(
            PrefixedId.Format(PrefixedId.WebhookDelivery, d.Id), PrefixedId.Format(PrefixedId.Event, d.EventId), types.GetValueOrDefault(d.EventId) ?? string.Empty,
            PrefixedId.Format(PrefixedId.WebhookEndpoint, d.EndpointId), d.Status, d.AttemptCount, UnixTime.Of(d.NextAttemptAt), d.LastStatusCode, d.LastError,
            UnixTime.Of(d.CreatedAt), UnixTime.Of(d.SucceededAt),
            [.. attempts[d.Id].Select(a => new WebhookAttemptResponse(
                PrefixedId.Format(PrefixedId.WebhookAttempt, a.Id), a.Number, a.Trigger, a.Status, a.Url, UnixTime.Of(a.StartedAt), a.DurationMs,
                a.ResponseStatus, a.ResponseBody, a.Error))]))];
    }
}
