using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using StandardWebhooks;

namespace Afnio.Data.Webhooks;

/// <summary>
/// Endpoint secrets: 32 random bytes shown once as <c>whsec_</c> + base64, stored encrypted with Data
/// Protection (the key ring the API and the Worker share), used to sign per Standard Webhooks.
/// </summary>
public sealed class WebhookSecrets(IDataProtectionProvider provider)
{
    public const string Prefix = "whsec_";

    private readonly IDataProtector _protector = provider.CreateProtector("Afnio.Webhooks.Secret.v1");

    /// <summary>A new secret in the form users see.</summary>
    public static string NewSecret() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    public string Protect(string secret) => _protector.Protect(secret);

    public string Unprotect(string protectedSecret) => _protector.Unprotect(protectedSecret);

    /// <summary>
    /// The <c>webhook-signature</c> header value: one <c>v1,&lt;base64 HMAC-SHA256&gt;</c> per secret,
    /// space-separated, over <c>id.timestamp.payload</c>.
    /// </summary>
    public static string Sign(IEnumerable<string> secrets, string messageId, DateTimeOffset timestamp, string payload) =>
        string.Join(' ', secrets.Select(secret => new StandardWebhook(secret).Sign(messageId, timestamp, payload)));
}
