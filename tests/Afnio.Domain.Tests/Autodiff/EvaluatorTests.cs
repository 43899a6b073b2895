using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Autodiff.Evaluation;
using Afnio.Domain.Autodiff.Ops;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests.Autodiff;

public sealed class EvaluatorTests
{
    private const string GreenVsRed =
        "The evaluation function, designed for 'exact match', compared the <DATA> field of the predicted variable ('green') "
        + "with the <DATA> field of the target variable ('red'), resulting in a score: 0.";

    private const string BatchSummation =
        "The evaluation function, designed for 'exact match', compared the <DATA> fields of the predicted variable and the "
        + "target variable across all samples in the batch, generating individual scores for each pair. These scores were "
        + "then aggregated using the reduction function 'summation', resulting in a final aggregated score: 1.";

    private sealed class Call
    {
        public Dictionary<Guid, VariableSnapshot> Variables { get; } = [];

        public Guid Variable(string json, string role, bool requiresGrad = false)
        {
            var v = new VariableSnapshot(PrefixedId.NewGuid(), Json.Data(json), role, requiresGrad, null, 0);
            Variables[v.Id] = v;
            return v.Id;
        }

        public static OpCall Bind(string arguments, bool exactMatch)
        {
            using var doc = JsonDocument.Parse(arguments);
            return Evaluators.Bind(doc.RootElement, exactMatch);
        }

        // Catalogue functions never leave the process, so the forward pass completes at once.
        public ForwardResult Forward(string arguments, bool exactMatch = true) =>
            Evaluators.ForwardAsync((EvaluatorArguments)Bind(arguments, exactMatch).Arguments, Variables, null, CancellationToken.None)
                .AsTask().GetAwaiter().GetResult();
    }

    private static string Id(Guid id) => Tape.Id(id);

    private static BackwardContext Backward(ForwardResult forward, params bool[] edgeNeedsGradient) =>
        new(PrefixedId.NewGuid(), forward.SavedContext, [GradientValue.Empty(), GradientValue.Empty()], edgeNeedsGradient);

    [Fact]
    public void ExactMatch_GreenVsRed_ScoresZero_WithTheReferenceExplanationAndRoles()
    {
        var call = new Call();
        var prediction = call.Variable("\"green\"", "color prediction", requiresGrad: true);

        var result = call.Forward($"{{\"prediction\": \"{Id(prediction)}\", \"target\": \"red\"}}");

        Assert.Equal(2, result.Outputs.Count);
        Assert.Equal("0", result.Outputs[0].Data.ToJson());
        Assert.Equal("Evaluation result score of color prediction", result.Outputs[0].Role);
        Assert.Equal(GreenVsRed, result.Outputs[1].Data.Scalar.AsStr);
        Assert.Equal("Evaluation result explanation of color prediction", result.Outputs[1].Role);
    }

    [Fact]
    public void ExactMatch_OfABatch_SumsTheScores_WithTheBatchExplanation()
    {
        var call = new Call();
        var prediction = call.Variable("[\"green\", \"blue\"]", "color predictions");
        var target = call.Variable("[\"red\", \"blue\"]", "colors");

        var result = call.Forward($"{{\"prediction\": \"{Id(prediction)}\", \"target\": \"{Id(target)}\"}}");

        Assert.Equal("1", result.Outputs[0].Data.ToJson());
        Assert.Equal(BatchSummation, result.Outputs[1].Data.Scalar.AsStr);
    }

    [Fact]
    public void ExactMatch_ScalarNumbers_QuoteValuesAsPythonStr()
    {
        var call = new Call();
        var prediction = call.Variable("1.0", "answer");

        var result = call.Forward($"{{\"prediction\": \"{Id(prediction)}\", \"target\": 1}}");

        Assert.Equal("1", result.Outputs[0].Data.ToJson());
        Assert.Equal("The evaluation function, designed for 'exact match', compared the <DATA> field of the predicted variable "
            + "('1.0') with the <DATA> field of the target variable ('1'), resulting in a score: 1.", result.Outputs[1].Data.Scalar.AsStr);
    }

