using System.Text.Json.Nodes;
using Afnio.Api.Tests.Sdk.Client;
using Afnio.Domain.LanguageModels;

namespace Afnio.Api.Tests.Sdk;

/// <summary>
/// The documented afnio examples (semantics §2.3–§4.2 and the quickstart training loop on the Facility
/// data) run twice against the API and a Worker as processes: once over the afnio protocol as the Python
/// client drives it, once over the v1 REST API. Both ways must end with the same variables, roles, nodes,
/// gradients and parameters, ask the provider the same things, and match the documented values.
/// </summary>
public sealed class ProtocolExamplesTests(ProtocolExamplesTests.Processes afnio) : IClassFixture<ProtocolExamplesTests.Processes>
{
    private const string JudgeInstructions = "Judge whether '{prediction}' translates '{target}'. Answer JSON with score and explanation.";

    /// <summary>
    /// The scripted Facility models (a classifier by prompt parity, feedback that asks for a hint, an
    /// optimizer that adds it) and a judge that accepts "Buongiorno" for "Good morning".
    /// </summary>
    public sealed class Processes : SdkProcesses
    {
        public override async Task InitializeAsync()
        {
            await base.InitializeAsync();
            Fake.Default = request =>
            {
                var system = FakeOpenAiServer.MessageText(request, "system");
                return system.StartsWith("Judge whether", StringComparison.Ordinal)
                    ? FakeReply.Text(system.Contains("'Buongiorno' translates 'Good morning'", StringComparison.Ordinal)
                        ? """{"score": 1, "explanation": "It is the usual greeting."}"""
                        : """{"score": 0, "explanation": "It is another greeting."}""")
                    : FacilityTraining.Reply(request);
            };
        }
    }

    [Fact]
    public async Task AddSumAndSplit_GiveTheDocumentedValuesRolesAndNodes_BothWays()
    {
        var (protocol, rest) = await BothAsync<SeenVariable>(async b =>
        {
            var x = await b.VariableAsync("abc", "first input", requiresGrad: true);
            var y = await b.VariableAsync("def", "second input");
            var numbers = await b.AddAsync(await b.VariableAsync(new JsonArray(1, 2, 3), "a"), await b.VariableAsync(new JsonArray(4, 5, 6), "b"));
            var inputs = new[]
            {
                await b.VariableAsync("abc", "input1", requiresGrad: true), await b.VariableAsync("def", "input2"), await b.VariableAsync("ghi", "input3"),
            };
            var sentence = await b.VariableAsync("afnio is great!", "sentence", requiresGrad: true);
            var batch = await b.VariableAsync(new JsonArray("afnio is great!", "Deep learning"), "batch");
            var outputs = new List<string> { await b.AddAsync(x, y), numbers, await b.SumAsync(inputs) };
            outputs.AddRange(await b.SplitAsync(sentence, " ", 1));
            outputs.AddRange(await b.SplitAsync(batch, null, 2));
            return (await Task.WhenAll(outputs.Select(b.SeeAsync))).ToList();
        });

        Assert.Equal(rest, protocol);
        var seen = protocol.ToArray();
        Assert.Equal(new SeenVariable("\"abcdef\"", "first input and second input", true, false, "AddBackward0"), seen[0]);
        Assert.Equal(new SeenVariable("[5,7,9]", "a and b", false, true, null), seen[1]);
        Assert.Equal(new SeenVariable("\"<ITEM>abc</ITEM><ITEM>def</ITEM><ITEM>ghi</ITEM>\"", "input1 and input2 and input3", true, false, "SumBackward0"), seen[2]);
        Assert.Equal(["\"afnio\"", "\"is great!\""], seen[3..5].Select(v => v.Data));
        Assert.Equal(["split part 0 of sentence", "split part 1 of sentence"], seen[3..5].Select(v => v.Role));
        Assert.All(seen[3..5], v => Assert.Equal("SplitBackward0", v.GradFn));
        Assert.Equal(["[\"afnio\",\"Deep\"]", "[\"is\",\"learning\"]", "[\"great!\",\"\"]"], seen[5..].Select(v => v.Data));
    }

