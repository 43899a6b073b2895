using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff.Evaluation;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary>
/// <c>deterministic_evaluator(prediction, target, eval_fn, eval_fn_purpose, reduction="sum",
/// reduction_fn_purpose="summation", success=None)</c>: scores each (prediction, target) pair with a
/// function of the server-side catalogue (<see cref="Scoring"/>) or, over the afnio protocol, the
/// client's own Python function; reduces a batch's scores, and explains the result. Backward asks the
/// backward model for feedback on the prediction, unless the success condition held at forward time.
/// </summary>
/// <param name="models">The backward model is reached through these.</param>
/// <param name="callables">Runs the client's functions; null where there is no client to call (REST).</param>
/// <param name="regexLimits">What the <c>regex</c> function may spend per evaluation; null for <see cref="RegexLimits.Default"/>.</param>
public sealed class DeterministicEvaluatorOperation(ILanguageModels models, IClientCallables? callables = null, RegexLimits? regexLimits = null) : IOperation
{
    /// <inheritdoc />
    public string Name => "deterministic_evaluator";

    /// <inheritdoc />
    public string BackwardName => "DeterministicEvaluatorBackward0";

    /// <inheritdoc />
    public bool IsEvaluator => true;

    /// <inheritdoc />
    public OpCall Bind(JsonElement arguments) => Evaluators.Bind(arguments, exactMatch: false, callables);

    /// <inheritdoc />
    public ValueTask<ForwardResult> ForwardAsync(
        OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken) =>
        Evaluators.ForwardAsync((EvaluatorArguments)bound.Arguments, variables, callables, cancellationToken, regexLimits);

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken) =>
        Evaluators.BackwardAsync(models, context, cancellationToken);
}

/// <summary>The bound arguments of a deterministic evaluator.</summary>
/// <param name="Prediction">The prediction variable.</param>
/// <param name="TargetVariable">The target, when it is a variable (it then has the second edge).</param>
/// <param name="TargetLiteral">The target, when it is a plain value or list.</param>
/// <param name="EvalFn">What scores each pair.</param>
/// <param name="Purpose">What the function is for, quoted in the explanation: text or a variable.</param>
/// <param name="Reduction">How a batch's scores are reduced; null keeps the list of scores.</param>
/// <param name="ReductionPurpose">What the reduction is for, quoted in the explanation: text or a variable.</param>
/// <param name="Success">When it holds, backward gives an empty gradient without calling a model.</param>
public sealed record EvaluatorArguments(
    Guid Prediction,
    Guid? TargetVariable,
    VariableData? TargetLiteral,
    PairScorer EvalFn,
    Argument Purpose,
    ScoreReduction? Reduction,
    Argument ReductionPurpose,
    SuccessTest? Success);

/// <summary>
/// What the deterministic evaluators share: argument binding, the forward evaluation and the backward
/// feedback call. Only client functions and <see cref="BackwardAsync"/> leave the process.
/// </summary>
public static class Evaluators
{
    /// <summary>The purpose of the exact-match evaluator's function.</summary>
    public const string ExactMatchPurpose = "exact match";

    private const string DefaultReductionPurpose = "summation";