    [Fact]
    public void Edges_ArePredictionThenTarget_WhenTheTargetIsAVariable()
    {
        var call = new Call();
        var prediction = call.Variable("\"a\"", "p");
        var target = call.Variable("\"b\"", "t");

        Assert.Equal([prediction, target],
            Call.Bind($"{{\"prediction\": \"{Id(prediction)}\", \"target\": \"{Id(target)}\"}}", exactMatch: true).Variables);
        Assert.Equal([prediction], Call.Bind($"{{\"prediction\": \"{Id(prediction)}\", \"target\": [\"b\"]}}", exactMatch: true).Variables);
    }

    [Fact]
    public void Deterministic_UsesTheNamedFunction_ReductionAndPurposes()
    {
        var call = new Call();
        var prediction = call.Variable("[\"It is Paris.\", \"Rome, I think\", \"Berlin\"]", "answers");

        var result = call.Forward($$"""
            {"prediction": "{{Id(prediction)}}", "target": ["paris", "rome", "madrid"],
             "eval_fn": {"name": "contains", "case_sensitive": false}, "eval_fn_purpose": "city mention",
             "reduction": "mean", "reduction_fn_purpose": "average"}
            """, exactMatch: false);

        Assert.Equal("0.6666666666666666", result.Outputs[0].Data.ToJson());
        Assert.Equal("The evaluation function, designed for 'city mention', compared the <DATA> fields of the predicted variable "
            + "and the target variable across all samples in the batch, generating individual scores for each pair. These "
            + "scores were then aggregated using the reduction function 'average', resulting in a final aggregated score: "
            + "0.6666666666666666.", result.Outputs[1].Data.Scalar.AsStr);
    }

    [Fact]
    public void Deterministic_WithoutReduction_KeepsTheListOfScores()
    {
        var call = new Call();
        var prediction = call.Variable("[\"1\", \"2.5\"]", "numbers");

        var result = call.Forward($$"""
            {"prediction": "{{Id(prediction)}}", "target": [1, 3], "eval_fn": "numeric",
             "eval_fn_purpose": "numeric equality", "reduction": null}
            """, exactMatch: false);

        Assert.Equal("[1,0]", result.Outputs[0].Data.ToJson());
        Assert.Equal("The evaluation function, designed for 'numeric equality', compared the <DATA> fields of the predicted "
            + "variable and the target variable across all samples in the batch, generating individual scores for each pair: "
            + "[1, 0].", result.Outputs[1].Data.Scalar.AsStr);
    }

    [Fact]
    public void Explanations_MatchTheReferenceTexts()
    {
        Assert.Equal(GreenVsRed, Explanations.Scalar("exact match", Scalar.FromStr("green"), Scalar.FromStr("red"), Scalar.FromInt(0)));
        Assert.Equal(BatchSummation, Explanations.BatchReduced("exact match", "summation", Scalar.FromInt(1)));
        Assert.EndsWith("for each pair: [0, 1, 1].", Explanations.BatchUnreduced("exact match", [Scalar.FromInt(0), Scalar.FromInt(1), Scalar.FromInt(1)]));
        Assert.EndsWith("final aggregated score: 1.0.", Explanations.BatchReduced("exact match", "mean", Scalar.FromFloat(1)));
    }

    [Theory]
    [InlineData("[\"a\", \"b\"]", "[\"a\", \"b\", \"c\"]", "The prediction and the target must have the same batch length: 2 vs 3.")]
    [InlineData("[\"a\", \"b\"]", "\"a\"", "The prediction is a batch of 2 items but the target is a single value; give a target list of the same length.")]
    [InlineData("\"a\"", "[\"a\"]", "The prediction is a single value but the target is a list of 1 items; give a single target.")]
    public void MismatchedBatches_AreRefused(string prediction, string target, string message)
    {
        var call = new Call();
        var p = call.Variable(prediction, "p");
        var t = call.Variable(target, "t");

        var error = Assert.Throws<AfnioException>(() => call.Forward($"{{\"prediction\": \"{Id(p)}\", \"target\": \"{Id(t)}\"}}"));

        Assert.Equal("batch_length_mismatch", error.Code);
        Assert.Equal("target", error.Param);
        Assert.Equal(message, error.Message);
        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
    }

