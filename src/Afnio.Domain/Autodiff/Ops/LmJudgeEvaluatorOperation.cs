using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff.Evaluation;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary>The judge's verdict on one item.</summary>
/// <param name="Score">The score: an int or a float (a boolean score becomes 1 or 0).</param>
/// <param name="Explanation">The judge's explanation.</param>
public sealed record JudgeVerdict(Scalar Score, string Explanation);

/// <summary>
/// <c>lm_judge_evaluator(model_id, messages, inputs?, prediction, target?, eval_mode=true,
/// reduction="sum", reduction_fn_purpose="summation", success=None, completion_args?)</c>: a language model judges the
/// prediction. Prompts are built as for chat_completion, with <c>{prediction}</c> and <c>{target}</c>
/// also filled with the current item's values; the judge must answer JSON <c>{"score", "explanation"}</c>.
/// Outputs: the score and the explanation (roles <c>Evaluation result score of &lt;prediction role&gt;</c>
/// and <c>Evaluation result explanation of &lt;prediction role&gt;</c>). Backward in eval mode gives only the
/// prediction feedback; otherwise it gives the judge's message and input variables feedback. When the
/// success condition held at forward time, backward gives empty gradients and calls no model.
/// </summary>
/// <param name="models">The models the calls go to.</param>
/// <param name="callables">Runs the client's reduction and success functions; null where there is no client (REST).</param>
/// <param name="limits">The sizes a call may reach, checked before any model call.</param>
public sealed class LmJudgeEvaluatorOperation(ILanguageModels models, IClientCallables? callables, OperationLimits limits) : IOperation
{
    private const string DefaultPurpose = "summation";
    private const int QuotedReplyLength = 300;

    private sealed record Args(
        ChatTemplate Template, Guid Prediction, Argument? Target, Argument EvalMode, ScoreReduction? Reduction, Argument ReductionPurpose,
        SuccessTest? Success);

    /// <inheritdoc />
    public string Name => "lm_judge_evaluator";

    /// <inheritdoc />
    public string BackwardName => "LMJudgeEvaluatorBackward0";

    /// <inheritdoc />
    public bool IsEvaluator => true;

    /// <inheritdoc />
    public OpCall Bind(JsonElement arguments) => Parse(arguments, callables);

    /// <summary>
    /// Validates the arguments. Edges: the prediction, the target when it is a variable, then the
    /// message content variables and the input variables as for chat_completion, then eval_mode and
    /// reduction_fn_purpose when they are variables.
    /// </summary>
    public static OpCall Parse(JsonElement arguments, IClientCallables? callables = null)
    {
        Arguments.EnsureObject(arguments, "model_id", "messages", "inputs", "prediction", "target", "eval_mode",
            "reduction", "reduction_fn_purpose", "success", "completion_args");
        var template = ChatTemplate.Bind(arguments, ["prediction", "target"]);
        var args = new Args(template, Arguments.Variable(arguments, "prediction"), TargetOf(arguments),
            EvalModeOf(arguments),
            arguments.TryGetProperty("reduction", out var reduction) ? ScoreReduction.Read(reduction, callables) : ScoreReduction.Sum,
            PurposeText.Read(arguments, "reduction_fn_purpose", DefaultPurpose),
            arguments.TryGetProperty("success", out var success) ? SuccessTest.Read(success, callables) : null);
        List<Guid> edges = [args.Prediction];
        if (args.Target is Argument.Var target)
        {
            edges.Add(target.Id);
        }

        edges.AddRange(template.Edges.Select(e => e.Id));
        if (args.EvalMode is Argument.Var mode)
        {
            edges.Add(mode.Id); // an edge, as every variable argument is; it never takes a gradient
        }

        if (PurposeText.VariableOf(args.ReductionPurpose) is { } purpose)
        {
            edges.Add(purpose);
        }

        return new OpCall(edges, args);
    }

