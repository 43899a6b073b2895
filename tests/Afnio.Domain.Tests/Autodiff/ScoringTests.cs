using System.Text.Json;
using Afnio.Domain.Autodiff.Evaluation;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests.Autodiff;

public sealed class ScoringTests
{
    private static EvalFunction EvalFn(string spec)
    {
        using var doc = JsonDocument.Parse(spec);
        return Scoring.ParseEvalFn(doc.RootElement);
    }

    private static Scalar Value(string json) => Json.Data(json).Scalar;

    private static int Score(string spec, string prediction, string target) => EvalFn(spec).Score(Value(prediction), Value(target));

    private static AfnioException ParseError(Action<JsonElement> parse, string spec)
    {
        using var doc = JsonDocument.Parse(spec);
        var root = doc.RootElement;
        return Assert.Throws<AfnioException>(() => parse(root));
    }

    [Theory]
    [InlineData("\"green\"", "\"green\"", 1)]
    [InlineData("\"green\"", "\"red\"", 0)]
    [InlineData("\"a\"", "\"A\"", 0)]
    [InlineData("1", "1.0", 1)]
    [InlineData("1.5", "1.5", 1)]
    [InlineData("\"1\"", "1", 0)]
    [InlineData("2", "3", 0)]
    [InlineData("true", "1", 1)]
    [InlineData("null", "null", 1)]
    [InlineData("null", "\"None\"", 0)]
    [InlineData("9007199254740993", "9007199254740992.0", 0)]
    public void Exact_IsPythonEquality(string prediction, string target, int expected)
    {
        Assert.Equal(expected, Score("\"exact\"", prediction, target));
        Assert.Equal(expected, Scoring.Exact.Score(Value(prediction), Value(target)));
    }

    [Theory]
    [InlineData("\"  Yes \"", "\"yes\"", 1)]
    [InlineData("\"ÉTÉ\"", "\"été\"", 1)]
    [InlineData("\"yes\"", "\"no\"", 0)]
    [InlineData("\"1\"", "1", 1)]
    public void CaseInsensitive_ComparesTrimmedStringForms(string prediction, string target, int expected) =>
        Assert.Equal(expected, Score("\"case_insensitive\"", prediction, target));

    [Theory]
    [InlineData("\"contains\"", "\"The answer is Paris.\"", "\"Paris\"", 1)]
    [InlineData("\"contains\"", "\"The answer is Paris.\"", "\"paris\"", 0)]
    [InlineData("{\"name\": \"contains\", \"case_sensitive\": false}", "\"The answer is Paris.\"", "\"paris\"", 1)]
    [InlineData("{\"name\": \"contains\", \"case_sensitive\": true}", "\"abc\"", "\"d\"", 0)]
    [InlineData("\"contains\"", "\"total: 42\"", "42", 1)]
    public void Contains_FindsTheTargetInThePrediction(string spec, string prediction, string target, int expected) =>
        Assert.Equal(expected, Score(spec, prediction, target));

    [Theory]
    [InlineData("\"regex\"", "\"order #123\"", "\"#\\\\d+\"", 1)]
    [InlineData("\"regex\"", "\"order #abc\"", "\"#\\\\d+\"", 0)]
    [InlineData("{\"name\": \"regex\", \"pattern\": \"^(yes|no)$\"}", "\"yes\"", "\"ignored\"", 1)]
    [InlineData("{\"name\": \"regex\", \"pattern\": \"^(yes|no)$\"}", "\"YES\"", "\"ignored\"", 0)]
    [InlineData("{\"name\": \"regex\", \"pattern\": \"^(yes|no)$\", \"case_sensitive\": false}", "\"YES\"", "\"\"", 1)]
    public void Regex_SearchesThePrediction(string spec, string prediction, string target, int expected) =>
        Assert.Equal(expected, Score(spec, prediction, target));

    [Fact]
    public void Regex_WithAnInvalidPatternParameter_IsRefusedWhenParsed()
    {
        var error = ParseError(e => Scoring.ParseEvalFn(e), "{\"name\": \"regex\", \"pattern\": \"(unclosed\"}");

        Assert.Equal("invalid_eval_fn", error.Code);
        Assert.Equal("eval_fn", error.Param);
        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
    }

    [Fact]
    public void Regex_WithAnInvalidTargetPattern_FailsWithInvalidEvalFn()
    {
        var error = Assert.Throws<AfnioException>(() => Score("\"regex\"", "\"x\"", "\"[a-\""));

        Assert.Equal("invalid_eval_fn", error.Code);
        Assert.Equal("target", error.Param);
    }