    [Fact]
    public void AnEmptyBatch_IsRefused()
    {
        var call = new Call();
        var p = call.Variable("[]", "p");

        var error = Assert.Throws<AfnioException>(() => call.Forward($"{{\"prediction\": \"{Id(p)}\", \"target\": []}}"));

        Assert.Equal("empty_batch", error.Code);
    }

    [Theory]
    [InlineData(true, "{\"target\": \"x\"}", "missing_field", "prediction")]
    [InlineData(true, "{\"prediction\": \"PRED\"}", "missing_field", "target")]
    [InlineData(true, "{\"prediction\": \"PRED\", \"target\": \"x\", \"eval_fn\": \"exact\"}", "unknown_field", "eval_fn")]
    [InlineData(true, "{\"prediction\": \"PRED\", \"target\": {\"a\": 1}}", "invalid_data", "target")]
    [InlineData(true, "{\"prediction\": \"PRED\", \"target\": \"x\", \"reduction\": \"median\"}", "unknown_reduction", "reduction")]
    [InlineData(true, "{\"prediction\": \"PRED\", \"target\": \"x\", \"success\": \"perfect\"}", "unknown_success_condition", "success")]
    [InlineData(true, "{\"prediction\": \"PRED\", \"target\": \"x\", \"reduction_fn_purpose\": 3}", "invalid_type", "reduction_fn_purpose")]
    [InlineData(false, "{\"prediction\": \"PRED\", \"target\": \"x\", \"eval_fn_purpose\": \"p\"}", "missing_field", "eval_fn")]
    [InlineData(false, "{\"prediction\": \"PRED\", \"target\": \"x\", \"eval_fn\": \"exact\"}", "missing_field", "eval_fn_purpose")]
    [InlineData(false, "{\"prediction\": \"PRED\", \"target\": \"x\", \"eval_fn\": \"exact\", \"eval_fn_purpose\": 1}", "invalid_type", "eval_fn_purpose")]
    [InlineData(false, "{\"prediction\": \"PRED\", \"target\": \"x\", \"eval_fn\": \"bleu\", \"eval_fn_purpose\": \"p\"}", "unknown_eval_fn", "eval_fn")]
    [InlineData(false, "{\"prediction\": \"x\", \"target\": \"x\", \"eval_fn\": \"exact\", \"eval_fn_purpose\": \"p\"}", "invalid_id", "prediction")]
    public void Bind_RefusesBadArguments(bool exactMatch, string arguments, string code, string param)
    {
        var call = new Call();
        var p = call.Variable("\"a\"", "p");

        var error = Assert.Throws<AfnioException>(() => Call.Bind(arguments.Replace("PRED", Id(p), StringComparison.Ordinal), exactMatch));

        Assert.Equal(code, error.Code);
        Assert.Equal(param, error.Param);
    }

    [Fact]
    public void Success_IsJudgedAtForwardTime_AndBackwardGivesAnEmptyGradientWithoutAModel()
    {
        var call = new Call();
        var prediction = call.Variable("[\"a\", \"b\"]", "labels", requiresGrad: true);
        var target = call.Variable("[\"a\", \"b\"]", "gold labels");

        var forward = call.Forward($"{{\"prediction\": \"{Id(prediction)}\", \"target\": \"{Id(target)}\", \"success\": \"all_correct\"}}");

        Assert.True(forward.SavedContext["success"]!.GetValue<bool>());
        var grads = Evaluators.GradientsWithoutModel(Backward(forward, true, false));
        Assert.NotNull(grads);
        Assert.Equal(2, grads.Count);
        Assert.True(grads[0]!.IsEmpty);
        Assert.Equal("feedback to labels", grads[0]!.Role);
        Assert.Null(grads[1]);
    }