    [Fact]
    public async Task SplitBackwardWithRetainGraph_GivesOneItemGradientPerPass_BothWays()
    {
        var (protocol, rest) = await BothAsync(async b =>
        {
            var x = await b.VariableAsync("afnio is great!", "sentence", requiresGrad: true);
            var parts = await b.SplitAsync(x, " ", 1);
            await b.BackwardAsync(parts[0], await b.VariableAsync("MY_FIRST_FEEDBACK", "feedback"), retainGraph: true);
            await b.BackwardAsync(parts[1], await b.VariableAsync("MY_SECOND_FEEDBACK", "feedback"));
            return await b.GradsAsync(x);
        });

        Assert.Equal(rest, protocol);
        const string Combined = "Here is the combined feedback we got for this specific sentence and other variables: ";
        Assert.Equal(
            [
                new SeenGradient($"{Combined}<ITEM>MY_FIRST_FEEDBACK</ITEM><ITEM></ITEM>", "feedback to sentence"),
                new SeenGradient($"{Combined}<ITEM></ITEM><ITEM>MY_SECOND_FEEDBACK</ITEM>", "feedback to sentence"),
            ],
            protocol);
    }

    [Fact]
    public async Task ChatCompletionAndEvaluators_AnswerAndExplainAlike_AndFeedbackReachesThePrediction_BothWays()
    {
        var (protocol, rest) = await BothAsync<object>(async b =>
        {
            var model = await b.ModelAsync();
            await b.UseBackwardModelAsync();
            var system = await b.VariableAsync("Read the provided message and determine the sentiment.", "system prompt", parameter: true);
            var template = await b.VariableAsync("{message}", "user prompt");
            var message = await b.VariableAsync("I love it", "message");
            var answer = await b.ChatAsync(model, system, template, new Dictionary<string, string> { ["message"] = message });
            var green = await b.VariableAsync("green", "color prediction", requiresGrad: true);
            var scalar = await b.ExactMatchAsync(green, await b.VariableAsync("red", "gold color"));
            var batch = await b.ExactMatchAsync(
                await b.VariableAsync(new JsonArray("green", "blue"), "color predictions", requiresGrad: true),
                await b.VariableAsync(new JsonArray("red", "blue"), "gold colors"));
            var judged = await b.JsonFieldEvaluatorAsync(answer, await b.VariableAsync("positive", "gold sentiment"), "sentiment", "sentiment match");
            await b.BackwardAsync(scalar[1]);
            var seen = new List<object> { await b.SeeAsync(answer) };
            foreach (var output in scalar.Concat(batch).Concat(judged))
            {
                seen.Add(await b.SeeAsync(output));
            }

            seen.AddRange(await b.GradsAsync(green));
            return seen;
        });

        Assert.Equal(rest, protocol);
        var answer = Assert.IsType<SeenVariable>(protocol[0]);
        var expected = FacilityTraining.Classify("Read the provided message and determine the sentiment.", "I love it");
        Assert.Equal(SeenVariable.Json($"{{\"sentiment\":\"{expected}\"}}"), answer.Data);
        Assert.Equal(("response from the language model", "ChatCompletionBackward0"), (answer.Role, answer.GradFn));
        Assert.Equal(
            new SeenVariable("0", "Evaluation result score of color prediction", true, false, "ExactMatchEvaluatorBackward0"), protocol[1]);
        Assert.Equal(SeenVariable.Json("The evaluation function, designed for 'exact match', compared the <DATA> field of the predicted variable ('green') "
            + "with the <DATA> field of the target variable ('red'), resulting in a score: 0."), ((SeenVariable)protocol[2]).Data);
        Assert.Equal("1", ((SeenVariable)protocol[3]).Data);
        Assert.Equal(SeenVariable.Json("The evaluation function, designed for 'exact match', compared the <DATA> fields of the predicted variable and the "
            + "target variable across all samples in the batch, generating individual scores for each pair. These scores were then aggregated using "
            + "the reduction function 'summation', resulting in a final aggregated score: 1."), ((SeenVariable)protocol[4]).Data);
        Assert.Equal(expected == "positive" ? "1" : "0", ((SeenVariable)protocol[5]).Data);
        Assert.Equal("DeterministicEvaluatorBackward0", ((SeenVariable)protocol[5]).GradFn);
        Assert.Equal(new SeenGradient($"Neutral messages were labelled positive or negative. {FacilityTraining.Hint}", "feedback to color prediction"), protocol[^1]);
    }