    [Fact]
    public void Regex_ThatWouldBacktrackForever_RunsOnTheLinearEngine_AndDoesNotMatch() =>
        Assert.Equal(0, Score("{\"name\": \"regex\", \"pattern\": \"^(a+)+$\"}", $"\"{new string('a', 40)}!\"", "\"\""));

    [Theory]
    [InlineData("\"numeric\"", "\"3.14\"", "3.14", 1)]
    [InlineData("\"numeric\"", "\" 42 \"", "42", 1)]
    [InlineData("\"numeric\"", "1", "1.0000000001", 1)]
    [InlineData("\"numeric\"", "1", "1.001", 0)]
    [InlineData("{\"name\": \"numeric\", \"tolerance\": 0.01}", "1", "1.005", 1)]
    [InlineData("\"numeric\"", "\"abc\"", "1", 0)]
    [InlineData("\"numeric\"", "\"1\"", "\"one\"", 0)]
    [InlineData("\"numeric\"", "\"1e3\"", "1000", 1)]
    [InlineData("\"numeric\"", "null", "0", 0)]
    public void Numeric_ComparesWithinTolerance(string spec, string prediction, string target, int expected) =>
        Assert.Equal(expected, Score(spec, prediction, target));

    [Theory]
    [InlineData("{\"answer\": 42}", "42", 1)]
    [InlineData("{\"answer\": 42}", "42.0", 1)]
    [InlineData("{\"answer\": 42}", "\"42\"", 1)]
    [InlineData("{\"answer\": \"42\"}", "42", 0)]
    [InlineData("{\"answer\": \"positive\"}", "\"positive\"", 1)]
    [InlineData("{\"answer\": \"positive\"}", "\"negative\"", 0)]
    [InlineData("{\"answer\": 42}", "\"{\\\"answer\\\": 42, \\\"other\\\": 1}\"", 1)]
    [InlineData("{\"answer\": 41}", "\"{\\\"answer\\\": 42}\"", 0)]
    [InlineData("{\"answer\": [1, 2]}", "\"{\\\"answer\\\": [1.0, 2]}\"", 1)]
    [InlineData("{\"other\": 42}", "42", 0)]
    [InlineData("not json", "42", 0)]
    public void JsonField_ComparesTheFieldWithTheTarget(string predictionJson, string target, int expected)
    {
        var prediction = JsonSerializer.Serialize(predictionJson);

        Assert.Equal(expected, Score("{\"name\": \"json_field\", \"field\": \"answer\"}", prediction, target));
    }

    [Fact]
    public void JsonField_StripsCodeFences_AndFollowsDotPathsThroughArrays()
    {
        var prediction = JsonSerializer.Serialize("```json\n{\"result\": {\"items\": [{\"label\": \"spam\"}]}}\n```");

        Assert.Equal(1, Score("{\"name\": \"json_field\", \"field\": \"result.items.0.label\"}", prediction, "\"spam\""));
        Assert.Equal(0, Score("{\"name\": \"json_field\", \"field\": \"result.items.1.label\"}", prediction, "\"spam\""));
    }

    [Theory]
    [InlineData("```json\n{\"a\": 1}\n```", "{\"a\": 1}")]
    [InlineData("```\n[1]\n```", "[1]")]
    [InlineData("  {\"a\": 1}  ", "{\"a\": 1}")]
    public void StripCodeFence_RemovesMarkdownFences(string text, string expected) =>
        Assert.Equal(expected, Scoring.StripCodeFence(text));

    [Theory]
    [InlineData("\"levenshtein\"", "unknown_eval_fn")]
    [InlineData("{\"name\": \"fuzzy\"}", "unknown_eval_fn")]
    [InlineData("42", "invalid_eval_fn")]
    [InlineData("{\"pattern\": \"x\"}", "invalid_eval_fn")]
    [InlineData("{\"name\": \"exact\", \"strict\": true}", "invalid_eval_fn")]
    [InlineData("{\"name\": \"contains\", \"case_sensitive\": \"no\"}", "invalid_eval_fn")]
    [InlineData("{\"name\": \"numeric\", \"tolerance\": -1}", "invalid_eval_fn")]
    [InlineData("{\"name\": \"json_field\"}", "invalid_eval_fn")]
    [InlineData("{\"name\": \"regex\", \"pattern\": 3}", "invalid_eval_fn")]
    public void ParseEvalFn_RefusesBadSpecs(string spec, string code)
    {
        var error = ParseError(e => Scoring.ParseEvalFn(e), spec);

        Assert.Equal(code, error.Code);
        Assert.Equal("eval_fn", error.Param);
    }

