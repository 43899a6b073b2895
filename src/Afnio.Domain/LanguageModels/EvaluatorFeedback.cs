using System.Text;

namespace Afnio.Domain.LanguageModels;

/// <summary>One evaluated sample, as text, for an evaluator's backward prompt.</summary>
/// <param name="Prediction">The prediction, as Python's <c>str()</c> prints it.</param>
/// <param name="Target">The target, or null when the evaluation had none (an LM judge without a target).</param>
/// <param name="Score">The sample's score, as printed (<c>1</c>, <c>0.5</c>, <c>False</c>, …).</param>
public sealed record EvaluatedSample(string Prediction, string? Target, string Score);

/// <summary>
/// The backward prompt of evaluators: the backward model is asked for feedback on a prediction given how
/// it was evaluated. Shared by the deterministic evaluators and the LM judge. Our own wording in the
/// manner of TextGrad's gradient prompts (semantics §2.4): criticism and strategies, never a rewrite.
/// </summary>
public static class EvaluatorFeedback
{
    /// <summary>The system prompt: the model acts as the gradient engine and gives feedback only.</summary>
    public const string SystemPrompt =
        "You are the gradient engine of an optimization system built from language-model calls and other functions. "
        + "Your task is to give feedback on one variable of that system so that it scores better on its evaluation. "
        + "Criticise the variable: point out what makes it fall short and propose concrete strategies to improve it. "
        + "Never write a new or corrected version of the variable and never solve its task yourself: reply with feedback only. "
        + "Be specific and concise. If the variable already fully meets the evaluation, say briefly that it needs no change.";

    /// <summary>The system and user messages for one backward call.</summary>
    /// <param name="predictionRole">The role of the evaluated (predicted) variable.</param>
    /// <param name="samples">The evaluated samples: one for a scalar prediction, one per item for a batch.</param>
    /// <param name="batched">True when the prediction is a list (even of one item).</param>
    /// <param name="explanation">The evaluator's explanation of the score.</param>
    public static IReadOnlyList<ChatMessage> Messages(
        string predictionRole, IReadOnlyList<EvaluatedSample> samples, bool batched, string explanation) =>
        [new ChatMessage("system", SystemPrompt), new ChatMessage("user", UserPrompt(predictionRole, samples, batched, explanation))];

    /// <summary>
    /// The user prompt: the role in <c>&lt;ROLE&gt;</c>, the prediction, target and score (for a batch,
    /// one <c>&lt;EXAMPLE index="i"&gt;</c> block per item, from 0), the explanation in
    /// <c>&lt;EXPLANATION&gt;</c>, and the request for feedback.
    /// </summary>
    /// <param name="predictionRole">The role of the evaluated (predicted) variable.</param>
    /// <param name="samples">The evaluated samples: one for a scalar prediction, one per item for a batch.</param>
    /// <param name="batched">True when the prediction is a list (even of one item).</param>
    /// <param name="explanation">The evaluator's explanation of the score.</param>
    public static string UserPrompt(string predictionRole, IReadOnlyList<EvaluatedSample> samples, bool batched, string explanation)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (!batched && samples.Count != 1)
        {
            throw new ArgumentException("A scalar evaluation has exactly one sample.", nameof(samples));
        }

        var sb = new StringBuilder()
            .Append("You will give feedback to a variable with the following role: <ROLE>").Append(predictionRole).Append("</ROLE>.\n\n");
        if (batched)
        {
            sb.Append("The variable holds a batch of ").Append(samples.Count)
              .Append(" predictions. An evaluation compared each prediction with its target and scored it:\n\n");
            for (var i = 0; i < samples.Count; i++)
            {
                sb.Append("<EXAMPLE index=\"").Append(i).Append("\">\n");
                AppendSample(sb, samples[i]);
                sb.Append("</EXAMPLE>\n\n");
            }
        }
        else
        {
            sb.Append("An evaluation compared the variable's value (the prediction) with a target and scored it:\n\n");
            AppendSample(sb, samples[0]);
            sb.Append('\n');
        }

        sb.Append("The evaluation explained the result as follows:\n<EXPLANATION>").Append(explanation).Append("</EXPLANATION>\n\n");
        sb.Append(batched
            ? "Give feedback on the predictions as a whole: identify the patterns behind the low scores, explain why "
              + "they fall short of their targets, and suggest strategies that would raise the score. "
            : "Give feedback on the prediction: explain why it falls short of the target according to this evaluation, "
              + "and suggest strategies that would raise the score. ");
        sb.Append("Do not rewrite the ").Append(batched ? "predictions" : "prediction").Append("; give feedback only.");
        return sb.ToString();
    }

    private static void AppendSample(StringBuilder sb, EvaluatedSample sample)
    {
        sb.Append("<PREDICTION>").Append(sample.Prediction).Append("</PREDICTION>\n");
        if (sample.Target is not null)
        {
            sb.Append("<TARGET>").Append(sample.Target).Append("</TARGET>\n");
        }

        sb.Append("<SCORE>").Append(sample.Score).Append("</SCORE>\n");
    }
}