    /// <inheritdoc />
    public async ValueTask<ForwardResult> ForwardAsync(
        OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken)
    {
        var args = (Args)bound.Arguments;
        var prediction = variables[args.Prediction];
        var target = args.Target switch
        {
            Argument.Var v => variables[v.Id].Data,
            Argument.Literal l => VariableData.FromJson(l.Value, "target"),
            _ => null,
        };

        var lengths = args.Template.BatchLengths(variables).ToList();
        if (prediction.Data.IsList)
        {
            lengths.Insert(0, ("prediction", prediction.Data.Items.Length));
        }

        if (target is { IsList: true })
        {
            lengths.Insert(prediction.Data.IsList ? 1 : 0, ("target", target.Items.Length));
        }

        var size = ChatTemplate.BatchSize(lengths);
        if (size == 0)
        {
            throw AfnioException.Invalid("empty_batch", "The batch is empty: there is nothing for the judge to evaluate.", "prediction");
        }

        var render = args.Template.Prepare(variables, size, item =>
        {
            var values = new Dictionary<string, string>(StringComparer.Ordinal) { ["prediction"] = ChatTemplate.TextAt(prediction.Data, item) };
            if (target is not null)
            {
                values["target"] = ChatTemplate.TextAt(target, item);
            }

            return values;
        }, limits);
        var items = new IReadOnlyList<ChatMessage>[size ?? 1];
        var replies = await Concurrent.AllAsync(items.Length, (i, ct) => models.ChatAsync(
            new ChatRequest(args.Template.ModelId, items[i] = render(i), args.Template.CompletionArgsCopy(), $"forward/{i}"), ct), cancellationToken);
        var verdicts = replies.Select(r => ParseReply(r.Content)).ToList();

        var scores = verdicts.Select(v => v.Score).ToList();
        var purpose = PurposeText.Text(args.ReductionPurpose, variables);
        var (score, explanation) = (size, args.Reduction) switch
        {
            (null, _) => (VariableData.Of(verdicts[0].Score), verdicts[0].Explanation),
            (_, null) => BatchResult(scores, null, purpose),
            (_, ScoreReduction.Catalogue c) => BatchResult(scores, c.Reduction, purpose),
            _ => Reduced(await args.Reduction.ReduceAsync(scores, callables, cancellationToken), purpose),
        };
        var succeeded = args.Success is { } test
            && await test.IsMetAsync(scores, score.IsList ? null : score.Scalar, callables, cancellationToken);

        var edges = new List<ChatEdge> { new(args.Prediction, "prediction", "prediction") };
        if (args.Target is Argument.Var t)
        {
            edges.Add(new ChatEdge(t.Id, "target", "target"));
        }

        edges.AddRange(args.Template.Edges);
        var evalMode = args.EvalMode switch
        {
            Argument.Var mode => Truthy(variables[mode.Id].Data),
            Argument.Literal literal => literal.Value.ValueKind == JsonValueKind.True,
            _ => true,
        };
        if (args.EvalMode is Argument.Var modeVariable)
        {
            edges.Add(new ChatEdge(modeVariable.Id, "eval_mode", "eval_mode"));
        }

        if (PurposeText.VariableOf(args.ReductionPurpose) is { } purposeVariable)
        {
            edges.Add(new ChatEdge(purposeVariable, "reduction_fn_purpose", "reduction_fn_purpose"));
        }

        var savedItems = ChatTemplate.SaveItems(items, [.. replies.Select(r => r.Content)]);
        for (var i = 0; i < verdicts.Count; i++)
        {
            savedItems[i]!["prediction"] = ChatTemplate.TextAt(prediction.Data, size is null ? null : i);
            savedItems[i]!["target"] = target is null ? null : ChatTemplate.TextAt(target, size is null ? null : i);
            savedItems[i]!["score"] = verdicts[i].Score.ToPythonString();
            savedItems[i]!["explanation"] = verdicts[i].Explanation;
        }

        var saved = new JsonObject
        {
            ["eval_mode"] = evalMode,
            ["success"] = succeeded,
            ["batched"] = size is not null,
            ["prediction_role"] = prediction.Role,
            ["score"] = score.ToString(),
            ["explanation"] = explanation,
            ["items"] = savedItems,
            ["edges"] = ChatTemplate.SaveEdges(edges, variables),
        };
        return new ForwardResult(
            [
                new OutputValue(score, $"Evaluation result score of {prediction.Role}"),
                new OutputValue(VariableData.Of(explanation), $"Evaluation result explanation of {prediction.Role}"),
            ],
            saved);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var saved = context.SavedContext;
        var batched = saved["batched"]!.GetValue<bool>();
        var conversations = ChatTemplate.LoadConversations(saved["items"]!.AsArray());
        var feedback = string.Join("\n\n", context.OutputGradients.Where(g => !g.IsEmpty).Select(g => g.Text));
        var evalMode = saved["eval_mode"]!.GetValue<bool>();
        Func<SavedEdge, bool> eligible = evalMode
            ? edge => edge.Kind == "prediction"
            : edge => edge.Kind is not ("prediction" or "target" or "eval_mode" or "reduction_fn_purpose");
        if (saved["success"]?.GetValue<bool>() == true)
        {
            return ChatTemplate.EmptyPerVariable(context, eligible);
        }

        if (evalMode)
        {
            return await ChatTemplate.FeedbackPerVariableAsync(models, context, eligible,
                edge => JudgeFeedback.PredictionPrompt(edge.Role, edge.Text, conversations, batched,
                    saved["score"]!.GetValue<string>(), feedback),
                cancellationToken);
        }

        var outputRole = $"evaluation of {saved["prediction_role"]!.GetValue<string>()} by a language model acting as a judge";
        return await ChatTemplate.FeedbackPerVariableAsync(models, context, eligible,
            edge => FeedbackPrompts.ChatBackward(edge.Role, edge.Text, conversations, batched, outputRole, feedback),
            cancellationToken);
    }

