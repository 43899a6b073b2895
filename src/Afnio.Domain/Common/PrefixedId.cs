using System.Diagnostics.CodeAnalysis;

namespace Afnio.Domain.Common;

/// <summary>
/// Public ids are a type prefix and a time-ordered UUID (version 7) in 32 hex digits,
/// for example <c>var_0194f1c2a3b47c8d9e0f1a2b3c4d5e6f</c>. The database stores the bare UUID.
/// </summary>
public static class PrefixedId
{
    /// <summary>Prefix of project ids.</summary>
    public const string Project = "proj";

    /// <summary>Prefix of project API key ids.</summary>
    public const string ApiKey = "key";

    /// <summary>Prefix of user ids.</summary>
    public const string User = "user";

    /// <summary>Prefix of user API key ids.</summary>
    public const string UserApiKey = "ukey";

    /// <summary>Prefix of organization ids.</summary>
    public const string Organization = "org";

    /// <summary>Prefix of variable ids.</summary>
    public const string Variable = "var";

    /// <summary>Prefix of graph node ids.</summary>
    public const string Node = "node";

    /// <summary>Prefix of job ids.</summary>
    public const string Job = "job";

    /// <summary>Prefix of job event ids.</summary>
    public const string Event = "evt";

    /// <summary>Prefix of model client ids.</summary>
    public const string Model = "mdl";

    /// <summary>Prefix of optimizer ids.</summary>
    public const string Optimizer = "opt";

    /// <summary>Prefix of dataset ids.</summary>
    public const string Dataset = "ds";

    /// <summary>Prefix of dataset item ids.</summary>
    public const string DatasetItem = "item";

    /// <summary>Prefix of run ids.</summary>
    public const string Run = "run";

    /// <summary>Prefix of run metric ids.</summary>
    public const string Metric = "met";

    /// <summary>Prefix of program ids.</summary>
    public const string Program = "prg";

    /// <summary>Prefix of checkpoint ids.</summary>
    public const string Checkpoint = "ckpt";

    /// <summary>Prefix of schedule ids.</summary>
    public const string Schedule = "sched";

    /// <summary>Prefix of schedule firing ids.</summary>
    public const string ScheduleFiring = "fire";

    /// <summary>Prefix of webhook endpoint ids.</summary>
    public const string WebhookEndpoint = "we";

    /// <summary>Prefix of webhook delivery ids.</summary>
    public const string WebhookDelivery = "whd";

    /// <summary>Prefix of webhook attempt ids.</summary>
    public const string WebhookAttempt = "wha";

    /// <summary>A new time-ordered UUID.</summary>
    public static Guid NewGuid() => Guid.CreateVersion7();

    /// <summary>Formats <paramref name="id"/> with <paramref name="prefix"/>.</summary>
    public static string Format(string prefix, Guid id) => $"{prefix}_{id:N}";

    /// <summary>Formats an optional id.</summary>
    public static string? Format(string prefix, Guid? id) => id is { } value ? Format(prefix, value) : null;

    /// <summary>Parses <c>prefix_hex32</c>; anything else, including another type's prefix, fails.</summary>
    public static bool TryParse(string prefix, [NotNullWhen(true)] string? text, out Guid id)
    {
        id = Guid.Empty;
        if (text is null || text.Length != prefix.Length + 33 || !text.StartsWith(prefix, StringComparison.Ordinal)
            || text[prefix.Length] != '_')
        {
            return false;
        }

        return Guid.TryParseExact(text.AsSpan(prefix.Length + 1), "N", out id);
    }
}
