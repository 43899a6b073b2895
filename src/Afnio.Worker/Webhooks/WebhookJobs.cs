using Afnio.Data;
using Afnio.Data.Events;
using Afnio.Data.Jobs;
using Afnio.Data.Webhooks;
using Afnio.Domain.Common;
using Afnio.Worker.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Afnio.Worker.Webhooks;

/// <summary>
/// One delivery attempt per job: claim the delivery (a lease, so a duplicate Hangfire delivery is a
/// no-op), log the attempt as <c>sending</c>, sign and send, then record the outcome, the next
/// attempt's time and the endpoint's health in one transaction. The <c>webhook-id</c> is the event
/// id, the same on every attempt, so receivers can drop repeats.
/// </summary>
public sealed partial class WebhookJobs(
    IDbContextFactory<AfnioDbContext> contexts, WebhookSender sender, WebhookSecrets secrets, TimeProvider clock,
    IOptions<WebhookOptions> options, ILogger<WebhookJobs> log) : IWebhookJobs
{
    /// <summary>Time kept after the attempt's timeout before another worker may take the delivery over.</summary>
    private static readonly TimeSpan LeaseMargin = TimeSpan.FromSeconds(5);

    /// <inheritdoc />
    public async Task DeliverAsync(Guid deliveryId, CancellationToken cancellationToken)
    {
        var owner = JobRecorder.NewLeaseOwner();
        var attempt = await ClaimAsync(deliveryId, owner, cancellationToken);
        if (attempt is null)
        {
            return;
        }

        WebhookResponse response;
        try
        {
            response = attempt.Refusal is { } refusal
                ? new WebhookResponse(null, null, refusal, 0, null)
                : await sender.SendAsync(attempt.Url, attempt.MessageId, attempt.StartedAt, attempt.Signature(), attempt.Payload, attempt.Timeout, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await InterruptAsync(attempt, owner);
            throw;
        }
        catch (Exception e)
        {
            // Every claimed attempt gets an outcome, so the delivery moves on along its schedule.
            LogAttemptFailed(log, deliveryId, e);
            response = new WebhookResponse(null, null, $"The attempt failed: {e.Message}", 0, null);
        }

        await RecordAsync(attempt, owner, response);
    }

    private async Task<Attempt?> ClaimAsync(Guid deliveryId, string owner, CancellationToken ct)
    {
        var settings = options.Value;
        var now = clock.GetUtcNow();
        await using var db = await contexts.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // A claim lost in a database crash is made again by the next dispatch.
        await JobScheduling.AsynchronousCommitAsync(db, ct);
        var leaseUntil = now + TimeSpan.FromSeconds(Math.Max(1, settings.TimeoutSeconds)) + LeaseMargin;
        var claimed = await db.WebhookDeliveries
            .Where(d => d.Id == deliveryId && d.Status == WebhookDelivery.Pending && d.NextAttemptAt <= now
                && (d.LeaseExpiresAt == null || d.LeaseExpiresAt < now))
            .ExecuteUpdateAsync(s => s
                .SetProperty(d => d.LeaseOwner, owner)
                .SetProperty(d => d.LeaseExpiresAt, leaseUntil)
                .SetProperty(d => d.AttemptCount, d => d.AttemptCount + 1)
                .SetProperty(d => d.DispatchedAt, now)
                .SetProperty(d => d.UpdatedAt, now), ct);
        if (claimed == 0)
        {
            return null;
        }

        var delivery = await db.WebhookDeliveries.AsNoTracking().SingleAsync(d => d.Id == deliveryId, ct);
        var endpoint = await db.WebhookEndpoints.AsNoTracking().SingleAsync(e => e.Id == delivery.EndpointId, ct);
        var payload = await db.Events.Where(e => e.Id == delivery.EventId).Select(e => e.Payload).SingleAsync(ct);

        // An attempt still "sending" belongs to a worker that stopped mid-request.
        await db.WebhookAttempts.Where(a => a.DeliveryId == deliveryId && a.Status == WebhookAttempt.Sending)
            .ExecuteUpdateAsync(s => s.SetProperty(a => a.Status, WebhookAttempt.Interrupted)
                .SetProperty(a => a.Error, "The worker stopped before the attempt finished; the receiver may have received it."), ct);
        var row = new WebhookAttempt
        {
            Id = PrefixedId.NewGuid(),
            DeliveryId = deliveryId,
            ProjectId = delivery.ProjectId,
            Number = delivery.AttemptCount,
            Trigger = delivery.NextTrigger,
            Status = WebhookAttempt.Sending,
            Url = endpoint.Url,
            StartedAt = now,
        };
        db.WebhookAttempts.Add(row);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);

        var messageId = PrefixedId.Format(PrefixedId.Event, delivery.EventId);
        // An endpoint that keeps failing gets less of a delivery slot per attempt; the lease above
        // keeps the full timeout, which is only an upper bound.
        var timeout = TimeSpan.FromSeconds(Math.Max(1, endpoint.ConsecutiveFailures >= Math.Max(1, settings.FailingAfterAttempts)
            ? Math.Min(settings.FailingTimeoutSeconds, settings.TimeoutSeconds)
            : settings.TimeoutSeconds));
        if (!endpoint.Enabled)
        {
            return new Attempt(delivery, row.Id, endpoint, messageId, payload, now, timeout, () => string.Empty, "The endpoint is disabled; retry the delivery after enabling it.");
        }

        string Sign()
        {
            var keys = new List<string> { secrets.Unprotect(endpoint.Secret) };
            if (endpoint.PreviousSecret is { } previous && endpoint.PreviousSecretExpiresAt > now)
            {
                keys.Add(secrets.Unprotect(previous));
            }

            return WebhookSecrets.Sign(keys, messageId, now, payload);
        }

        return new Attempt(delivery, row.Id, endpoint, messageId, payload, now, timeout, Sign, null);
    }

    private async Task RecordAsync(Attempt attempt, string owner, WebhookResponse response)
    {
        var settings = options.Value;
        var now = clock.GetUtcNow();
        var delivery = attempt.Delivery;
        var endpoint = attempt.Endpoint;
        string status;
        DateTimeOffset? next = null;
        string? disable = null;
        if (response.Succeeded)
        {
            status = WebhookDelivery.Succeeded;
        }
        else
        {
            var schedule = settings.RetrySchedule;
            var failedSoFar = delivery.AttemptCount;
            if (response.Status == 410)
            {
                disable = "gone";
            }
            else if (attempt.Refusal is null && (now - (endpoint.FailingSince ?? attempt.StartedAt)).TotalSeconds >= settings.DisableAfterFailingSeconds)
            {
                disable = "failing";
            }

            if (disable is null && attempt.Refusal is null && failedSoFar <= schedule.Count)
            {
                status = WebhookDelivery.Pending;
                var wait = TimeSpan.FromSeconds(schedule[failedSoFar - 1]);
                wait += TimeSpan.FromTicks((long)(wait.Ticks * 0.1 * Random.Shared.NextDouble()));
                if (response.RetryAfter is { } retryAfter && retryAfter > wait)
                {
                    wait = retryAfter < TimeSpan.FromDays(1) ? retryAfter : TimeSpan.FromDays(1);
                }

                next = now + wait;
            }
            else
            {
                status = WebhookDelivery.Failed;
            }
        }

        await using var db = await contexts.CreateDbContextAsync(CancellationToken.None);
        await using var tx = await db.Database.BeginTransactionAsync(CancellationToken.None);
        var recorded = await db.WebhookDeliveries.Where(d => d.Id == delivery.Id && d.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(d => d.Status, status)
                .SetProperty(d => d.NextAttemptAt, next)
                .SetProperty(d => d.NextTrigger, WebhookAttempt.Scheduled)
                .SetProperty(d => d.DispatchedAt, (DateTimeOffset?)null)
                .SetProperty(d => d.LeaseOwner, (string?)null)
                .SetProperty(d => d.LeaseExpiresAt, (DateTimeOffset?)null)
                .SetProperty(d => d.LastStatusCode, response.Status)
                .SetProperty(d => d.LastError, response.Error)
                .SetProperty(d => d.SucceededAt, d => response.Succeeded ? now : d.SucceededAt)
                .SetProperty(d => d.UpdatedAt, now), CancellationToken.None);
        if (recorded == 0)
        {
            // The lease ran out and another worker took the delivery over: its attempt is the one that counts.
            LogLeaseLost(log, delivery.Id);
            return;
        }

        await db.WebhookAttempts.Where(a => a.Id == attempt.AttemptId).ExecuteUpdateAsync(s => s
            .SetProperty(a => a.Status, response.Succeeded ? WebhookAttempt.Succeeded : WebhookAttempt.Failed)
            .SetProperty(a => a.DurationMs, response.DurationMs)
            .SetProperty(a => a.ResponseStatus, response.Status)
            .SetProperty(a => a.ResponseBody, response.Body)
            .SetProperty(a => a.Error, response.Error), CancellationToken.None);
        if (attempt.Refusal is null)
        {
            await UpdateHealthAsync(db, endpoint, response.Succeeded, attempt.StartedAt, disable, now);
        }

        // The attempt's slot on its project and endpoint is free at commit: wake the dispatchers.
        await EventOutbox.NotifyAsync(db, CancellationToken.None);
        await tx.CommitAsync(CancellationToken.None);
        if (status == WebhookDelivery.Failed)
        {
            LogGaveUp(log, delivery.Id, endpoint.Id, response.Error ?? "failed");
        }
    }

    // A success ends the endpoint's failing streak; a failure starts or extends one or, past the window or on 410, disables it.
    private static async Task UpdateHealthAsync(
        AfnioDbContext db, WebhookEndpoint endpoint, bool succeeded, DateTimeOffset startedAt, string? disable, DateTimeOffset now)
    {
        if (succeeded)
        {
            await db.WebhookEndpoints.Where(e => e.Id == endpoint.Id && (e.FailingSince != null || e.ConsecutiveFailures != 0))
                .ExecuteUpdateAsync(s => s
                    .SetProperty(e => e.FailingSince, (DateTimeOffset?)null)
                    .SetProperty(e => e.ConsecutiveFailures, 0), CancellationToken.None);
            return;
        }

        await db.WebhookEndpoints.Where(e => e.Id == endpoint.Id)
            .ExecuteUpdateAsync(s => s
                .SetProperty(e => e.FailingSince, e => e.FailingSince ?? startedAt)
                .SetProperty(e => e.ConsecutiveFailures, e => e.ConsecutiveFailures + 1), CancellationToken.None);
        if (disable is null)
        {
            return;
        }

        var disabled = await db.WebhookEndpoints.Where(e => e.Id == endpoint.Id && e.Enabled)
            .ExecuteUpdateAsync(s => s
                .SetProperty(e => e.Enabled, false)
                .SetProperty(e => e.DisabledReason, disable)
                .SetProperty(e => e.DisabledAt, now)
                .SetProperty(e => e.UpdatedAt, now), CancellationToken.None);
        if (disabled == 1)
        {
            await db.PublishAsync(endpoint.ProjectId, EventTypes.WebhookEndpointDisabled, new
            {
                id = PrefixedId.Format(PrefixedId.WebhookEndpoint, endpoint.Id),
                reason = disable,
            }, now, CancellationToken.None);
        }
    }

    // On shutdown mid-request: log the attempt as interrupted and hand the delivery back at once.
    private async Task InterruptAsync(Attempt attempt, string owner)
    {
        var now = clock.GetUtcNow();
        await using var db = await contexts.CreateDbContextAsync(CancellationToken.None);
        await using var tx = await db.Database.BeginTransactionAsync(CancellationToken.None);
        var released = await db.WebhookDeliveries.Where(d => d.Id == attempt.Delivery.Id && d.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(d => d.LeaseOwner, (string?)null)
                .SetProperty(d => d.LeaseExpiresAt, (DateTimeOffset?)null)
                .SetProperty(d => d.DispatchedAt, (DateTimeOffset?)null)
                .SetProperty(d => d.UpdatedAt, now), CancellationToken.None);
        if (released == 1)
        {
            await db.WebhookAttempts.Where(a => a.Id == attempt.AttemptId).ExecuteUpdateAsync(s => s
                .SetProperty(a => a.Status, WebhookAttempt.Interrupted)
                .SetProperty(a => a.Error, "The worker stopped during the attempt; the receiver may have received it."), CancellationToken.None);
            await EventOutbox.NotifyAsync(db, CancellationToken.None);
        }

        await tx.CommitAsync(CancellationToken.None);
    }

    private sealed record Attempt(
        WebhookDelivery Delivery, Guid AttemptId, WebhookEndpoint Endpoint, string MessageId, string Payload, DateTimeOffset StartedAt,
        TimeSpan Timeout, Func<string> Signature, string? Refusal)
    {
        public string Url => Endpoint.Url;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} was taken over by another worker before its attempt was recorded")]
    private static partial void LogLeaseLost(ILogger logger, Guid deliveryId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId}: the attempt failed before an answer")]
    private static partial void LogAttemptFailed(ILogger logger, Guid deliveryId, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} to endpoint {EndpointId} failed for good: {Error}")]
    private static partial void LogGaveUp(ILogger logger, Guid deliveryId, Guid endpointId, string error);
}
