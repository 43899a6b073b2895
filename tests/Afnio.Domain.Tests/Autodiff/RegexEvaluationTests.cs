using System.Text.Json;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Autodiff.Evaluation;
using Afnio.Domain.Autodiff.Ops;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests.Autodiff;

/// <summary>
/// The regex function runs patterns on the linear-time NonBacktracking engine when it can, falls back
/// to the backtracking engine for what that engine refuses, and spends at most one budget per evaluation.
/// </summary>
public sealed class RegexEvaluationTests
{
    private static EvalFunction EvalFn(string spec)
    {
        using var doc = JsonDocument.Parse(spec);
        return Scoring.ParseEvalFn(doc.RootElement);
    }

    private static List<(Scalar Prediction, Scalar Target)> Pairs(int count, string prediction, string target = "") =>
        [.. Enumerable.Range(0, count).Select(_ => (Scalar.FromStr(prediction), Scalar.FromStr(target)))];

    [Fact]
    public void ACatastrophicPattern_OverManyItems_IsLinear_AndStaysInsideTheBudget()
    {
        // ^(a+)+$ on 'aaa…b' takes 2^40 steps on a backtracking engine: one item would use any budget up.
        var pairs = Pairs(20_000, new string('a', 40) + "b");
        pairs.Add((Scalar.FromStr(new string('a', 40)), Scalar.FromStr("")));

        var scores = EvalFn("{\"name\": \"regex\", \"pattern\": \"^(a+)+$\"}").ScoreAll(pairs, new RegexLimits(TimeSpan.FromSeconds(5)), CancellationToken.None);

        Assert.Equal(20_000, scores.Take(20_000).Count(s => s == 0));
        Assert.Equal(1, scores[^1]);
    }

    [Fact]
    public void ACatastrophicTargetPattern_OnEveryItem_IsLinearToo()
    {
        var pairs = Pairs(20_000, new string('a', 30) + "b", "^(a+)+$");

        var scores = EvalFn("\"regex\"").ScoreAll(pairs, new RegexLimits(TimeSpan.FromSeconds(5)), CancellationToken.None);

        Assert.All(scores, s => Assert.Equal(0, s));
    }

    [Theory]
    [InlineData("^(\\\\w+) \\\\1$", "hey hey", 1)]
    [InlineData("^(\\\\w+) \\\\1$", "hey you", 0)]
    [InlineData("(?<=order )#\\\\d+", "order #12", 1)]
    [InlineData("(?<=order )#\\\\d+", "item #12", 0)]
    [InlineData("^(?>a+)b", "aaab", 1)]
    public void APatternTheLinearEngineRefuses_RunsOnTheBacktrackingEngine(string pattern, string prediction, int expected) =>
        Assert.Equal(expected, EvalFn($"{{\"name\": \"regex\", \"pattern\": \"{pattern}\"}}").Score(Scalar.FromStr(prediction), Scalar.FromStr("")));

    [Fact]
    public void ABacktrackingPatternThatRunsAway_FailsWithRegexBudgetExceeded()
    {
        // The backreference keeps it off the linear engine; the nested quantifier makes it exponential.
        var fn = EvalFn("{\"name\": \"regex\", \"pattern\": \"^(x?)(a+)+\\\\1$\"}");

        var error = Assert.Throws<AfnioException>(() =>
            fn.ScoreAll(Pairs(3, new string('a', 40) + "!"), new RegexLimits(TimeSpan.FromMilliseconds(50)), CancellationToken.None));

        Assert.Equal("regex_budget_exceeded", error.Code);
        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.Contains("50 ms", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ManyCheapMatches_ShareOneBudget_AndFailWhenTheyUseItUp()
    {
        var fn = EvalFn("\"regex\"");

        var error = Assert.Throws<AfnioException>(() =>
            fn.ScoreAll(Pairs(200_000, "order #123", "#\\d+"), new RegexLimits(TimeSpan.FromMilliseconds(1)), CancellationToken.None));

        Assert.Equal("regex_budget_exceeded", error.Code);
        Assert.Equal("target", error.Param);
    }

    [Fact]
    public async Task ACancelledEvaluation_StopsBetweenItems()
    {
        // Each item takes a while on the backtracking engine, and there are enough for minutes of work.
        var fn = EvalFn("{\"name\": \"regex\", \"pattern\": \"^(x?)(a+)+\\\\1$\"}");
        var pairs = Pairs(100_000, new string('a', 16) + "!");
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var scoring = Task.Run(() => fn.ScoreAll(pairs, new RegexLimits(TimeSpan.FromHours(1)), cancel.Token));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => scoring);
    }

    [Fact]
    public async Task TheEvaluator_PassesItsLimitsAndToken_ToTheRegexFunction()
    {
        var prediction = new VariableSnapshot(PrefixedId.NewGuid(), VariableData.List([.. Enumerable.Repeat(Scalar.FromStr(new string('a', 40) + "!"), 50)]),
            "answer", true, null, 0);
        var variables = new Dictionary<Guid, VariableSnapshot> { [prediction.Id] = prediction };
        var arguments = JsonDocument.Parse($$"""
            {"prediction": "{{Tape.Id(prediction.Id)}}", "target": [{{string.Join(", ", Enumerable.Repeat("\"\"", 50))}}],
             "eval_fn": {"name": "regex", "pattern": "^(x?)(a+)+\\1$"}, "eval_fn_purpose": "regex"}
            """).RootElement;
        var tight = new DeterministicEvaluatorOperation(null!, null, new RegexLimits(TimeSpan.FromMilliseconds(20)));

        var error = await Assert.ThrowsAsync<AfnioException>(() => tight.ForwardAsync(tight.Bind(arguments), variables, CancellationToken.None).AsTask());
        Assert.Equal("regex_budget_exceeded", error.Code);

        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        var roomy = new DeterministicEvaluatorOperation(null!, null, new RegexLimits(TimeSpan.FromHours(1)));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => roomy.ForwardAsync(roomy.Bind(arguments), variables, cancelled.Token).AsTask());
    }
}
