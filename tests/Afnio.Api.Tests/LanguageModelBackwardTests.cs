using System.Net.Http.Json;
using System.Text.Json;
using Afnio.Domain.LanguageModels;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>Backward passes through chat completions and evaluators: the worker asks the fake provider for feedback.</summary>
[Collection(WorkerHosts.Name)]
public sealed class LanguageModelBackwardTests : IClassFixture<ModelWorkerApp>
{
    private const string SystemRole = "system prompt for translation";
    private readonly ModelWorkerApp _app;

    public LanguageModelBackwardTests(ModelWorkerApp app)
    {
        _app = app;
        app.Fake.Reset();
        app.Fake.Default = Reply;
    }

    // Forward calls translate; feedback calls are told apart by their system prompt.
    private static FakeReply Reply(JsonElement request) => FakeOpenAiServer.MessageText(request, "system") switch
    {
        EvaluatorFeedback.SystemPrompt => FakeReply.Text("Reassess the criteria that led to the initial prediction of 'green'."),
        FeedbackPrompts.GradientEngineSystemPrompt => FakeReply.Text("Ask for formal Italian."),
        _ => FakeReply.Text(FakeOpenAiServer.MessageText(request, "user") switch
        {
            "Hello" => "Ciao",
            "Good night" => "Buonanotte",
            var other => other,
        }),
    };

    private static int FeedbackCalls(IEnumerable<JsonElement> requests) => requests.Count(r =>
        FakeOpenAiServer.MessageText(r, "system") is EvaluatorFeedback.SystemPrompt or FeedbackPrompts.GradientEngineSystemPrompt);

    [Fact]
    public async Task BackwardFromAnEvaluator_ReachesTheSystemPrompt_WithOneGradientForTheWholeBatch()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        await _app.UseBackwardModelAsync(project);
        var system = await project.VariableAsync("Translate to Italian.", SystemRole, requiresGrad: true);
        var user = await project.VariableAsync("{sentence}", "user message");
        var translation = await project.OutputAsync("chat_completion", new
        {
            model_id = model,
            messages = new object[] { new { role = "system", content = new[] { system } }, new { role = "user", content = new[] { user } } },
            inputs = new { sentence = new[] { "Hello", "Good night" } },
        });
        var target = await project.VariableAsync(new[] { "Ciao", "Buona notte" }, "reference translation");
        var evaluation = await project.OutputsAsync("exact_match_evaluator", new { prediction = translation, target });
        var explanation = await project.Client.GetJsonAsync($"/v1/variables/{evaluation[1]}");
        Assert.Equal(1, (await project.Client.GetJsonAsync($"/v1/variables/{evaluation[0]}")).GetProperty("data").GetInt32());
        Assert.Equal("The evaluation function, designed for 'exact match', compared the <DATA> fields of the predicted variable and the " +
            "target variable across all samples in the batch, generating individual scores for each pair. These scores were then " +
            "aggregated using the reduction function 'summation', resulting in a final aggregated score: 1.",
            explanation.GetProperty("data").GetString());
        Assert.Equal("Evaluation result explanation of response from the language model", explanation.GetProperty("role").GetString());
        var forwardCalls = _app.Fake.Requests.Count;

        var job = await project.BackwardAsync(new { variables = new[] { evaluation[1] } });
        var done = await project.WaitForJobAsync(job.GetProperty("id").GetString()!);

        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal(2, done.GetProperty("usage").GetProperty("calls").GetInt64()); // the job's own calls, not the forward ones
        var grads = await project.GradListAsync(system);
        var grad = Assert.Single(grads.EnumerateArray());
        Assert.Equal("Ask for formal Italian.", grad.GetProperty("data").GetString());
        Assert.Equal($"feedback to {SystemRole}", grad.GetProperty("role").GetString());
        Assert.Empty(await project.GradTextsAsync(user));
        var feedback = _app.Fake.Requests.Skip(forwardCalls).ToList();
        Assert.Equal(2, feedback.Count); // one for the prediction, one for the system prompt: not one per sample
        var systemFeedback = FakeOpenAiServer.MessageText(feedback.Single(r =>
            FakeOpenAiServer.MessageText(r, "system") == FeedbackPrompts.GradientEngineSystemPrompt), "user");
        foreach (var part in new[] { SystemRole, "Translate to Italian.", "Hello", "Buonanotte", "Reassess the criteria", "<VARIABLE>" })
        {
            Assert.Contains(part, systemFeedback, StringComparison.Ordinal);
        }

