namespace Afnio.Data.Webhooks;

/// <summary>
/// Webhook delivery. Hangfire persists calls to this interface by method name and argument values:
/// renaming a method or changing its parameters breaks jobs already in the queue.
/// </summary>
public interface IWebhookJobs
{
    /// <summary>The Hangfire queue of delivery attempts, apart from the model work so slow receivers cannot starve it.</summary>
    const string Queue = "c_webhooks";

    /// <summary>Makes the next attempt of delivery <paramref name="deliveryId"/> if it is due; a no-op otherwise.</summary>
    Task DeliverAsync(Guid deliveryId, CancellationToken cancellationToken);
}