    [Fact]
    public void WhenThePredictionTakesNoGradient_BackwardNeedsNoModel()
    {
        var call = new Call();
        var prediction = call.Variable("\"green\"", "color");

        var forward = call.Forward($"{{\"prediction\": \"{Id(prediction)}\", \"target\": \"red\"}}");

        Assert.Equal([null], Evaluators.GradientsWithoutModel(Backward(forward, false))!);
    }

    [Fact]
    public void WithoutSuccess_BackwardAsksTheBackwardModelOnce_AndGivesTheReplyToThePrediction()
    {
        var call = new Call();
        var prediction = call.Variable("\"green\"", "color prediction", requiresGrad: true);
        var target = call.Variable("\"red\"", "color", requiresGrad: true);
        var forward = call.Forward($"{{\"prediction\": \"{Id(prediction)}\", \"target\": \"{Id(target)}\", \"success\": \"all_correct\"}}");
        var context = Backward(forward, true, true);

        Assert.Null(Evaluators.GradientsWithoutModel(context));
        var request = Evaluators.FeedbackRequest(context);
        Assert.Null(request.ModelId);
        Assert.Null(request.CompletionArgs);
        Assert.Equal($"{context.NodeId:N}/grad/0", request.StepKey);
        Assert.Equal(["system", "user"], request.Messages.Select(m => m.Role));
        Assert.Equal(EvaluatorFeedback.SystemPrompt, request.Messages[0].Content);
        Assert.Equal(EvaluatorFeedback.UserPrompt("color prediction", [new("green", "red", "0")], false, GreenVsRed), request.Messages[1].Content);

        var grads = Evaluators.FeedbackGradients(context, "Reassess the criteria that led to the initial prediction of 'green'.");
        Assert.Equal("Reassess the criteria that led to the initial prediction of 'green'.", grads[0]!.Text);
        Assert.Equal("feedback to color prediction", grads[0]!.Role);
        Assert.Null(grads[1]);
    }

    // The evaluators touch their models only in a backward pass that needs feedback; these tests never
    // reach one, so no model is given (a call would fail with a NullReferenceException).
    private static Tape EvaluatorTape() =>
        new(new OperationRegistry([new ExactMatchEvaluatorOperation(null!), new DeterministicEvaluatorOperation(null!)]));

    [Fact]
    public async Task InTheGraph_EvaluatorsAreEvaluatorNodes_WithEdgesToThePredictionAndTheTarget()
    {
        var tape = EvaluatorTape();
        var prediction = tape.Leaf("\"green\"", "color prediction", requiresGrad: true);
        var target = tape.Leaf("\"red\"", "color");

        var outputs = await tape.ApplyAsync("deterministic_evaluator",
            $"{{\"prediction\": \"{Id(prediction)}\", \"target\": \"{Id(target)}\", \"eval_fn\": \"exact\", \"eval_fn_purpose\": \"exact match\"}}");

        Assert.Equal(2, outputs.Count);
        Assert.Equal([0, 1], outputs.Select(o => tape[o].OutputNr));
        Assert.All(outputs, o => Assert.True(tape[o].RequiresGrad));
        var node = tape.Nodes[tape[outputs[0]].GradFnId!.Value];
        Assert.Equal("DeterministicEvaluatorBackward0", node.Name);
        Assert.Equal(GraphNode.AccumulateGradName, tape.Nodes[node.NextFunctions[0].NodeId!.Value].Name);
        Assert.Equal(new GraphEdge(null, 0), node.NextFunctions[1]);
        Assert.True(new OperationRegistry([new DeterministicEvaluatorOperation(null!)]).IsEvaluatorNode(node.Name));
        Assert.True(new OperationRegistry([new ExactMatchEvaluatorOperation(null!)]).IsEvaluatorNode("ExactMatchEvaluatorBackward0"));
    }

