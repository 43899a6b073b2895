using System.Text.Json;
using System.Text.RegularExpressions;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Optimizers;

namespace Afnio.Api.Tests;

/// <summary>
/// TGD steps against the fake provider, whose optimizer model follows the feedback it is given: it
/// upper-cases on "capital letters", translates on "Italian" and appends "!" on "more emphasis".
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed partial class OptimizerStepTests : IClassFixture<ModelWorkerApp>
{
    private const string Role = "system prompt for sentiment classification";
    private readonly ModelWorkerApp _app;

    public OptimizerStepTests(ModelWorkerApp app)
    {
        _app = app;
        app.Fake.Reset();
        app.Fake.Default = Optimizer;
    }

    [Fact]
    public async Task UseOnlyCapitalLetters_TurnsInitialValueIntoINITIALVALUE()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var parameter = await ParameterAsync(project, "Initial value");
        var gradient = await GradientAsync(project, parameter, "Use only capital letters");
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = new[] { parameter }, model_id = model, momentum = 2 });

        var job = await StepAsync(project, optimizer);

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var result = job.GetProperty("result");
        Assert.Equal("Optimizer step executed successfully.", result.GetProperty("message").GetString());
        Assert.Equal(1, result.GetProperty("updated").GetInt32());
        Assert.Equal("INITIAL VALUE", await DataAsync(project, parameter));
        Assert.Equal(["Use only capital letters"], await project.GradTextsAsync(parameter)); // the step does not clear gradients

        var request = Assert.Single(TgdRequests());
        Assert.Equal(TgdPrompts.SystemPrompt, FakeOpenAiServer.MessageText(request, "system"));
        var prompt = FakeOpenAiServer.MessageText(request, "user");
        Assert.Contains($"<ROLE>{Role}</ROLE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<VARIABLE>Initial value</VARIABLE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<FEEDBACK index=\"0\">Use only capital letters</FEEDBACK>", prompt, StringComparison.Ordinal);
        Assert.Equal("gpt-4o", request.GetProperty("model").GetString());

        // The state keeps a Parameter snapshot of the value before the step and the same gradient variables.
        var state = Assert.Single((await project.Client.GetJsonAsync($"/v1/optimizers/{optimizer}")).GetProperty("state").EnumerateArray());
        Assert.Equal(parameter, state.GetProperty("param_id").GetString());
        var entry = Assert.Single(state.GetProperty("momentum_buffer").EnumerateArray());
        Assert.Equal([gradient], entry.GetProperty("gradient_ids").EnumerateArray().Select(g => g.GetString()));
        var snapshot = await project.Client.GetJsonAsync($"/v1/variables/{entry.GetProperty("snapshot_id").GetString()}");
        Assert.Equal("Initial value", snapshot.GetProperty("data").GetString());
        Assert.Equal(Role, snapshot.GetProperty("role").GetString());
        Assert.True(snapshot.GetProperty("is_parameter").GetBoolean());
        Assert.Equal(entry.GetProperty("snapshot_id").GetString(), result.GetProperty("parameters")[0].GetProperty("snapshot_id").GetString());

        // Usage goes to the job and to the optimizer's model client.
        Assert.Equal(1, job.GetProperty("usage").GetProperty("calls").GetInt64());
        var usage = await project.Client.GetJsonAsync($"/v1/models/{model}/usage");
        Assert.Equal(1, usage.GetProperty("usage").GetProperty("calls").GetInt64());
        Assert.Equal(15, usage.GetProperty("usage").GetProperty("total_tokens").GetInt64());
        var cost = job.GetProperty("usage").GetProperty("cost").GetProperty("amount").GetDecimal();
        Assert.True(cost > 0m, "gpt-4o has a price: the step's call costs something");
        Assert.Equal(cost, usage.GetProperty("usage").GetProperty("cost").GetProperty("amount").GetDecimal());
    }

    [Fact]
    public async Task TwoGradients_Combine_IntoVALOREINIZIALE()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var parameter = await ParameterAsync(project, "Initial value");
        await GradientAsync(project, parameter, "Translate the parameter to Italian");
        await GradientAsync(project, parameter, "Only use capital letters");
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = new[] { parameter }, model_id = model });

        var job = await StepAsync(project, optimizer);

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal("VALORE INIZIALE", await DataAsync(project, parameter));
        var prompt = FakeOpenAiServer.MessageText(Assert.Single(TgdRequests()), "user");
        Assert.Contains("<FEEDBACK index=\"0\">Translate the parameter to Italian</FEEDBACK>", prompt, StringComparison.Ordinal);
        Assert.Contains("<FEEDBACK index=\"1\">Only use capital letters</FEEDBACK>", prompt, StringComparison.Ordinal);
        // momentum 0 keeps no history: no snapshot, an empty window.
        var state = (await project.Client.GetJsonAsync($"/v1/optimizers/{optimizer}")).GetProperty("state");
        Assert.Empty(Assert.Single(state.EnumerateArray()).GetProperty("momentum_buffer").EnumerateArray());
    }

    [Fact]
    public async Task MomentumWindow_KeepsExactlyKEntries_OldestFirst_AndShowsThemToTheModel()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var parameter = await ParameterAsync(project, "v");
        var gradient = await GradientAsync(project, parameter, "Give it more emphasis");
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = new[] { parameter }, model_id = model, momentum = 2 });

        for (var step = 1; step <= 4; step++)
        {
            Assert.Equal("succeeded", (await StepAsync(project, optimizer)).GetProperty("status").GetString());
            Assert.Equal("v" + new string('!', step), await DataAsync(project, parameter));
        }

        var buffer = Assert.Single((await project.Client.GetJsonAsync($"/v1/optimizers/{optimizer}")).GetProperty("state").EnumerateArray())
            .GetProperty("momentum_buffer").EnumerateArray().ToList();
        Assert.Equal(2, buffer.Count);
        Assert.Equal(["v!!", "v!!!"], await Task.WhenAll(buffer.Select(async e =>
            (await project.Client.GetJsonAsync($"/v1/variables/{e.GetProperty("snapshot_id").GetString()}")).GetProperty("data").GetString()!)));
        Assert.All(buffer, e => Assert.Equal([gradient], e.GetProperty("gradient_ids").EnumerateArray().Select(g => g.GetString())));

        // The fourth step saw the two values before it, oldest first, with their feedback.
        var prompts = TgdRequests().Select(r => FakeOpenAiServer.MessageText(r, "user")).ToList();
        Assert.Equal(4, prompts.Count);
        Assert.DoesNotContain("PAST_ITERATION", prompts[0], StringComparison.Ordinal);
        var last = prompts[3];
        Assert.DoesNotContain("<VALUE>v</VALUE>", last, StringComparison.Ordinal);
        Assert.True(last.IndexOf("<VALUE>v!</VALUE>", StringComparison.Ordinal) is var first and >= 0
            && first < last.IndexOf("<VALUE>v!!</VALUE>", StringComparison.Ordinal), last);
        Assert.Contains("<FEEDBACK>Give it more emphasis</FEEDBACK>", last, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StateDict_RoundTripsThroughGetPutGet_AndTheLoadedHistoryDrivesTheNextStep()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var trained = await ParameterAsync(project, "v");
        await GradientAsync(project, trained, "Give it more emphasis");
        var source = await CreateAsync(project, new { type = "tgd", @params = new[] { trained }, model_id = model, momentum = 3, constraints = new[] { "Be brief." } });
        await StepAsync(project, source);
        await StepAsync(project, source);
        var saved = await project.Client.GetJsonAsync($"/v1/optimizers/{source}/state_dict");
        Assert.Equal(2, saved.GetProperty("state").GetProperty("0").GetProperty("momentum_buffer").GetArrayLength());

        var fresh = await ParameterAsync(project, "w");
        await GradientAsync(project, fresh, "Give it more emphasis");
        var target = await CreateAsync(project, new { type = "tgd", @params = new[] { fresh }, model_id = model });
        var loaded = await project.Client.PutJsonAsync($"/v1/optimizers/{target}/state_dict", saved);
        var again = await project.Client.GetJsonAsync($"/v1/optimizers/{target}/state_dict");

        Assert.Equal(Without(saved, "optimizer_id"), Without(again, "optimizer_id"));
        Assert.Equal(3, loaded.GetProperty("param_groups")[0].GetProperty("momentum").GetInt32());
        Assert.Equal(fresh, loaded.GetProperty("state")[0].GetProperty("param_id").GetString());

        // The loaded window is the target's own now: its next step shows the source's past values and pushes onto them.
        _app.Fake.Reset();
        _app.Fake.Default = Optimizer;
        await StepAsync(project, target);
        var prompt = FakeOpenAiServer.MessageText(Assert.Single(TgdRequests()), "user");
        Assert.Contains("<VALUE>v</VALUE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<VALUE>v!</VALUE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<CONSTRAINT>Be brief.</CONSTRAINT>", prompt, StringComparison.Ordinal);
        Assert.Equal("w!", await DataAsync(project, fresh));
        var state = (await project.Client.GetJsonAsync($"/v1/optimizers/{target}/state_dict")).GetProperty("state").GetProperty("0");
        Assert.Equal(3, state.GetProperty("momentum_buffer").GetArrayLength());
    }

    [Fact]
    public async Task Constraints_TextAndVariables_ReachThePrompt()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var parameter = await ParameterAsync(project, "Classify the email.");
        await GradientAsync(project, parameter, "Use only capital letters");
        var rule = await project.VariableAsync("Keep it under 50 words.", "optimizer constraint");
        var optimizer = await CreateAsync(project, new
        {
            type = "tgd",
            @params = new[] { parameter },
            model_id = model,
            constraints = new[] { "Do not use curly braces.", rule },
        });
        using (var patch = await project.Client.PatchAsJsonAsync($"/v1/variables/{rule}", new { data = "Keep it under 40 words." }))
        {
            await HttpJson.EnsureSuccessAsync(patch); // constraints are read at each step, not at creation
        }

        await StepAsync(project, optimizer);

        var prompt = FakeOpenAiServer.MessageText(Assert.Single(TgdRequests()), "user");
        Assert.Contains("<CONSTRAINT>Do not use curly braces.</CONSTRAINT>", prompt, StringComparison.Ordinal);
        Assert.Contains("<CONSTRAINT>Keep it under 40 words.</CONSTRAINT>", prompt, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnUntaggedReply_IsRetried_ThenTheParameterKeepsItsValue_AndTheJobSaysWhy()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var kept = await ParameterAsync(project, "Stay as you are");
        var updated = await ParameterAsync(project, "Initial value");
        await GradientAsync(project, kept, "Use only capital letters");
        await GradientAsync(project, updated, "Use only capital letters");
        _app.Fake.Default = request => FakeOpenAiServer.MessageText(request, "user").Contains("Stay as you are", StringComparison.Ordinal)
            ? FakeReply.Text("STAY AS YOU ARE (I forgot the tags)")
            : Optimizer(request);
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = new[] { kept, updated }, model_id = model, momentum = 1 });

        var job = await StepAsync(project, optimizer);

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal("Stay as you are", await DataAsync(project, kept));
        Assert.Equal("INITIAL VALUE", await DataAsync(project, updated));
        Assert.Equal(TgdRewrite.MaxAttempts + 1, TgdRequests().Count);
        var outcome = job.GetProperty("result").GetProperty("parameters")[0];
        Assert.Equal("kept", outcome.GetProperty("status").GetString());
        Assert.Equal(TgdRewrite.MaxAttempts, outcome.GetProperty("attempts").GetInt32());
        var events = (await project.Client.GetJsonAsync($"/v1/jobs/{job.GetProperty("id").GetString()}/events?limit=100")).GetProperty("data").EnumerateArray().ToList();
        var keptEvent = Assert.Single(events, e => e.GetProperty("type").GetString() == "optimizer.parameter_kept");
        Assert.Equal(kept, keptEvent.GetProperty("data").GetProperty("parameter_id").GetString());
        var reason = keptEvent.GetProperty("data").GetProperty("reason").GetString()!;
        Assert.Contains("<IMPROVED_VARIABLE>", reason, StringComparison.Ordinal);
        Assert.Contains("I forgot the tags", reason, StringComparison.Ordinal);
        Assert.Single(events, e => e.GetProperty("type").GetString() == "optimizer.parameter_updated");
        // A kept parameter gets no history entry: its value did not change.
        var state = (await project.Client.GetJsonAsync($"/v1/optimizers/{optimizer}")).GetProperty("state").EnumerateArray().ToList();
        Assert.Equal([updated], state.Select(s => s.GetProperty("param_id").GetString()));
    }

    [Fact]
    public async Task AParameterWhoseCallsFail_KeepsItsValue_WhileTheOthersAreUpdated()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var refused = await ParameterAsync(project, "Too long for the model");
        var fine = await ParameterAsync(project, "Initial value");
        await GradientAsync(project, refused, "Use only capital letters");
        await GradientAsync(project, fine, "Use only capital letters");
        _app.Fake.Default = request => FakeOpenAiServer.MessageText(request, "user").Contains("Too long", StringComparison.Ordinal)
            ? new FakeReply { Status = 400, Body = """{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error"}}""" }
            : Optimizer(request);
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = new[] { refused, fine }, model_id = model });

        var job = await StepAsync(project, optimizer);

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal("Too long for the model", await DataAsync(project, refused));
        Assert.Equal("INITIAL VALUE", await DataAsync(project, fine));
        var outcome = job.GetProperty("result").GetProperty("parameters")[0];
        Assert.Equal("kept", outcome.GetProperty("status").GetString());
        Assert.Contains("maximum context length", outcome.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, outcome.GetProperty("attempts").GetInt32()); // a 400 is not asked again
    }

    [Fact]
    public async Task AParameterChangedWhileTheStepRuns_KeepsTheNewerValue()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var parameter = await ParameterAsync(project, "Initial value");
        await GradientAsync(project, parameter, "Use only capital letters");
        _app.Fake.Default = request => Optimizer(request) with { Delay = TimeSpan.FromMilliseconds(800) };
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = new[] { parameter }, model_id = model, momentum = 2 });

        var job = (await project.Client.PostJsonAsync($"/v1/optimizers/{optimizer}/step", new { })).GetProperty("id").GetString()!;
        await Eventually.UntilAsync(() => Task.FromResult(TgdRequests().Count > 0), TimeSpan.FromSeconds(30), () => "the step made no call");

        using (var patch = await project.Client.PatchAsJsonAsync($"/v1/variables/{parameter}", new { data = "Edited by hand" }))
        {
            await HttpJson.EnsureSuccessAsync(patch);
        }

        var done = await project.WaitForJobAsync(job);

        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal("Edited by hand", await DataAsync(project, parameter));
        var outcome = done.GetProperty("result").GetProperty("parameters")[0];
        Assert.Equal("kept", outcome.GetProperty("status").GetString());
        Assert.Contains("changed or deleted while the step ran", outcome.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Empty((await project.Client.GetJsonAsync($"/v1/optimizers/{optimizer}")).GetProperty("state").EnumerateArray());
    }

    [Fact]
    public async Task CustomMessagesAndInputs_ReplaceTheBuiltInPrompts()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var parameter = await ParameterAsync(project, "Initial value");
        await GradientAsync(project, parameter, "Use only capital letters");
        var instruction = await project.VariableAsync("You polish prompts for {product}.", "optimizer system prompt");
        var example = await project.VariableAsync("Example: 'hi' became <IMPROVED_VARIABLE>HI</IMPROVED_VARIABLE>", "in-context example");
        var optimizer = await CreateAsync(project, new
        {
            type = "tgd",
            @params = new[] { parameter },
            model_id = model,
            messages = new object[] { new { role = "system", content = new[] { instruction } }, new { role = "user", content = new[] { example } } },
            inputs = new { product = "a help desk" },
        });

        await StepAsync(project, optimizer);

        // Without reserved placeholders, the built-in user prompt for the parameter follows the custom messages.
        var messages = Assert.Single(_app.Fake.Requests).GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal(["system", "user", "user"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("You polish prompts for a help desk.", messages[0].GetProperty("content").GetString());
        Assert.StartsWith("Example: 'hi'", messages[1].GetProperty("content").GetString(), StringComparison.Ordinal);
        Assert.Contains("<VARIABLE>Initial value</VARIABLE>", messages[2].GetProperty("content").GetString(), StringComparison.Ordinal);
        Assert.Equal("INITIAL VALUE", await DataAsync(project, parameter));

        // With reserved placeholders the custom messages are the whole conversation.
        var template = await project.VariableAsync("Rewrite <VARIABLE>{variable_value}</VARIABLE> ({variable_role}) per:\n{feedback}{constraints}", "optimizer user prompt");
        var own = await CreateAsync(project, new
        {
            type = "tgd",
            @params = new[] { parameter },
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { template } } },
            constraints = new[] { "Be brief." },
        });
        _app.Fake.Reset();
        _app.Fake.Default = Optimizer;
        await StepAsync(project, own);
        var only = Assert.Single(Assert.Single(_app.Fake.Requests).GetProperty("messages").EnumerateArray());
        Assert.Equal($"Rewrite <VARIABLE>INITIAL VALUE</VARIABLE> ({Role}) per:\n<FEEDBACK index=\"0\">Use only capital letters</FEEDBACK>\n" +
            "The new value must respect these constraints:\n<CONSTRAINT>Be brief.</CONSTRAINT>\n", only.GetProperty("content").GetString());
    }

    [Fact]
    public async Task Groups_UseTheirOwnSettings_AndParametersWithoutGradientsAreLeftAlone()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var first = await ParameterAsync(project, "first");
        var second = await ParameterAsync(project, "second");
        var idle = await ParameterAsync(project, "idle");
        await GradientAsync(project, first, "Use only capital letters");
        await GradientAsync(project, second, "Use only capital letters");
        var optimizer = await CreateAsync(project, new
        {
            type = "tgd",
            model_id = model,
            completion_args = new { model = "gpt-4.1-mini", temperature = 0 },
            param_groups = new object[]
            {
                new { @params = new[] { first, idle } },
                new { @params = new[] { second }, completion_args = new { model = "gpt-4.1" } },
            },
        });

        var job = await StepAsync(project, optimizer);

        var result = job.GetProperty("result");
        Assert.Equal(2, result.GetProperty("updated").GetInt32());
        Assert.Equal(1, result.GetProperty("without_gradients").GetInt32());
        Assert.Equal(["FIRST", "SECOND", "idle"], [await DataAsync(project, first), await DataAsync(project, second), await DataAsync(project, idle)]);
        var models = TgdRequests().ToDictionary(r => Value(FakeOpenAiServer.MessageText(r, "user")), r => r.GetProperty("model").GetString());
        Assert.Equal("gpt-4.1-mini", models["first"]);
        Assert.Equal("gpt-4.1", models["second"]);
        Assert.Equal(0.0, TgdRequests().Single(r => models[Value(FakeOpenAiServer.MessageText(r, "user"))] == "gpt-4.1-mini").GetProperty("temperature").GetDouble());
    }

    [Fact]
    public async Task Parameters_AreUpdatedConcurrently_WithinTheModelClientsLimit()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project, maxConcurrency: 3);
        var parameters = new List<string>();
        for (var i = 0; i < 9; i++)
        {
            parameters.Add(await ParameterAsync(project, $"value {i}"));
            await GradientAsync(project, parameters[^1], "Use only capital letters");
        }

        _app.Fake.Default = request => Optimizer(request) with { Delay = TimeSpan.FromMilliseconds(300) };
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = parameters, model_id = model });

        var job = await StepAsync(project, optimizer);

        Assert.Equal(9, job.GetProperty("result").GetProperty("updated").GetInt32());
        Assert.Equal(3, _app.Fake.PeakConcurrency); // three at a time: concurrent, and never more than the client allows
        Assert.Equal(job.GetProperty("progress").GetProperty("total").GetInt32(), job.GetProperty("progress").GetProperty("completed").GetInt32());

        // Parameters committed together still get one event each, numbered without gaps.
        var events = (await project.Client.GetJsonAsync($"/v1/jobs/{job.GetProperty("id").GetString()}/events?limit=100&order=asc"))
            .GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(Enumerable.Range(1, events.Count), events.Select(e => e.GetProperty("sequence").GetInt32()));
        Assert.Equal(parameters.Order(), events.Where(e => e.GetProperty("type").GetString() == "optimizer.parameter_updated")
            .Select(e => e.GetProperty("data").GetProperty("parameter_id").GetString()!).Order());
    }

    [Fact]
    public async Task ASecondStep_WhileOneRuns_IsRefused_AndSoAreChangesToTheOptimizer()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var parameter = await ParameterAsync(project, "slow");
        await GradientAsync(project, parameter, "Use only capital letters");
        _app.Fake.Default = request => Optimizer(request) with { Delay = TimeSpan.FromSeconds(1) };
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = new[] { parameter }, model_id = model });

        var running = await project.Client.PostJsonAsync($"/v1/optimizers/{optimizer}/step", new { });
        using var second = await project.Client.PostAsync($"/v1/optimizers/{optimizer}/step", null);
        using var load = await project.Client.PutAsJsonAsync($"/v1/optimizers/{optimizer}/state_dict",
            await project.Client.GetJsonAsync($"/v1/optimizers/{optimizer}/state_dict"));

        await second.AssertProblemAsync(409, "optimizer_busy");
        await load.AssertProblemAsync(409, "optimizer_busy");
        Assert.Equal("succeeded", (await project.WaitForJobAsync(running.GetProperty("id").GetString()!)).GetProperty("status").GetString());
        Assert.Equal("succeeded", (await StepAsync(project, optimizer)).GetProperty("status").GetString()); // free again
        Assert.Equal(2, TgdRequests().Count);
    }

    [Fact]
    public async Task ACancelledStep_KeepsWhatItCommitted_LeavesTheRestUntouched_AndFreesTheOptimizer()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project, maxConcurrency: 1);
        var parameters = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            parameters.Add(await ParameterAsync(project, $"value {i}"));
            await GradientAsync(project, parameters[^1], "Use only capital letters");
        }

        _app.Fake.Default = request => Optimizer(request) with { Delay = TimeSpan.FromMilliseconds(700) };
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = parameters, model_id = model });
        var job = (await project.Client.PostJsonAsync($"/v1/optimizers/{optimizer}/step", new { })).GetProperty("id").GetString()!;
        await Eventually.UntilAsync(async () => (await project.Client.GetJsonAsync($"/v1/jobs/{job}/events?limit=100")).GetProperty("data").EnumerateArray()
            .Any(e => e.GetProperty("type").GetString() == "optimizer.parameter_updated"), TimeSpan.FromSeconds(30), () => "no parameter was updated", pollMs: 20);

        await project.Client.PostJsonAsync($"/v1/jobs/{job}/cancel", new { });
        var cancelled = await project.WaitForJobAsync(job);

        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString());
        var values = new List<string>();
        foreach (var parameter in parameters)
        {
            values.Add(await DataAsync(project, parameter));
        }

        var updated = values.Count(v => v.StartsWith("VALUE", StringComparison.Ordinal));
        Assert.InRange(updated, 1, 3); // one call at a time: the cancel lands before the last parameter
        Assert.Equal(4 - updated, values.Count(v => v.StartsWith("value", StringComparison.Ordinal)));
        var state = (await project.Client.GetJsonAsync($"/v1/optimizers/{optimizer}")).GetProperty("state").GetArrayLength();
        Assert.Equal(updated, state);

        // The optimizer is free again, and the next step rewrites the rest.
        _app.Fake.Default = Optimizer;
        var next = await StepAsync(project, optimizer);
        Assert.Equal("succeeded", next.GetProperty("status").GetString());
        foreach (var parameter in parameters)
        {
            Assert.StartsWith("VALUE", await DataAsync(project, parameter), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AFullLoop_OverHttp_ForwardEvaluateBackwardStep_ThenForwardAgainWithTheNewPrompt()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        await _app.UseBackwardModelAsync(project);
        _app.Fake.Default = Loop;
        var system = await project.Client.PostJsonAsync("/v1/variables", new { data = "Answer in lowercase.", role = "system prompt", is_parameter = true });
        var prompt = system.GetProperty("id").GetString()!;
        var question = await project.VariableAsync("{q}", "user question");
        var target = await project.VariableAsync("HELLO", "expected answer");
        var optimizer = await CreateAsync(project, new { type = "tgd", @params = new[] { prompt }, model_id = model, momentum = 1 });

        async Task<JsonElement> ForwardAndEvaluateAsync()
        {
            var answer = await project.OutputAsync("chat_completion", new
            {
                model_id = model,
                messages = new object[] { new { role = "system", content = new[] { prompt } }, new { role = "user", content = new[] { question } } },
                inputs = new { q = "hello" },
            });
            var evaluation = await project.OutputsAsync("exact_match_evaluator", new { prediction = answer, target });
            return (await project.Client.GetJsonAsync($"/v1/variables/{evaluation[0]}")).GetProperty("data").Clone() is var score
                ? JsonSerializer.SerializeToElement(new { score, explanation = evaluation[1] })
                : default;
        }

        var before = await ForwardAndEvaluateAsync();
        Assert.Equal(0, before.GetProperty("score").GetInt32());
        Assert.Equal("succeeded", (await project.BackwardAsync(new { variables = new[] { before.GetProperty("explanation").GetString() } }))
            .GetProperty("status").GetString());
        Assert.Equal(["Ask for UPPERCASE answers."], await project.GradTextsAsync(prompt));
        Assert.Equal("succeeded", (await StepAsync(project, optimizer)).GetProperty("status").GetString());
        Assert.Equal("Answer in UPPERCASE.", await DataAsync(project, prompt));
        await project.Client.PostJsonAsync($"/v1/optimizers/{optimizer}/clear_grad", new { });
        Assert.Empty(await project.GradTextsAsync(prompt));

        var after = await ForwardAndEvaluateAsync();
        Assert.Equal(1, after.GetProperty("score").GetInt32());
    }

    // The optimizer model of these tests: it applies the feedback it is shown to the value it is shown.
    private static FakeReply Optimizer(JsonElement request)
    {
        var prompt = FakeOpenAiServer.MessageText(request, "user");
        var value = Value(prompt);
        var feedback = string.Join(" ", FeedbackText().Matches(prompt.Split("<PAST_ITERATION")[0]).Select(m => m.Groups[1].Value));
        if (feedback.Contains("Italian", StringComparison.Ordinal) && value == "Initial value")
        {
            value = "Valore iniziale";
        }

        if (feedback.Contains("capital letters", StringComparison.Ordinal))
        {
            value = value.ToUpperInvariant();
        }

        if (feedback.Contains("more emphasis", StringComparison.Ordinal))
        {
            value += "!";
        }

        return FakeReply.Text($"Here is the new value.\n{TgdPrompts.OpenTag}\n{value}\n{TgdPrompts.CloseTag}");
    }

    // Forward answers follow the system prompt; feedback and the optimizer ask for, then write, upper case.
    internal static FakeReply Loop(JsonElement request) => FakeOpenAiServer.MessageText(request, "system") switch
    {
        EvaluatorFeedback.SystemPrompt => FakeReply.Text("The answer must be in capital letters."),
        FeedbackPrompts.GradientEngineSystemPrompt => FakeReply.Text("Ask for UPPERCASE answers."),
        TgdPrompts.SystemPrompt => FakeReply.Text($"{TgdPrompts.OpenTag}Answer in UPPERCASE.{TgdPrompts.CloseTag}"),
        var system when system.Contains("UPPERCASE", StringComparison.Ordinal) => FakeReply.Text("HELLO"),
        _ => FakeReply.Text("hello"),
    };

    private static string Without(JsonElement element, string property) =>
        JsonSerializer.Serialize(element.EnumerateObject().Where(p => p.Name != property).ToDictionary(p => p.Name, p => p.Value));

    private static string Value(string prompt) => VariableText().Match(prompt) is { Success: true } m ? m.Groups[1].Value : prompt;

    private IReadOnlyList<JsonElement> TgdRequests() =>
        [.. _app.Fake.Requests.Where(r => FakeOpenAiServer.MessageText(r, "system") == TgdPrompts.SystemPrompt)];

    private static async Task<string> ParameterAsync(TestProject project, string value) =>
        (await project.Client.PostJsonAsync("/v1/variables", new { data = value, role = Role, is_parameter = true })).GetProperty("id").GetString()!;

    private static async Task<string> GradientAsync(TestProject project, string parameter, string text)
    {
        var gradient = await project.VariableAsync(text, $"feedback to {Role}");
        await project.Client.PostJsonAsync($"/v1/variables/{parameter}/grad", new { variable_id = gradient });
        return gradient;
    }

    private static async Task<string> CreateAsync(TestProject project, object request) =>
        (await project.Client.PostJsonAsync("/v1/optimizers", request)).GetProperty("id").GetString()!;

    private static async Task<JsonElement> StepAsync(TestProject project, string optimizer)
    {
        using var response = await project.Client.PostAsync($"/v1/optimizers/{optimizer}/step", null);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var job = await HttpJson.EnsureSuccessAsync(response);
        return await project.WaitForJobAsync(job.GetProperty("id").GetString()!);
    }

    private static async Task<string> DataAsync(TestProject project, string variable) =>
        (await project.Client.GetJsonAsync($"/v1/variables/{variable}")).GetProperty("data").GetString()!;

    [GeneratedRegex(@"<VARIABLE>(.*?)</VARIABLE>", RegexOptions.Singleline)]
    private static partial Regex VariableText();

    [GeneratedRegex(@"<FEEDBACK[^>]*>(.*?)</FEEDBACK>", RegexOptions.Singleline)]
    private static partial Regex FeedbackText();
}