    [Fact]
    public async Task TgdWithMomentumAndConstraints_AsksTheSameAndUpdatesAlike_BothWays()
    {
        var requests = new Dictionary<string, List<string>>();
        var (protocol, rest) = await BothAsync<object>(async b =>
        {
            var model = await b.ModelAsync();
            var prompt = await b.VariableAsync("Read the message.", "system prompt", parameter: true);
            var optimizer = await b.TgdAsync([prompt], model, momentum: 2, ["The prompt must not contain curly braces."]);
            var seen = new List<object>();
            for (var step = 1; step <= 3; step++)
            {
                await b.AppendGradAsync(prompt, await b.VariableAsync($"Feedback number {step}.", "feedback to system prompt"));
                await b.StepAsync(optimizer);
                seen.Add(await b.SeeAsync(prompt));
                seen.AddRange(await b.GradsAsync(prompt));
                await b.ClearGradAsync(optimizer);
            }

            seen.Add((await b.GradsAsync(prompt)).Count);
            return seen;
        }, requests);

        Assert.Equal(rest, protocol);
        Assert.Equal(requests["rest"], requests["protocol"]);
        var hinted = "Read the message.";
        var updates = protocol.OfType<SeenVariable>().ToList();
        for (var step = 0; step < 3; step++)
        {
            hinted += $" {FacilityTraining.Hint}";
            Assert.Equal(SeenVariable.Json(hinted), updates[step].Data);
        }

        Assert.Equal(0, protocol[^1]);
        // momentum 2: the third step shows the two values before the current one, with their feedback; every step states the constraint.
        var third = Assert.Single(requests["protocol"], r => r.Contains("Feedback number 3.", StringComparison.Ordinal));
        Assert.Contains($"<PAST_ITERATION index=\"0\">\n<VALUE>Read the message.</VALUE>", third, StringComparison.Ordinal);
        Assert.Contains($"<PAST_ITERATION index=\"1\">\n<VALUE>Read the message. {FacilityTraining.Hint}</VALUE>", third, StringComparison.Ordinal);
        Assert.All(requests["protocol"], r => Assert.Contains("The prompt must not contain curly braces.", r, StringComparison.Ordinal));
    }

