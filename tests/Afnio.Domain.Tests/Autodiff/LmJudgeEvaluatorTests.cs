using System.Text.Json;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Autodiff.Evaluation;
using Afnio.Domain.Autodiff.Ops;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests.Autodiff;

public sealed class LmJudgeEvaluatorTests
{
    private static readonly string Model = PrefixedId.Format(PrefixedId.Model, PrefixedId.NewGuid());

    private static OpCall Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return LmJudgeEvaluatorOperation.Parse(doc.RootElement);
    }

    private static string Arguments(Guid prediction, Guid content, string extra = "") =>
        $"{{\"model_id\": \"{Model}\", \"messages\": [{{\"role\": \"user\", \"content\": [\"{Tape.Id(content)}\"]}}], "
        + $"\"prediction\": \"{Tape.Id(prediction)}\"{extra}}}";

    [Fact]
    public void Parse_Edges_ArePrediction_Target_ThenMessagesAndInputs()
    {
        var (prediction, target, content, input) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());

        var call = Parse(Arguments(prediction, content,
            $", \"target\": \"{Tape.Id(target)}\", \"inputs\": {{\"q\": \"{Tape.Id(input)}\"}}, \"eval_mode\": false, \"reduction\": \"mean\""));

        Assert.Equal([prediction, target, content, input], call.Variables);
    }

    [Theory]
    [InlineData(", \"target\": \"green\"")]
    [InlineData(", \"target\": [\"green\", \"red\"]")]
    [InlineData(", \"target\": null, \"reduction\": null, \"reduction_fn_purpose\": \"average\"")]
    public void Parse_LiteralTargets_GetNoEdge(string extra)
    {
        var (prediction, content) = (Guid.NewGuid(), Guid.NewGuid());

        Assert.Equal([prediction, content], Parse(Arguments(prediction, content, extra)).Variables);
    }

    [Theory]
    [InlineData(", \"target\": 3", "invalid_type", "target")]
    [InlineData(", \"target\": [\"a\", 1]", "invalid_type", "target")]
    [InlineData(", \"target\": [\"VAR\"]", "invalid_type", "target")]
    [InlineData(", \"eval_mode\": \"yes\"", "invalid_type", "eval_mode")]
    [InlineData(", \"reduction\": \"median\"", "unknown_reduction", "reduction")]
    [InlineData(", \"reduction_fn_purpose\": 1", "invalid_type", "reduction_fn_purpose")]
    [InlineData(", \"inputs\": {\"prediction\": \"x\"}", "reserved_input", "inputs.prediction")]
    [InlineData(", \"inputs\": {\"target\": \"x\"}", "reserved_input", "inputs.target")]
    [InlineData(", \"completion_args\": {\"n\": 3}", "unsupported_argument", "completion_args.n")]
    [InlineData(", \"success_fn\": \"x\"", "unknown_field", "success_fn")]
    public void Parse_RefusesBadArguments(string extra, string code, string param)
    {
        var error = Assert.Throws<AfnioException>(() => Parse(
            Arguments(Guid.NewGuid(), Guid.NewGuid(), extra.Replace("VAR", Tape.Id(Guid.NewGuid()), StringComparison.Ordinal))));

        Assert.Equal(code, error.Code);
        Assert.Equal(param, error.Param);
    }

    [Fact]
    public void Parse_RequiresAPrediction()
    {
        var error = Assert.Throws<AfnioException>(() => Parse(
            $"{{\"model_id\": \"{Model}\", \"messages\": [{{\"role\": \"user\", \"content\": [\"{Tape.Id(Guid.NewGuid())}\"]}}]}}"));

        Assert.Equal("missing_field", error.Code);
        Assert.Equal("prediction", error.Param);
    }

    [Theory]
    [InlineData("{\"score\": 4, \"explanation\": \"Good.\"}", "4", "Good.")]
    [InlineData("```json\n{\"score\": 0.5, \"explanation\": \"Half right.\"}\n```", "0.5", "Half right.")]
    [InlineData("Here is my verdict: {\"explanation\": \"Wrong colour {red}.\", \"score\": false} Hope it helps }", "0", "Wrong colour {red}.")]
    [InlineData("{\"score\": true, \"explanation\": \"Yes\",}", "1", "Yes")]
    [InlineData("{\"score\": \"3\"}", "3", "")]
    [InlineData("{\"note\": {\"a\": 1}} then {\"score\": 2.0, \"explanation\": \"ok\"}", "2.0", "ok")]
    public void ParseReply_FindsTheVerdict(string reply, string score, string explanation)
    {
        var verdict = LmJudgeEvaluatorOperation.ParseReply(reply);

        Assert.Equal(score, verdict.Score.ToPythonString());
        Assert.Equal(explanation, verdict.Explanation);
    }

    [Theory]
    [InlineData("I think it is fine.")]
    [InlineData("{\"explanation\": \"no score\"}")]
    [InlineData("{\"score\": \"high\", \"explanation\": \"x\"}")]
    [InlineData("{\"score\": 1, \"explanation\": ")]
    [InlineData("")]
    public void ParseReply_Garbage_IsAnUpstreamError_QuotingTheReply(string reply)
    {
        var error = Assert.Throws<AfnioException>(() => LmJudgeEvaluatorOperation.ParseReply(reply));

        Assert.Equal(ErrorKind.Upstream, error.Kind);
        Assert.Equal("judge_reply_invalid", error.Code);
        Assert.Contains($"'{reply}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseReply_LongGarbage_IsTruncatedInTheMessage()
    {
        var error = Assert.Throws<AfnioException>(() => LmJudgeEvaluatorOperation.ParseReply(new string('x', 5000)));

        Assert.True(error.Message.Length < 1000);
    }

    [Theory]
    [InlineData("sum", "3")]
    [InlineData("mean", "0.75")]
    [InlineData("min", "0")]
    [InlineData("max", "1")]
    public void BatchResult_ReducesIntScores_AndExplainsWithTheFixedText(string reduction, string score)
    {
        var (data, explanation) = LmJudgeEvaluatorOperation.BatchResult(
            [Scalar.FromInt(1), Scalar.FromInt(0), Scalar.FromInt(1), Scalar.FromInt(1)], new Reduction(reduction), "summation");

        Assert.Equal(score, data.ToString());
        Assert.Equal("The evaluation function, designed using an LM as the judge, compared the <DATA> fields of the predicted variable "
            + "and the target variable across all samples in the batch. These scores were then aggregated using the reduction function "
            + $"'summation', resulting in a final aggregated score: {score}.", explanation);
    }

    [Fact]
    public void BatchResult_SumOfFloats_PrintsAsPython()
    {
        var (data, explanation) = LmJudgeEvaluatorOperation.BatchResult([Scalar.FromFloat(1), Scalar.FromInt(2)], new Reduction("sum"), "summation");

        Assert.Equal("3.0", data.ToString());
        Assert.EndsWith("final aggregated score: 3.0.", explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void BatchResult_ScoresTooLargeToSum_AreAnUnreadableVerdict()
    {
        var error = Assert.Throws<AfnioException>(() =>
            LmJudgeEvaluatorOperation.BatchResult([Scalar.FromInt(long.MaxValue), Scalar.FromInt(1)], new Reduction("sum"), "summation"));

        Assert.Equal("judge_reply_invalid", error.Code);
        Assert.Equal(ErrorKind.Upstream, error.Kind);
    }

    [Fact]
    public void BatchResult_WithoutReduction_KeepsEveryScore()
    {
        var (data, explanation) = LmJudgeEvaluatorOperation.BatchResult([Scalar.FromInt(1), Scalar.FromInt(0)], null, "summation");

        Assert.True(data.IsList);
        Assert.EndsWith("generating individual scores for each pair: [1, 0].", explanation, StringComparison.Ordinal);
    }
}