    /// <summary>
    /// Validates the arguments. Edges, in argument order: the prediction, the target when it is a
    /// variable, then each purpose given as a variable (as afnio's module passes them). The exact-match
    /// evaluator takes no <c>eval_fn</c> or <c>eval_fn_purpose</c>.
    /// </summary>
    public static OpCall Bind(JsonElement arguments, bool exactMatch, IClientCallables? callables = null)
    {
        string[] common = ["prediction", "target", "reduction", "reduction_fn_purpose", "success"];
        Arguments.EnsureObject(arguments, exactMatch ? common : [.. common, "eval_fn", "eval_fn_purpose"]);
        var prediction = Arguments.Variable(arguments, "prediction");
        var target = Arguments.VariableOrLiteral(arguments, "target")
            ?? throw AfnioException.Invalid("missing_field", "'target' is required: a variable id (var_…), a string, a number, or a list.", "target");
        var evalFn = exactMatch ? new PairScorer.Catalogue(Scoring.Exact) : PairScorer.Read(Required(arguments, "eval_fn",
            "a catalogue function name or {\"name\": …, <parameters>}"), callables);
        var purpose = exactMatch ? new Argument.Literal(JsonSerializer.SerializeToElement(ExactMatchPurpose)) : PurposeText.Read(arguments, "eval_fn_purpose", null);
        var reduction = arguments.TryGetProperty("reduction", out var r) ? ScoreReduction.Read(r, callables) : ScoreReduction.Sum;
        var reductionPurpose = PurposeText.Read(arguments, "reduction_fn_purpose", DefaultReductionPurpose);
        var success = arguments.TryGetProperty("success", out var s) ? SuccessTest.Read(s, callables) : null;

        var args = target switch
        {
            Argument.Var v => new EvaluatorArguments(prediction, v.Id, null, evalFn, purpose, reduction, reductionPurpose, success),
            Argument.Literal l => new EvaluatorArguments(
                prediction, null, VariableData.FromJson(l.Value, "target"), evalFn, purpose, reduction, reductionPurpose, success),
            _ => throw new InvalidOperationException("An argument is a variable or a literal."),
        };
        List<Guid> edges = [prediction];
        edges.AddRange(new[] { args.TargetVariable, PurposeText.VariableOf(purpose), PurposeText.VariableOf(reductionPurpose) }.OfType<Guid>());
        return new OpCall(edges, args);
    }

    /// <summary>
    /// Scores every (prediction, target) pair; a scalar gives one score, a batch is reduced (or kept as
    /// the list of scores without a reduction). Outputs: the score and the explanation, with roles
    /// <c>Evaluation result score of &lt;role&gt;</c> and <c>Evaluation result explanation of &lt;role&gt;</c>.
    /// The saved context holds the prediction role, whether it was a batch, the samples as text, the
    /// explanation and whether the success condition held.
    /// </summary>
    /// <exception cref="AfnioException">400 <c>batch_length_mismatch</c>, <c>empty_batch</c> or <c>regex_budget_exceeded</c>.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled; catalogue functions check it between items.</exception>
    public static async ValueTask<ForwardResult> ForwardAsync(
        EvaluatorArguments args, IReadOnlyDictionary<Guid, VariableSnapshot> variables, IClientCallables? callables, CancellationToken cancellationToken,
        RegexLimits? regexLimits = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        var prediction = variables[args.Prediction];
        var target = args.TargetVariable is { } id ? variables[id].Data : args.TargetLiteral!;
        var pairs = Pairs(prediction.Data, target);
        var scores = await args.EvalFn.ScoreAsync(pairs, callables, cancellationToken, regexLimits);
        var purpose = PurposeText.Text(args.Purpose, variables);

        VariableData score;
        Scalar? reduced;
        string explanation;
        if (!prediction.Data.IsList)
        {
            reduced = scores[0];
            score = VariableData.Of(reduced.Value);
            explanation = Explanations.Scalar(purpose, pairs[0].Prediction, pairs[0].Target, reduced.Value);
        }
        else if (args.Reduction is { } reduction)
        {
            reduced = await reduction.ReduceAsync(scores, callables, cancellationToken);
            score = VariableData.Of(reduced.Value);
            explanation = Explanations.BatchReduced(purpose, PurposeText.Text(args.ReductionPurpose, variables), reduced.Value);
        }
        else
        {
            reduced = null;
            score = VariableData.List(scores);
            explanation = Explanations.BatchUnreduced(purpose, scores);
        }

        var context = new JsonObject
        {
            ["prediction_role"] = prediction.Role,
            ["batched"] = prediction.Data.IsList,
            ["samples"] = new JsonArray([.. pairs.Select((p, i) => (JsonNode)new JsonObject
            {
                ["prediction"] = p.Prediction.ToPythonString(),
                ["target"] = p.Target.ToPythonString(),
                ["score"] = scores[i].ToPythonString(),
            })]),
            ["explanation"] = explanation,
            ["success"] = args.Success is { } success && await success.IsMetAsync(scores, reduced, callables, cancellationToken),
        };
        return new ForwardResult(
            [
                new OutputValue(score, $"Evaluation result score of {prediction.Role}"),
                new OutputValue(VariableData.Of(explanation), $"Evaluation result explanation of {prediction.Role}"),
            ],
            context);
    }