    [Fact]
    public async Task InTheGraph_ASuccessfulEvaluation_BackpropagatesAnEmptyGradient_WithoutAModelCall()
    {
        var tape = EvaluatorTape();
        var prediction = tape.Leaf("[\"a\", \"b\"]", "labels", requiresGrad: true);
        var outputs = await tape.ApplyAsync("exact_match_evaluator",
            $"{{\"prediction\": \"{Id(prediction)}\", \"target\": [\"a\", \"b\"], \"success\": {{\"name\": \"score_at_least\", \"threshold\": 2}}}}");

        await tape.BackwardAsync([outputs[1]], [""]);

        var gradient = Assert.Single(tape.Grad(prediction));
        Assert.True(gradient.IsEmpty);
        Assert.Equal("feedback to labels", gradient.Role);
    }

    [Fact]
    public void SavedContext_HoldsTheSamplesAsText()
    {
        var call = new Call();
        var prediction = call.Variable("[1, 2]", "counts");

        var forward = call.Forward($"{{\"prediction\": \"{Id(prediction)}\", \"target\": [1.0, 3]}}");

        var expected = JsonNode.Parse("""
            {"prediction_role": "counts", "batched": true,
             "samples": [{"prediction": "1", "target": "1.0", "score": "1"}, {"prediction": "2", "target": "3.0", "score": "0"}],
             "explanation": "", "success": false}
            """)!.AsObject();
        expected["explanation"] = forward.SavedContext["explanation"]!.GetValue<string>();
        Assert.True(JsonNode.DeepEquals(expected, forward.SavedContext), forward.SavedContext.ToJsonString());
    }

    [Fact]
    public void UserPrompt_ForAScalar_HasTheRolePredictionTargetScoreAndExplanation()
    {
        var prompt = EvaluatorFeedback.UserPrompt("answer", [new("green", "red", "0")], false, "EXPLAINED");

        Assert.Contains("<ROLE>answer</ROLE>", prompt);
        Assert.Contains("<PREDICTION>green</PREDICTION>\n<TARGET>red</TARGET>\n<SCORE>0</SCORE>", prompt);
        Assert.Contains("<EXPLANATION>EXPLAINED</EXPLANATION>", prompt);
        Assert.DoesNotContain("<EXAMPLE", prompt);
        Assert.Contains("feedback", prompt);
    }

    [Fact]
    public void UserPrompt_ForABatch_HasOneExampleBlockPerItem_AndOmitsMissingTargets()
    {
        var prompt = EvaluatorFeedback.UserPrompt("answers", [new("a", "a", "1"), new("b", null, "False")], true, "EXPLAINED");

        Assert.Contains("<EXAMPLE index=\"0\">\n<PREDICTION>a</PREDICTION>\n<TARGET>a</TARGET>\n<SCORE>1</SCORE>\n</EXAMPLE>", prompt);
        Assert.Contains("<EXAMPLE index=\"1\">\n<PREDICTION>b</PREDICTION>\n<SCORE>False</SCORE>\n</EXAMPLE>", prompt);
        Assert.Contains("batch of 2 predictions", prompt);
        Assert.Contains("<EXPLANATION>EXPLAINED</EXPLANATION>", prompt);
    }

    [Fact]
    public void SystemPrompt_AsksForFeedbackOnly()
    {
        var messages = EvaluatorFeedback.Messages("role", [new("p", "t", "0")], false, "e");

        Assert.Equal(EvaluatorFeedback.SystemPrompt, messages[0].Content);
        Assert.Contains("gradient engine", EvaluatorFeedback.SystemPrompt);
        Assert.Contains("Never write a new or corrected version", EvaluatorFeedback.SystemPrompt);
    }
}
