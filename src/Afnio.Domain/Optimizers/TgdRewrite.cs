using System.Text.Json.Nodes;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Optimizers;

/// <summary>How the rewrite of one parameter ended.</summary>
/// <param name="NewValue">The extracted new value; null when the parameter keeps its value.</param>
/// <param name="Attempts">Calls made (replayed ones included).</param>
/// <param name="Reason">Why the parameter kept its value, when it did.</param>
public sealed record TgdOutcome(string? NewValue, int Attempts, string? Reason);

/// <summary>
/// Asks the optimizer model for a parameter's new value. A reply without a usable value between the
/// tags is asked again (each attempt under its own step key, so a resumed step replays the same
/// attempts from the journal); after <see cref="MaxAttempts"/> the parameter keeps its value. So it
/// does when the call itself fails for good (the models retry transient faults first).
/// </summary>
public static class TgdRewrite
{
    /// <summary>Calls per parameter before giving up on a reply without the tags.</summary>
    public const int MaxAttempts = 3;

    /// <summary>Runs the calls for one parameter.</summary>
    /// <param name="models">The models of the job.</param>
    /// <param name="modelId">The optimizer's model client.</param>
    /// <param name="completionArgs">The group's completion args (copied per call).</param>
    /// <param name="messages">The conversation (see <see cref="TgdConversation"/>).</param>
    /// <param name="stepKey">Names the parameter inside its job.</param>
    /// <param name="cancellationToken">Stops the calls.</param>
    public static async Task<TgdOutcome> RunAsync(
        ILanguageModels models, Guid modelId, JsonObject? completionArgs, IReadOnlyList<ChatMessage> messages, string stepKey,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(models);
        string? last = null;
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            ChatReply reply;
            try
            {
                reply = await models.ChatAsync(
                    new ChatRequest(modelId, messages, completionArgs?.DeepClone().AsObject(), $"{stepKey}/attempt/{attempt}"), cancellationToken);
            }
            catch (Common.AfnioException e)
            {
                // The models already retried what is worth retrying; this parameter keeps its value, the others go on.
                return new TgdOutcome(null, attempt, $"The optimizer model call failed ({e.Code}): {e.Message} The parameter keeps its value.");
            }

            if (TgdPrompts.ExtractImprovedValue(reply.Content) is { } value && IsStorable(value))
            {
                return new TgdOutcome(value, attempt, null);
            }

            last = reply.Content;
        }

        return new TgdOutcome(null, MaxAttempts,
            $"The optimizer model did not return the new value between {TgdPrompts.OpenTag} and {TgdPrompts.CloseTag} " +
            $"in {MaxAttempts} replies; the parameter keeps its value. Last reply: {Shorten(last ?? string.Empty)}");
    }

    // The reason is stored as JSON: no NUL, and no half of a surrogate pair at the cut.
    private static string Shorten(string text)
    {
        var cut = text.Length <= 500 ? text : string.Concat(text.AsSpan(0, char.IsHighSurrogate(text[499]) ? 499 : 500), "…");
        return IsStorable(cut) ? cut : "(not storable text)";
    }

    /// <summary>Text PostgreSQL can store as a variable's value: no NUL, no lone surrogate.</summary>
    private static bool IsStorable(string text)
    {
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            return false;
        }

        try
        {
            _ = Strict.GetByteCount(text);
            return true;
        }
        catch (System.Text.EncoderFallbackException)
        {
            return false;
        }
    }

    private static readonly System.Text.UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