    [Fact]
    public void UnknownNames_ListTheAvailableOnes()
    {
        Assert.Equal("Unknown evaluation function 'levenshtein'. Available evaluation functions: exact, case_insensitive, contains, regex, numeric, json_field.",
            ParseError(e => Scoring.ParseEvalFn(e), "\"levenshtein\"").Message);
        Assert.Equal("Unknown reduction 'median'. Available reductions: sum, mean, min, max.",
            ParseError(e => Scoring.ParseReduction(e), "\"median\"").Message);
        Assert.Equal("Unknown success condition 'perfect'. Available success conditions: all_correct, any_correct, score_at_least.",
            ParseError(e => Scoring.ParseSuccess(e), "\"perfect\"").Message);
    }

    [Theory]
    [InlineData("\"sum\"", new[] { 1, 0, 1 }, "2")]
    [InlineData("{\"name\": \"sum\"}", new[] { 1, 1 }, "2")]
    [InlineData("\"mean\"", new[] { 1, 0 }, "0.5")]
    [InlineData("\"mean\"", new[] { 1, 1 }, "1.0")]
    [InlineData("\"mean\"", new[] { 1, 0, 0 }, "0.3333333333333333")]
    [InlineData("\"min\"", new[] { 1, 0, 1 }, "0")]
    [InlineData("\"max\"", new[] { 0, 1, 0 }, "1")]
    public void Reductions_PrintAsPythonDoes(string spec, int[] scores, string expected)
    {
        using var doc = JsonDocument.Parse(spec);

        Assert.Equal(expected, Scoring.ParseReduction(doc.RootElement)!.Reduce(scores).ToPythonString());
    }

    [Fact]
    public void Reduction_NullMeansNone_AndBadSpecsAreRefused()
    {
        using var doc = JsonDocument.Parse("null");

        Assert.Null(Scoring.ParseReduction(doc.RootElement));
        Assert.Equal("unknown_reduction", ParseError(e => Scoring.ParseReduction(e), "\"median\"").Code);
        Assert.Equal("invalid_reduction", ParseError(e => Scoring.ParseReduction(e), "{\"name\": \"sum\", \"start\": 1}").Code);
        Assert.Equal("invalid_reduction", ParseError(e => Scoring.ParseReduction(e), "7").Code);
    }

    [Theory]
    [InlineData("\"all_correct\"", new[] { 1, 1 }, null, true)]
    [InlineData("\"all_correct\"", new[] { 1, 0 }, null, false)]
    [InlineData("\"any_correct\"", new[] { 0, 1 }, null, true)]
    [InlineData("\"any_correct\"", new[] { 0, 0 }, null, false)]
    [InlineData("{\"name\": \"score_at_least\", \"threshold\": 2}", new[] { 1, 1, 0 }, 2.0, true)]
    [InlineData("{\"name\": \"score_at_least\", \"threshold\": 3}", new[] { 1, 1, 0 }, 2.0, false)]
    [InlineData("{\"name\": \"score_at_least\", \"threshold\": 0.5}", new[] { 1, 0 }, null, true)]
    [InlineData("{\"name\": \"score_at_least\", \"threshold\": 0.6}", new[] { 1, 0 }, null, false)]
    public void SuccessConditions_JudgeTheScores(string spec, int[] scores, double? reduced, bool expected)
    {
        using var doc = JsonDocument.Parse(spec);
        var condition = Scoring.ParseSuccess(doc.RootElement)!;

        Assert.Equal(expected, condition.IsMet([.. scores.Select(s => Scalar.FromInt(s))], reduced is { } r ? Scalar.FromFloat(r) : null));
    }

    [Theory]
    [InlineData("\"perfect\"", "unknown_success_condition")]
    [InlineData("\"score_at_least\"", "invalid_success_condition")]
    [InlineData("{\"name\": \"score_at_least\", \"threshold\": \"high\"}", "invalid_success_condition")]
    [InlineData("{\"name\": \"all_correct\", \"threshold\": 1}", "invalid_success_condition")]
    [InlineData("[]", "invalid_success_condition")]
    public void ParseSuccess_RefusesBadSpecs(string spec, string code)
    {
        var error = ParseError(e => Scoring.ParseSuccess(e), spec);

        Assert.Equal(code, error.Code);
        Assert.Equal("success", error.Param);
    }
}