    /// <summary>
    /// The gradients when no model call is needed, else null: nothing when the prediction takes no
    /// gradient, an empty gradient when the success condition held at forward time.
    /// </summary>
    public static IReadOnlyList<GradientValue?>? GradientsWithoutModel(BackwardContext context)
    {
        if (!context.EdgeNeedsGradient[0])
        {
            return [.. context.EdgeNeedsGradient.Select(_ => (GradientValue?)null)];
        }

        return context.SavedContext["success"]!.GetValue<bool>()
            ? PredictionOnly(context, GradientValue.Empty(Feedback.RoleFor(PredictionRole(context))))
            : null;
    }

    /// <summary>The one backward-model call: the evaluator prompt, named after the node and the prediction edge.</summary>
    public static ChatRequest FeedbackRequest(BackwardContext context)
    {
        var saved = context.SavedContext;
        var samples = saved["samples"]!.AsArray().Select(s => new EvaluatedSample(
            s!["prediction"]!.GetValue<string>(), s["target"]!.GetValue<string>(), s["score"]!.GetValue<string>())).ToList();
        var messages = EvaluatorFeedback.Messages(
            PredictionRole(context), samples, saved["batched"]!.GetValue<bool>(), saved["explanation"]!.GetValue<string>());
        return new ChatRequest(null, messages, null, $"{context.NodeId:N}/grad/0");
    }

    /// <summary>The model's reply as the prediction's gradient (role <c>feedback to &lt;role&gt;</c>); the target gets none.</summary>
    public static IReadOnlyList<GradientValue?> FeedbackGradients(BackwardContext context, string reply) =>
        PredictionOnly(context, new GradientValue(VariableData.Of(reply), Feedback.RoleFor(PredictionRole(context))));

    /// <summary>Backward: no call when the prediction takes no gradient or the evaluation succeeded, else one call.</summary>
    public static async ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(
        ILanguageModels models, BackwardContext context, CancellationToken cancellationToken)
    {
        if (GradientsWithoutModel(context) is { } done)
        {
            return done;
        }

        var reply = await models.ChatAsync(FeedbackRequest(context), cancellationToken);
        return FeedbackGradients(context, reply.Content);
    }

    private static List<(Scalar Prediction, Scalar Target)> Pairs(VariableData prediction, VariableData target)
    {
        if (!prediction.IsList && !target.IsList)
        {
            return [(prediction.Scalar, target.Scalar)];
        }

        if (prediction.IsList != target.IsList)
        {
            throw AfnioException.Invalid("batch_length_mismatch", prediction.IsList
                ? $"The prediction is a batch of {prediction.Items.Length} items but the target is a single value; give a target list of the same length."
                : $"The prediction is a single value but the target is a list of {target.Items.Length} items; give a single target.", "target");
        }

        if (prediction.Items.Length != target.Items.Length)
        {
            throw AfnioException.Invalid("batch_length_mismatch",
                $"The prediction and the target must have the same batch length: {prediction.Items.Length} vs {target.Items.Length}.", "target");
        }

        return prediction.Items.Length == 0
            ? throw AfnioException.Invalid("empty_batch", "Batch is empty (size 0), which is not allowed.", "prediction")
            : [.. prediction.Items.Zip(target.Items)];
    }

    private static IReadOnlyList<GradientValue?> PredictionOnly(BackwardContext context, GradientValue gradient) =>
        [.. context.EdgeNeedsGradient.Select((_, i) => i == 0 ? gradient : null)];

    private static string PredictionRole(BackwardContext context) => context.SavedContext["prediction_role"]!.GetValue<string>();

    private static JsonElement Required(JsonElement arguments, string name, string what) =>
        arguments.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : throw AfnioException.Invalid("missing_field", $"'{name}' is required: {what}.", name);
}