    /// <summary>
    /// Reads the judge's reply: a JSON object with <c>score</c> (number, boolean or numeric string) and
    /// <c>explanation</c>, possibly inside <c>```</c> fences or surrounded by other text.
    /// </summary>
    /// <exception cref="AfnioException">No such object in the reply (code <c>judge_reply_invalid</c>, 502 kind).</exception>
    public static JudgeVerdict ParseReply(string reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var bytes = Encoding.UTF8.GetBytes(reply);
        for (var start = Array.IndexOf(bytes, (byte)'{'); start >= 0; start = Array.IndexOf(bytes, (byte)'{', start + 1))
        {
            if (TryReadObject(bytes.AsSpan(start), out var verdict))
            {
                return verdict;
            }
        }

        var quoted = reply.Length > QuotedReplyLength ? reply[..QuotedReplyLength] + "…" : reply;
        throw AfnioException.Upstream("judge_reply_invalid",
            "The judge model's reply is not a JSON object with a numeric or boolean 'score' and an 'explanation': "
            + $"'{quoted}'. Ask for that format in the judge's messages (or with completion_args.response_format).");
    }

    /// <summary>
    /// The batch outputs: the scores reduced (<c>sum</c>, <c>mean</c>, <c>min</c>, <c>max</c>) with the
    /// reference's aggregated explanation, or, without a reduction, the list of scores.
    /// </summary>
    public static (VariableData Score, string Explanation) BatchResult(IReadOnlyList<Scalar> scores, Reduction? reduction, string purpose)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (reduction is null)
        {
            var list = VariableData.List(scores);
            return (list, $"{BatchOpening}, generating individual scores for each pair: {list}.");
        }

        Scalar score;
        try
        {
            score = reduction.Reduce(scores);
        }
        catch (OverflowException e)
        {
            throw AfnioException.Upstream("judge_reply_invalid", $"The judge's scores cannot be reduced: {e.Message}");
        }

        return Reduced(score, purpose);
    }

    private const string BatchOpening = "The evaluation function, designed using an LM as the judge, compared the <DATA> fields of the "
        + "predicted variable and the target variable across all samples in the batch";

    private static (VariableData Score, string Explanation) Reduced(Scalar score, string purpose) => (VariableData.Of(score),
        $"{BatchOpening}. These scores were then aggregated using the reduction function '{purpose}', resulting in a final aggregated score: {score.ToPythonString()}.");

    private static bool TryReadObject(ReadOnlySpan<byte> utf8, out JudgeVerdict verdict)
    {
        verdict = new JudgeVerdict(Scalar.Null, string.Empty);
        try
        {
            var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("score", out var score) || ScoreOf(score) is not { } value)
            {
                return false;
            }

            var explanation = root.TryGetProperty("explanation", out var e)
                ? e.ValueKind == JsonValueKind.String ? e.GetString()! : e.ValueKind == JsonValueKind.Null ? string.Empty : e.GetRawText()
                : string.Empty;
            // Text that cannot be stored (an escaped NUL) makes the verdict unreadable, like broken JSON.
            if (explanation.Contains('\0', StringComparison.Ordinal))
            {
                return false;
            }

            verdict = new JudgeVerdict(value, explanation);
            return true;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a string holding a lone surrogate.
            return false;
        }
    }

    private static Scalar? ScoreOf(JsonElement score)
    {
        switch (score.ValueKind)
        {
            case JsonValueKind.True:
                return Scalar.FromInt(1);
            case JsonValueKind.False:
                return Scalar.FromInt(0);
            case JsonValueKind.Number:
                return Number(score.GetRawText());
            case JsonValueKind.String:
                return Number(score.GetString()!.Trim());
            default:
                return null;
        }

        static Scalar? Number(string raw)
        {
            if (long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
            {
                return Scalar.FromInt(integer);
            }

            return double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number)
                ? Scalar.FromFloat(number)
                : null;
        }
    }

    private static Argument? TargetOf(JsonElement arguments)
    {
        if (!arguments.TryGetProperty("target", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return PrefixedId.TryParse(PrefixedId.Variable, value.GetString(), out var id)
                ? new Argument.Var(id)
                : new Argument.Literal(value.Clone());
        }

        if (value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(i => i.ValueKind == JsonValueKind.String))
        {
            if (value.EnumerateArray().Any(i => PrefixedId.TryParse(PrefixedId.Variable, i.GetString(), out _)))
            {
                throw AfnioException.Invalid("invalid_type",
                    "'target' cannot be a list of variables; pass one variable holding a list, or a list of strings.", "target");
            }

            _ = VariableData.FromJson(value, "target");
            return new Argument.Literal(value.Clone());
        }

        throw AfnioException.Invalid("invalid_type", "'target' must be a variable id (var_…), a string or a list of strings.", "target");
    }

    // true or false, or a variable holding the flag (afnio's module wraps it in Variable(bool)).
    private static Argument EvalModeOf(JsonElement arguments)
    {
        if (!arguments.TryGetProperty("eval_mode", out var value))
        {
            return new Argument.Literal(JsonDocument.Parse("true").RootElement.Clone());
        }

        return value.ValueKind switch
        {
            JsonValueKind.True or JsonValueKind.False => new Argument.Literal(value.Clone()),
            JsonValueKind.String when PrefixedId.TryParse(PrefixedId.Variable, value.GetString(), out var id) => new Argument.Var(id),
            _ => throw AfnioException.Invalid("invalid_type",
                "'eval_mode' must be true (feedback goes to the prediction), false (feedback goes to the judge's messages and inputs), " +
                "or a variable id (var_…) holding one of them.", "eval_mode"),
        };
    }

    // Python's bool() of a variable's data: 0, 0.0, "" and an empty list are false. The strings "false"
    // and "0" are read as false too, since a flag stored as text means that.
    private static bool Truthy(VariableData data) => data.IsList
        ? data.Items.Length > 0
        : data.Scalar.Kind switch
        {
            ScalarKind.Bool => data.Scalar.AsBool,
            ScalarKind.Int => data.Scalar.AsInt != 0,
            ScalarKind.Float => data.Scalar.AsFloat != 0,
            ScalarKind.Str => data.Scalar.AsStr.Trim().ToLowerInvariant() is not ("" or "false" or "0"),
            _ => false,
        };
}

