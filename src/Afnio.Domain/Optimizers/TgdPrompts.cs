using System.Text;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Optimizers;

/// <summary>One past iteration of a parameter kept by TGD momentum: its value before an update and the feedback it had then.</summary>
/// <param name="Value">The parameter's value before that step.</param>
/// <param name="Feedback">The gradient texts it had at that step.</param>
public sealed record PastIteration(string Value, IReadOnlyList<string> Feedback);

/// <summary>What the optimizer model is told about one parameter.</summary>
/// <param name="Role">The parameter's role.</param>
/// <param name="Value">Its full current value.</param>
/// <param name="Feedback">Every gradient text, in gradient-list order.</param>
/// <param name="History">The momentum window, oldest first.</param>
/// <param name="Constraints">Natural-language rules the new value must respect.</param>
public sealed record TgdRequest(
    string Role, string Value, IReadOnlyList<string> Feedback, IReadOnlyList<PastIteration> History, IReadOnlyList<string> Constraints);

/// <summary>
/// The built-in Textual Gradient Descent prompts, in our own words: the optimizer model rewrites a
/// parameter from the feedback it received and must answer with the new value between
/// <see cref="OpenTag"/> and <see cref="CloseTag"/>. That delimiter is a documented contract.
/// </summary>
public static class TgdPrompts
{
    /// <summary>Opens the new value in the optimizer model's reply.</summary>
    public const string OpenTag = "<IMPROVED_VARIABLE>";

    /// <summary>Closes the new value in the optimizer model's reply.</summary>
    public const string CloseTag = "</IMPROVED_VARIABLE>";

    /// <summary>The system prompt of a TGD step.</summary>
    public const string SystemPrompt =
        "You improve one variable of a larger system, such as a prompt, an instruction or a piece of text, using the " +
        "feedback that other parts of the system wrote about it. Read the variable's role, its current value and every " +
        "piece of feedback, then write a new value that addresses the feedback while keeping what already works and " +
        "fitting the role. Respect every constraint you are given. Reply with the complete new value, and nothing else, " +
        "between " + OpenTag + " and " + CloseTag + ".";

    /// <summary>The demand for the new value between the tags, which ends the built-in user prompt.</summary>
    public const string AnswerInstruction =
        "Write the improved variable. Reply with its complete new value between " + OpenTag + " and " + CloseTag +
        ", with nothing else inside the tags.";

    /// <summary>The system and user messages of a TGD step for one parameter.</summary>
    public static IReadOnlyList<ChatMessage> Messages(TgdRequest request) =>
        [new ChatMessage("system", SystemPrompt), new ChatMessage("user", UserPrompt(request))];

    /// <summary>The user prompt: role, current value, feedback, past iterations, constraints and the answer format.</summary>
    public static string UserPrompt(TgdRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var sb = new StringBuilder();
        sb.Append("The variable has this role: <ROLE>").Append(request.Role).Append("</ROLE>\n\n");
        sb.Append("Its current value:\n<VARIABLE>").Append(request.Value).Append("</VARIABLE>\n\n");
        sb.Append("The feedback it received:\n").Append(FeedbackBlock(request));
        if (request.History.Count > 0)
        {
            sb.Append('\n').Append(HistoryBlock(request));
        }

        if (request.Constraints.Count > 0)
        {
            sb.Append('\n').Append(ConstraintsBlock(request));
        }

        sb.Append('\n').Append(AnswerInstruction);
        return sb.ToString();
    }

    /// <summary>Every gradient text, each in a numbered <c>&lt;FEEDBACK&gt;</c> element.</summary>
    public static string FeedbackBlock(TgdRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var sb = new StringBuilder();
        for (var i = 0; i < request.Feedback.Count; i++)
        {
            sb.Append("<FEEDBACK index=\"").Append(i).Append("\">").Append(request.Feedback[i]).Append("</FEEDBACK>\n");
        }

        return sb.ToString();
    }

    /// <summary>The momentum window, oldest first, with an instruction; empty without history.</summary>
    public static string HistoryBlock(TgdRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.History.Count == 0)
        {
            return string.Empty;
        }

        var sb = new StringBuilder("Here are the past iterations of this variable, oldest first, with the feedback each one received. ")
            .Append("Do not go back to a value that was criticised, and keep the improvements that lasted:\n");
        for (var i = 0; i < request.History.Count; i++)
        {
            sb.Append("<PAST_ITERATION index=\"").Append(i).Append("\">\n<VALUE>").Append(request.History[i].Value).Append("</VALUE>\n");
            foreach (var feedback in request.History[i].Feedback)
            {
                sb.Append("<FEEDBACK>").Append(feedback).Append("</FEEDBACK>\n");
            }

            sb.Append("</PAST_ITERATION>\n");
        }

        return sb.ToString();
    }

    /// <summary>The constraints, each in a <c>&lt;CONSTRAINT&gt;</c> element, with an instruction; empty without constraints.</summary>
    public static string ConstraintsBlock(TgdRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Constraints.Count == 0)
        {
            return string.Empty;
        }

        var sb = new StringBuilder("The new value must respect these constraints:\n");
        foreach (var constraint in request.Constraints)
        {
            sb.Append("<CONSTRAINT>").Append(constraint).Append("</CONSTRAINT>\n");
        }

        return sb.ToString();
    }

    /// <summary>
    /// The new value in a reply: the text between the first <see cref="OpenTag"/> and the
    /// <see cref="CloseTag"/> after it, without the line breaks next to the tags. Null when the tags are
    /// missing, out of order, or enclose only white space: the parameter then keeps its value.
    /// </summary>
    public static string? ExtractImprovedValue(string reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var open = reply.IndexOf(OpenTag, StringComparison.Ordinal);
        if (open < 0)
        {
            return null;
        }

        var start = open + OpenTag.Length;
        var close = reply.IndexOf(CloseTag, start, StringComparison.Ordinal);
        if (close < 0)
        {
            return null;
        }

        var value = reply[start..close].Trim('\r', '\n');
        return string.IsNullOrWhiteSpace(value) ? null : value;
    }
}

/// <summary>TGD momentum: per parameter, a FIFO of at most <c>k</c> past iterations, oldest first.</summary>
public static class MomentumWindow
{
    /// <summary>The window after one more step: <paramref name="entry"/> appended, the oldest dropped beyond <paramref name="k"/>.</summary>
    public static IReadOnlyList<T> Push<T>(IReadOnlyList<T> window, T entry, int k)
    {
        ArgumentNullException.ThrowIfNull(window);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        return k == 0 ? [] : [.. window.Append(entry).TakeLast(k)];
    }
}
