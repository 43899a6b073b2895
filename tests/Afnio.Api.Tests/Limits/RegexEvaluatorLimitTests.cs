namespace Afnio.Api.Tests.Limits;

/// <summary>The deterministic evaluator's regex function over REST: linear when it can be, and one budget per call (Afnio:Evaluation).</summary>
public sealed class RegexEvaluatorLimitTests(RegexEvaluatorLimitTests.OneSecondBudgetApp app) : IClassFixture<RegexEvaluatorLimitTests.OneSecondBudgetApp>
{
    private const int Items = 10_000;

    public sealed class OneSecondBudgetApp : AfnioApiFactory
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio:Limits:RegexBudgetMs"] = "1000",
        };
    }

    [Fact]
    public async Task ACatastrophicPattern_OverManyItems_AnswersWithItsScore()
    {
        var project = await app.CreateProjectAsync();
        var items = Enumerable.Repeat(new string('a', 40) + "b", Items).Append(new string('a', 40)).ToArray();
        var prediction = await project.VariableAsync(items, "answers", requiresGrad: true);

        var evaluation = await project.OutputsAsync("deterministic_evaluator", new
        {
            prediction,
            target = Enumerable.Repeat("", items.Length).ToArray(),
            eval_fn = new { name = "regex", pattern = "^(a+)+$" },
            eval_fn_purpose = "only a's",
        });

        Assert.Equal(1, (await project.Client.GetJsonAsync($"/v1/variables/{evaluation[0]}")).GetProperty("data").GetInt32());
    }

    [Fact]
    public async Task APatternThatRunsAway_OnTheBacktrackingEngine_Is400RegexBudgetExceeded_AndStoresNoOutput()
    {
        var project = await app.CreateProjectAsync();
        var prediction = await project.VariableAsync(Enumerable.Repeat(new string('a', 40) + "!", 20).ToArray(), "answers", requiresGrad: true);

        using var response = await project.Client.PostAsJsonAsync("/v1/functions/deterministic_evaluator", new
        {
            prediction,
            target = Enumerable.Repeat("", 20).ToArray(),
            eval_fn = new { name = "regex", pattern = "^(x?)(a+)+\\1$" }, // the backreference keeps it off the linear engine
            eval_fn_purpose = "only a's",
        });

        var problem = await response.AssertProblemAsync(400, "regex_budget_exceeded");
        Assert.Contains("1000 ms", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("eval_fn", problem.GetProperty("param").GetString());
        Assert.Single((await project.Client.GetJsonAsync("/v1/variables")).GetProperty("data").EnumerateArray()); // the prediction only
    }
}