/// <summary>
/// The evaluator backward prompt of the LM judge in eval mode. Kept apart so it can be replaced by the
/// shared evaluator feedback prompts (<c>LanguageModels/EvaluatorFeedback.cs</c>) in one place.
/// </summary>
public static class JudgeFeedback
{
    /// <summary>The user prompt asking for feedback on a prediction, given how the judge scored it.</summary>
    /// <param name="predictionRole">The prediction's role.</param>
    /// <param name="predictionValue">The prediction's value as text (list items in <c>&lt;ITEM&gt;</c> tags).</param>
    /// <param name="judgeConversations">The judge calls: one, or one per batch item.</param>
    /// <param name="batched">True for a batch (each call wrapped in <c>&lt;EXAMPLE&gt;</c>).</param>
    /// <param name="score">The final score as Python prints it (reduced for a batch).</param>
    /// <param name="feedback">Downstream feedback on the score or explanation; usually empty.</param>
    public static string PredictionPrompt(
        string predictionRole, string predictionValue, IReadOnlyList<Conversation> judgeConversations, bool batched, string score, string feedback)
    {
        ArgumentNullException.ThrowIfNull(judgeConversations);
        var sb = new StringBuilder();
        sb.Append("You will give feedback to a variable with the following role: <ROLE>").Append(predictionRole).Append("</ROLE>.\n\n");
        sb.Append(batched
            ? $"A language model acting as a judge evaluated each of the {judgeConversations.Count} examples of a batch of this variable. Here is what the judge was asked and what it answered (<LM_OUTPUT> holds its score and explanation):\n\n"
            : "A language model acting as a judge evaluated this variable. Here is what the judge was asked and what it answered (<LM_OUTPUT> holds its score and explanation):\n\n");
        sb.Append(FeedbackPrompts.Conversations(judgeConversations, batched)).Append("\n\n");
        sb.Append("<OBJECTIVE_FUNCTION>\n");
        sb.Append(batched ? $"The judge's scores were aggregated into a final score of {score}.\n" : $"The judge's score was {score}.\n");
        if (string.IsNullOrEmpty(feedback))
        {
            sb.Append("Your goal is to explain how the variable should change so that the judge would rate it better, following the judge's criteria and explanations.\n");
        }
        else
        {
            sb.Append("The evaluation received the following feedback from the rest of the system:\n<FEEDBACK>")
                .Append(feedback).Append("</FEEDBACK>\n");
            sb.Append("Your goal is to explain how the variable should change so that it addresses this feedback and the judge's criticism.\n");
        }

        sb.Append("</OBJECTIVE_FUNCTION>\n\n");
        FeedbackPrompts.AppendVariable(sb, predictionValue);
        return sb.ToString();
    }
}
