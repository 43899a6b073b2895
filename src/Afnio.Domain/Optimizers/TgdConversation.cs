using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Optimizers;

/// <summary>
/// The conversation of a TGD call for one parameter. Without custom messages it is the built-in
/// system and user prompts. Custom messages replace them: their <c>{name}</c> placeholders are filled
/// from the optimizer's <c>inputs</c> and from the reserved names below. When custom messages use
/// none of the reserved names (a different instruction, in-context examples), the built-in user
/// prompt for the parameter follows them as the last message, so the model still sees the parameter.
/// </summary>
public static class TgdConversation
{
    /// <summary>The parameter's role.</summary>
    public const string VariableRole = "variable_role";

    /// <summary>The parameter's current value.</summary>
    public const string VariableValue = "variable_value";

    /// <summary>Every gradient, each in a <c>&lt;FEEDBACK&gt;</c> element.</summary>
    public const string Feedback = "feedback";

    /// <summary>The momentum window (empty text without history).</summary>
    public const string PastIterations = "past_iterations";

    /// <summary>The constraints (empty text without constraints).</summary>
    public const string Constraints = "constraints";

    /// <summary>Placeholder names filled by the optimizer itself; <c>inputs</c> may not use them.</summary>
    public static IReadOnlyList<string> ReservedNames { get; } = [VariableRole, VariableValue, Feedback, PastIterations, Constraints];

    /// <summary>
    /// The messages sent for <paramref name="request"/>. <paramref name="custom"/> holds the custom
    /// messages with their content already joined (null for the built-in prompts).
    /// </summary>
    /// <exception cref="AfnioException">A custom message has a placeholder that is neither an input nor reserved (<c>missing_input</c>).</exception>
    public static IReadOnlyList<ChatMessage> Build(
        TgdRequest request, IReadOnlyList<ChatMessage>? custom, IReadOnlyDictionary<string, string> inputs)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(inputs);
        if (custom is null)
        {
            return TgdPrompts.Messages(request);
        }

        var values = new Dictionary<string, string>(inputs, StringComparer.Ordinal)
        {
            [VariableRole] = request.Role,
            [VariableValue] = request.Value,
            [Feedback] = TgdPrompts.FeedbackBlock(request),
            [PastIterations] = TgdPrompts.HistoryBlock(request),
            [Constraints] = TgdPrompts.ConstraintsBlock(request),
        };
        var messages = custom.Select(m => new ChatMessage(m.Role, PromptTemplate.Fill(m.Content, values))).ToList();
        if (!UsesReservedNames(custom.Select(m => m.Content)))
        {
            messages.Add(new ChatMessage("user", TgdPrompts.UserPrompt(request)));
        }

        return messages;
    }

    /// <summary>Whether any of <paramref name="texts"/> has a reserved placeholder.</summary>
    public static bool UsesReservedNames(IEnumerable<string> texts) =>
        texts.SelectMany(PromptTemplate.Placeholders).Any(name => ReservedNames.Contains(name, StringComparer.Ordinal));
}