    [Fact]
    public async Task QuickstartTrainingLoop_OnTheFacilityData_LearnsAlike_BothWays()
    {
        const int BatchSize = 6;
        var items = FacilityTraining.Items.EnumerateArray().Take(2 * BatchSize).ToList();
        var requests = new Dictionary<string, List<string>>();
        var (protocol, rest) = await BothAsync<object>(async b =>
        {
            var model = await b.ModelAsync();
            await b.UseBackwardModelAsync();
            var system = await b.VariableAsync(FacilityTraining.InitialPrompt, "system prompt for sentiment classification", parameter: true);
            var template = await b.VariableAsync("**Message:**\n\n{message}\n\n", "user prompt");
            var optimizer = await b.TgdAsync([system], model, momentum: 3, ["The prompt must not contain curly braces."]);
            var seen = new List<object>();
            for (var epoch = 0; epoch < 2; epoch++)
            {
                foreach (var batch in items.Chunk(BatchSize))
                {
                    await b.ClearGradAsync(optimizer);
                    var messages = await b.VariableAsync(
                        new JsonArray([.. batch.Select(i => (JsonNode)i.GetProperty("fields").GetProperty("input").GetString()!)]), "message");
                    var golds = await b.VariableAsync(new JsonArray([.. batch.Select(i => (JsonNode)FacilityTraining.Gold(i))]), "gold sentiment");
                    var predictions = await b.ChatAsync(model, system, template, new Dictionary<string, string> { ["message"] = messages });
                    var evaluation = await b.JsonFieldEvaluatorAsync(predictions, golds, "sentiment", "sentiment match");
                    await b.BackwardAsync(evaluation[1]);
                    seen.Add(await b.SeeAsync(evaluation[0]));
                    seen.AddRange(await b.GradsAsync(system));
                    await b.StepAsync(optimizer);
                    seen.Add(await b.SeeAsync(system));
                }
            }

            return seen;
        }, requests);

        Assert.Equal(rest, protocol);
        Assert.Equal(requests["rest"], requests["protocol"]);
        // The figures the scripted models give, computed from the data alone: the first batch is classified by
        // prompt parity; every later batch sees the hint the first step added, and answers "neutral".
        var scores = protocol.OfType<SeenVariable>().Where(v => v.Role.StartsWith("Evaluation result score", StringComparison.Ordinal)).Select(v => v.Data).ToList();
        var chunks = items.Chunk(BatchSize).ToList();
        var firstEpoch = chunks.Select((batch, i) => batch.Count(item => FacilityTraining.Gold(item) == (i == 0
            ? FacilityTraining.Classify(FacilityTraining.InitialPrompt, FacilityTraining.UserPrompt(item))
            : "neutral")));
        var secondEpoch = chunks.Select(batch => batch.Count(item => FacilityTraining.Gold(item) == "neutral"));
        Assert.Equal([.. firstEpoch.Concat(secondEpoch).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture))], scores);
        var final = protocol.OfType<SeenVariable>().Last();
        Assert.Equal(SeenVariable.Json(FacilityTraining.InitialPrompt + string.Concat(Enumerable.Repeat($" {FacilityTraining.Hint}", 4))), final.Data);
        Assert.Equal(4, protocol.OfType<SeenGradient>().Count());
    }

    [Fact]
    public async Task LmJudge_ScoresExplainsAndSendsFeedbackToThePrediction_BothWays()
    {
        var requests = new Dictionary<string, List<string>>();
        var (protocol, rest) = await BothAsync<object>(async b =>
        {
            var model = await b.ModelAsync();
            await b.UseBackwardModelAsync();
            var instructions = await b.VariableAsync(JudgeInstructions, "judge instructions");
            var good = await b.VariableAsync("Buongiorno", "translation", requiresGrad: true);
            var bad = await b.VariableAsync("Buonanotte", "translation", requiresGrad: true);
            var source = await b.VariableAsync("Good morning", "source text");
            var accepted = await b.LmJudgeAsync(model, instructions, good, source);
            var refused = await b.LmJudgeAsync(model, instructions, bad, source);
            await b.BackwardAsync(refused[1]);
            var seen = new List<object>();
            foreach (var output in accepted.Concat(refused))
            {
                seen.Add(await b.SeeAsync(output));
            }

            seen.AddRange(await b.GradsAsync(bad));
            seen.Add((await b.GradsAsync(good)).Count);
            return seen;
        }, requests);

        Assert.Equal(rest, protocol);
        Assert.Equal(requests["rest"], requests["protocol"]);
        Assert.Equal(new SeenVariable("1", "Evaluation result score of translation", true, false, "LMJudgeEvaluatorBackward0"), protocol[0]);
        Assert.Equal(SeenVariable.Json("It is the usual greeting."), ((SeenVariable)protocol[1]).Data);
        Assert.Equal("Evaluation result explanation of translation", ((SeenVariable)protocol[1]).Role);
        Assert.Equal("0", ((SeenVariable)protocol[2]).Data);
        Assert.Equal("feedback to translation", Assert.IsType<SeenGradient>(protocol[4]).Role);
        Assert.Equal(0, protocol[^1]);
        Assert.Contains(requests["protocol"], r => r.Contains("Buonanotte", StringComparison.Ordinal) && r.Contains("another greeting", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AddedParamGroup_IsSteppedWithItsOwnMomentum_BothWays()
    {
        var requests = new Dictionary<string, List<string>>();
        var (protocol, rest) = await BothAsync<object>(async b =>
        {
            var model = await b.ModelAsync();
            var prompt = await b.VariableAsync("Read the message.", "system prompt", parameter: true);
            var format = await b.VariableAsync("Answer in one word.", "output format", parameter: true);
            var optimizer = await b.TgdAsync([prompt], model, momentum: 0, []);
            await b.AddParamGroupAsync(optimizer, [format], momentum: 1);
            var seen = new List<object>();
            for (var step = 1; step <= 2; step++)
            {
                await b.AppendGradAsync(prompt, await b.VariableAsync($"Prompt feedback {step}.", "feedback to system prompt"));
                await b.AppendGradAsync(format, await b.VariableAsync($"Format feedback {step}.", "feedback to output format"));
                await b.StepAsync(optimizer);
                seen.Add(await b.SeeAsync(prompt));
                seen.Add(await b.SeeAsync(format));
                await b.ClearGradAsync(optimizer);
            }

            return seen;
        }, requests);

        Assert.Equal(rest, protocol);
        Assert.Equal(requests["rest"], requests["protocol"]);
        var hint = $" {FacilityTraining.Hint}";
        Assert.Equal(
            [SeenVariable.Json("Read the message." + hint + hint), SeenVariable.Json("Answer in one word." + hint + hint)],
            protocol.TakeLast(2).Select(v => ((SeenVariable)v).Data));
        // Only the added group keeps a momentum window: its second step shows its first value.
        var second = requests["protocol"].Where(r => r.Contains("feedback 2.", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, second.Count);
        Assert.Contains(second, r => r.Contains("Format feedback 2.", StringComparison.Ordinal) && r.Contains("<PAST_ITERATION index=\"0\">", StringComparison.Ordinal));
        Assert.Contains(second, r => r.Contains("Prompt feedback 2.", StringComparison.Ordinal) && !r.Contains("<PAST_ITERATION", StringComparison.Ordinal));
    }

    [Fact]
    public async Task FunctionalTgd_AsksAndUpdatesAsTheOptimizerDoes()
    {
        var constraints = new[] { "The prompt must not contain curly braces." };
        var before = afnio.Fake.Requests.Count;
        var functional = new List<string>();
        var user = await afnio.NewUserAsync("functional");
        await using (var session = await afnio.ConnectAsync(user, "Functional TGD"))
        {
            var client = session.Client;
            var model = await client.CreateModelAsync("OpenAI", new JsonObject { ["api_key"] = "sk-examples", ["base_url"] = afnio.Fake.Endpoint.ToString() });
            var prompt = await client.CreateVariableAsync("Read the message.", "system prompt", requiresGrad: true, parameter: true);
            var messages = new JsonArray(
                new JsonObject
                {
                    ["role"] = "system",
                    ["content"] = new JsonArray(SdkClient.Ref(await client.CreateVariableAsync(
                    "Placeholder for Textual Gradient Descent optimizer system prompt", "Textual Gradient Descent optimizer system prompt")))
                },
                new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(SdkClient.Ref(await client.CreateVariableAsync(
                    "Placeholder for Textual Gradient Descent optimizer user prompt", "Textual Gradient Descent optimizer user prompt")))
                });
            var buffers = new JsonArray(new JsonArray());
            for (var step = 1; step <= 3; step++)
            {
                var feedback = await client.CreateVariableAsync($"Feedback number {step}.", "feedback to system prompt");
                buffers = await client.TgdAsync([prompt], new JsonArray(new JsonArray(SdkClient.Ref(feedback))), buffers, model, messages,
                    constraints: new JsonArray([.. constraints.Select(c => (JsonNode)c)]), momentum: 2,
                    completionArgs: new JsonObject { ["model"] = "gpt-4o-mini", ["temperature"] = 0 });
                functional.Add(SeenVariable.Json(await client.DataAsync(prompt)));
            }

            Assert.Equal(2, Assert.IsType<JsonArray>(Assert.Single(buffers)).Count);
            Assert.Empty(client.Violations);
        }

        var asked = afnio.Fake.Requests.Skip(before).Select(r => FakeOpenAiServer.MessageText(r, "user")).Order(StringComparer.Ordinal).ToList();
        before = afnio.Fake.Requests.Count;

        var rest = new RestBackend(await afnio.Processes.CreateProjectAsync("optimizer over REST"), afnio.Fake.Endpoint);
        var restModel = await rest.ModelAsync();
        var restPrompt = await rest.VariableAsync("Read the message.", "system prompt", parameter: true);
        var optimizer = await rest.TgdAsync([restPrompt], restModel, momentum: 2, constraints);
        var stepped = new List<string>();
        for (var step = 1; step <= 3; step++)
        {
            await rest.AppendGradAsync(restPrompt, await rest.VariableAsync($"Feedback number {step}.", "feedback to system prompt"));
            await rest.StepAsync(optimizer);
            stepped.Add((await rest.SeeAsync(restPrompt)).Data);
            await rest.ClearGradAsync(optimizer);
        }

        Assert.Equal(stepped, functional);
        Assert.Equal(afnio.Fake.Requests.Skip(before).Select(r => FakeOpenAiServer.MessageText(r, "user")).Order(StringComparer.Ordinal), asked);
        Assert.Equal(SeenVariable.Json("Read the message." + string.Concat(Enumerable.Repeat($" {FacilityTraining.Hint}", 3))), functional[^1]);
    }

    /// <summary>
    /// Runs an example over the protocol (a new user, project and run) and over REST (a new project); when
    /// <paramref name="requests"/> is given, keeps the user messages each way sent to the provider, sorted.
    /// </summary>
    private async Task<(IReadOnlyList<T> ViaProtocol, IReadOnlyList<T> ViaRest)> BothAsync<T>(
        Func<IExampleBackend, Task<IReadOnlyList<T>>> example, Dictionary<string, List<string>>? requests = null)
    {
        var user = await afnio.NewUserAsync("examples");
        IReadOnlyList<T> protocol;
        var before = afnio.Fake.Requests.Count;
        await using (var session = await afnio.ConnectAsync(user, "Examples"))
        {
            protocol = await example(new ProtocolBackend(session.Client, afnio.Fake.Endpoint));
            Assert.Empty(session.Client.Violations);
        }

        Keep("protocol");
        var project = await afnio.Processes.CreateProjectAsync("examples over REST");
        var rest = await example(new RestBackend(project, afnio.Fake.Endpoint));
        Keep("rest");
        return (protocol, rest);

        void Keep(string way)
        {
            var sent = afnio.Fake.Requests.Skip(before).Select(r => FakeOpenAiServer.MessageText(r, "user")).Order(StringComparer.Ordinal).ToList();
            before = afnio.Fake.Requests.Count;
            requests?.Add(way, sent);
        }
    }
}