        Assert.All(feedback, r => Assert.Equal(0, r.GetProperty("temperature").GetDouble())); // the backward model's completion args
        await using var db = _app.CreateDbContext();
        var jobGuid = Guid.ParseExact(job.GetProperty("id").GetString()!["job_".Length..], "N");
        Assert.Equal(2, await db.ModelCalls.CountAsync(c => c.JobId == jobGuid && c.Status == "succeeded"));
    }

    [Fact]
    public async Task ExactMatch_GreenVersusRed_GivesTheReferenceWordings_AndTheFeedbackGoesToThePrediction()
    {
        var project = await _app.CreateProjectAsync();
        await _app.UseBackwardModelAsync(project);
        var prediction = await project.VariableAsync("green", "color prediction", requiresGrad: true);
        var evaluation = await project.OutputsAsync("exact_match_evaluator", new { prediction, target = "red" });
        var score = await project.Client.GetJsonAsync($"/v1/variables/{evaluation[0]}");
        var explanation = await project.Client.GetJsonAsync($"/v1/variables/{evaluation[1]}");
        Assert.Equal(0, score.GetProperty("data").GetInt32());
        Assert.Equal("Evaluation result score of color prediction", score.GetProperty("role").GetString());
        Assert.Equal("The evaluation function, designed for 'exact match', compared the <DATA> field of the predicted variable ('green') " +
            "with the <DATA> field of the target variable ('red'), resulting in a score: 0.", explanation.GetProperty("data").GetString());

        var job = await project.BackwardAsync(new { variables = new[] { evaluation[0] } });
        Assert.Equal("succeeded", (await project.WaitForJobAsync(job.GetProperty("id").GetString()!)).GetProperty("status").GetString());

        var grad = Assert.Single((await project.GradListAsync(prediction)).EnumerateArray());
        Assert.Equal("Reassess the criteria that led to the initial prediction of 'green'.", grad.GetProperty("data").GetString());
        Assert.Equal("feedback to color prediction", grad.GetProperty("role").GetString());
        var asked = FakeOpenAiServer.MessageText(Assert.Single(_app.Fake.Requests), "user");
        Assert.Contains("green", asked, StringComparison.Ordinal);
        Assert.Contains("red", asked, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SuccessfulDeterministicEvaluation_ShortCircuitsBackward_ToAnEmptyGradient_WithoutAModelCall()
    {
        var project = await _app.CreateProjectAsync();
        await _app.UseBackwardModelAsync(project);
        var prediction = await project.VariableAsync("""{"urgency": "high"}""", "urgency answer", requiresGrad: true);
        var evaluation = await project.OutputsAsync("deterministic_evaluator", new
        {
            prediction,
            target = "high",
            eval_fn = new { name = "json_field", field = "urgency" },
            eval_fn_purpose = "urgency match",
            success = "all_correct",
        });
        Assert.Equal(1, (await project.Client.GetJsonAsync($"/v1/variables/{evaluation[0]}")).GetProperty("data").GetInt32());

        var job = await project.BackwardAsync(new { variables = new[] { evaluation[1] } });
        Assert.Equal("succeeded", (await project.WaitForJobAsync(job.GetProperty("id").GetString()!)).GetProperty("status").GetString());

        Assert.Equal([""], await project.GradTextsAsync(prediction));
        Assert.Empty(_app.Fake.Requests);
    }

    [Fact]
    public async Task BackwardWithoutABackwardModel_FailsWithAfniosMessage()
    {
        var project = await _app.CreateProjectAsync();
        var prediction = await project.VariableAsync("green", "color prediction", requiresGrad: true);
        var evaluation = await project.OutputsAsync("exact_match_evaluator", new { prediction, target = "red" });

        var job = await project.BackwardAsync(new { variables = new[] { evaluation[1] } });
        var failed = await project.WaitForJobAsync(job.GetProperty("id").GetString()!);

        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal("backward_model_not_set", failed.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("No global model client set for backward pass. Call `set_backward_model_client` to define one.",
            failed.GetProperty("error").GetProperty("message").GetString());
        Assert.Empty(await project.GradTextsAsync(prediction));
        Assert.Empty(_app.Fake.Requests);
    }

    [Fact]
    public async Task FeedbackCallsThatKeepFailing_FailTheJob_AndAppendNothing()
    {
        var project = await _app.CreateProjectAsync();
        await _app.UseBackwardModelAsync(project);
        var prediction = await project.VariableAsync("green", "color prediction", requiresGrad: true);
        var evaluation = await project.OutputsAsync("exact_match_evaluator", new { prediction, target = "red" });
        _app.Fake.Default = _ => FakeReply.ServerError();

        var job = await project.BackwardAsync(new { variables = new[] { evaluation[1] } });
        var failed = await project.WaitForJobAsync(job.GetProperty("id").GetString()!);

        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal("model_call_failed", failed.GetProperty("error").GetProperty("code").GetString());
        Assert.Empty(await project.GradTextsAsync(prediction));
        Assert.Equal(4, _app.Fake.Requests.Count);
    }

    [Fact]
    public async Task LmJudge_ScoresEachSampleConcurrently_AndInEvalModeFalse_GivesTheJudgePromptFeedback()
    {
        var project = await _app.CreateProjectAsync();
        var judge = await _app.RegisterModelAsync(project, new { model = "gpt-4o-mini" });
        await _app.UseBackwardModelAsync(project);
        var prediction = await project.VariableAsync(new[] { "Ciao", "Buongiorno" }, "translation", requiresGrad: true);
        var instructions = await project.VariableAsync("Judge the translation of {target}: {prediction}. Answer JSON {\"score\": 0|1, \"explanation\": \"…\"}.",
            "judge instructions", requiresGrad: true);
        _app.Fake.Default = request =>
        {
            var system = FakeOpenAiServer.MessageText(request, "system");
            if (system == FeedbackPrompts.GradientEngineSystemPrompt)
            {
                return FakeReply.Text("Be stricter about greetings.");
            }

            return FakeOpenAiServer.MessageText(request, "system").Contains("Buongiorno", StringComparison.Ordinal)
                ? FakeReply.Text("```json\n{\"score\": false, \"explanation\": \"wrong time of day\"}\n```", TimeSpan.FromMilliseconds(150))
                : FakeReply.Text("{\"score\": 1, \"explanation\": \"correct\"}", TimeSpan.FromMilliseconds(150));
        };

        var evaluation = await project.OutputsAsync("lm_judge_evaluator", new
        {
            model_id = judge,
            messages = new[] { new { role = "system", content = new[] { instructions } } },
            prediction,
            target = new[] { "Hello", "Good night" },
            eval_mode = false,
        });

        Assert.Equal(1, (await project.Client.GetJsonAsync($"/v1/variables/{evaluation[0]}")).GetProperty("data").GetInt32());
        Assert.Equal("The evaluation function, designed using an LM as the judge, compared the <DATA> fields of the predicted variable and " +
            "the target variable across all samples in the batch. These scores were then aggregated using the reduction function " +
            "'summation', resulting in a final aggregated score: 1.",
            (await project.Client.GetJsonAsync($"/v1/variables/{evaluation[1]}")).GetProperty("data").GetString());
        Assert.Equal(2, _app.Fake.PeakConcurrency);
        Assert.Contains(_app.Fake.Requests, r => FakeOpenAiServer.MessageText(r, "system") ==
            "Judge the translation of Good night: Buongiorno. Answer JSON {\"score\": 0|1, \"explanation\": \"…\"}.");

        var job = await project.BackwardAsync(new { variables = new[] { evaluation[1] } });
        Assert.Equal("succeeded", (await project.WaitForJobAsync(job.GetProperty("id").GetString()!)).GetProperty("status").GetString());
        Assert.Equal(["Be stricter about greetings."], await project.GradTextsAsync(instructions));
        Assert.Empty(await project.GradTextsAsync(prediction));
        Assert.Equal(1, FeedbackCalls(_app.Fake.Requests));
    }

    [Fact]
    public async Task LmJudge_InEvalMode_GivesOnlyThePredictionFeedback_InOneCall()
    {
        var project = await _app.CreateProjectAsync();
        var judge = await _app.RegisterModelAsync(project);
        await _app.UseBackwardModelAsync(project);
        var prediction = await project.VariableAsync("Buongiorno", "translation", requiresGrad: true);
        var instructions = await project.VariableAsync("Is '{prediction}' a good translation of '{target}'? Answer JSON.", "judge instructions", requiresGrad: true);
        _app.Fake.Default = request => FakeOpenAiServer.MessageText(request, "user").Contains("<VARIABLE>", StringComparison.Ordinal)
            ? FakeReply.Text("Use the evening greeting.")
            : FakeReply.Text("{\"score\": 0, \"explanation\": \"It is a morning greeting.\"}");

        var evaluation = await project.OutputsAsync("lm_judge_evaluator", new
        {
            model_id = judge,
            messages = new[] { new { role = "user", content = new[] { instructions } } },
            prediction,
            target = "Good night",
        });
        var explanation = await project.Client.GetJsonAsync($"/v1/variables/{evaluation[1]}");
        Assert.Equal("It is a morning greeting.", explanation.GetProperty("data").GetString());
        Assert.Equal("Evaluation result explanation of translation", explanation.GetProperty("role").GetString());
        Assert.Equal(0, (await project.Client.GetJsonAsync($"/v1/variables/{evaluation[0]}")).GetProperty("data").GetInt32());

        var job = await project.BackwardAsync(new { variables = new[] { evaluation[0] } });
        Assert.Equal("succeeded", (await project.WaitForJobAsync(job.GetProperty("id").GetString()!)).GetProperty("status").GetString());

        var grad = Assert.Single((await project.GradListAsync(prediction)).EnumerateArray());
        Assert.Equal("Use the evening greeting.", grad.GetProperty("data").GetString());
        Assert.Equal("feedback to translation", grad.GetProperty("role").GetString());
        Assert.Empty(await project.GradTextsAsync(instructions));
        Assert.Equal(2, _app.Fake.Requests.Count); // the verdict and one feedback call
        Assert.Contains("It is a morning greeting.", FakeOpenAiServer.MessageText(_app.Fake.Requests[1], "user"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LmJudge_EvalModeCanBeAVariable_WhoseEdgeTakesNoGradient()
    {
        var project = await _app.CreateProjectAsync();
        var judge = await _app.RegisterModelAsync(project);
        await _app.UseBackwardModelAsync(project);
        var prediction = await project.VariableAsync("Buongiorno", "translation", requiresGrad: true);
        var instructions = await project.VariableAsync("Judge '{prediction}'. Answer JSON.", "judge instructions", requiresGrad: true);
        var evalMode = await project.VariableAsync(false, "evaluation mode", requiresGrad: true);
        _app.Fake.Default = request => FakeOpenAiServer.MessageText(request, "user").Contains("<VARIABLE>", StringComparison.Ordinal)
            ? FakeReply.Text("Ask about the time of day.")
            : FakeReply.Text("{\"score\": 0, \"explanation\": \"Wrong greeting.\"}");

        var call = await project.CallAsync("lm_judge_evaluator", new
        {
            model_id = judge,
            messages = new[] { new { role = "user", content = new[] { instructions } } },
            prediction,
            eval_mode = evalMode,
        });
        Assert.Equal(3, call.GetProperty("node").GetProperty("next_functions").GetArrayLength()); // prediction, instructions, eval_mode
        var score = call.GetProperty("outputs")[0].GetProperty("id").GetString()!;

        var job = await project.BackwardAsync(new { variables = new[] { score } });
        Assert.Equal("succeeded", (await project.WaitForJobAsync(job.GetProperty("id").GetString()!)).GetProperty("status").GetString());

        // eval_mode false: the judge's own instructions are criticised, not the prediction.
        Assert.Equal(["Ask about the time of day."], await project.GradTextsAsync(instructions));
        Assert.Empty(await project.GradTextsAsync(prediction));
        Assert.Empty(await project.GradTextsAsync(evalMode));
    }

    [Theory]
    [InlineData("I think it is fine.")]
    [InlineData("""{"score": 1, "explanation": "a\u0000b"}""")]
    [InlineData("""{"score": 1, "explanation": "\ud800"}""")]
    [InlineData("""{"score": "\ud800", "explanation": "x"}""")]
    [InlineData("""{"score": "high", "explanation": "x"}""")]
    public async Task LmJudge_UnreadableVerdicts_Fail502(string verdict)
    {
        var project = await _app.CreateProjectAsync();
        var judge = await _app.RegisterModelAsync(project);
        var prediction = await project.VariableAsync("Ciao", "translation");
        var instructions = await project.VariableAsync("Judge {prediction}.", "judge instructions");
        _app.Fake.Default = _ => FakeReply.Text(verdict);

        using var response = await project.Client.PostAsJsonAsync("/v1/functions/lm_judge_evaluator", new
        {
            model_id = judge,
            messages = new[] { new { role = "user", content = new[] { instructions } } },
            prediction,
        });

        var problem = await response.AssertProblemAsync(502, "judge_reply_invalid");
        Assert.Contains("score", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
