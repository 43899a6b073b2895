using System.Net.Http.Json;
using System.Text.Json;

namespace Afnio.Api.Tests;

/// <summary>chat_completion forward passes against the fake OpenAI-compatible server, through the real SDK.</summary>
[Collection(WorkerHosts.Name)]
public sealed class ChatCompletionTests : IClassFixture<ModelWorkerApp>
{
    private readonly ModelWorkerApp _app;

    public ChatCompletionTests(ModelWorkerApp app)
    {
        _app = app;
        app.Fake.Reset();
    }

    private static FakeReply Translate(JsonElement request) => FakeOpenAiServer.MessageText(request, "user") switch
    {
        "Hello" => FakeReply.Text("Ciao", TimeSpan.FromMilliseconds(300)),
        "Good night" => FakeReply.Text("Buona notte", TimeSpan.FromMilliseconds(10)),
        "Thank you" => FakeReply.Text("Grazie", TimeSpan.FromMilliseconds(100)),
        var other => FakeReply.Text($"?{other}"),
    };

    [Fact]
    public async Task TranslationBatch_RunsOneCallPerItem_Concurrently_AndKeepsTheOrder()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project, new { model = "gpt-4o", temperature = 0.5 });
        _app.Fake.Default = Translate;
        var system = await project.VariableAsync("Translate the user's text to Italian.", "system prompt for translation", requiresGrad: true);
        var user = await project.VariableAsync("{sentence}", "user message template");

        var call = await project.CallAsync("chat_completion", new
        {
            model_id = model,
            messages = new object[] { new { role = "system", content = new[] { system } }, new { role = "user", content = new[] { user } } },
            inputs = new { sentence = new[] { "Hello", "Good night", "Thank you" } },
            completion_args = new { temperature = 0, seed = 42 },
        });

        var output = call.GetProperty("outputs")[0];
        Assert.Equal(["Ciao", "Buona notte", "Grazie"], output.GetProperty("data").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("response from the language model", output.GetProperty("role").GetString());
        Assert.True(output.GetProperty("requires_grad").GetBoolean());
        Assert.Equal("ChatCompletionBackward0", call.GetProperty("node").GetProperty("name").GetString());
        Assert.Equal(3, _app.Fake.Requests.Count);
        Assert.True(_app.Fake.PeakConcurrency >= 2, $"the batch ran one call at a time (peak {_app.Fake.PeakConcurrency})");
        foreach (var request in _app.Fake.Requests)
        {
            Assert.Equal("gpt-4o", request.GetProperty("model").GetString());
            Assert.Equal(0, request.GetProperty("temperature").GetDouble()); // the call's args over the model's defaults
            Assert.Equal(42, request.GetProperty("seed").GetInt32());
            Assert.Equal("Translate the user's text to Italian.", FakeOpenAiServer.MessageText(request, "system"));
            Assert.Equal(["system", "user"], request.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        }

        Assert.All(_app.Fake.Authorizations, a => Assert.Equal($"Bearer {ModelWorkerApp.ApiKey}", a));
    }

    [Fact]
    public async Task CompletionArgs_PassThroughToTheProvider_Verbatim()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project, new { model = "o3" });
        var prompt = await project.VariableAsync("Answer in JSON.", "prompt");
        var schema = new
        {
            type = "json_schema",
            json_schema = new { name = "answer", strict = true, schema = new { type = "object", properties = new { label = new { type = "string" } } } },
        };
        await project.CallAsync("chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { prompt } } },
            completion_args = new { max_completion_tokens = 256, reasoning_effort = "low", response_format = schema, logit_bias = new { } },
        });

        var sent = Assert.Single(_app.Fake.Requests);
        Assert.Equal("o3", sent.GetProperty("model").GetString());
        Assert.Equal(256, sent.GetProperty("max_completion_tokens").GetInt32());
        Assert.Equal("low", sent.GetProperty("reasoning_effort").GetString());
        Assert.Equal(JsonSerializer.Serialize(schema), sent.GetProperty("response_format").GetRawText());
        Assert.Equal(JsonValueKind.Object, sent.GetProperty("logit_bias").ValueKind);
    }

    [Fact]
    public async Task Templates_FillOnlyNamedInputs_KeepEscapesAndJson_AndRefuseMissingOnes()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var template = await project.VariableAsync("""Classify {email}. Reply as {"label": "..."} or {{"label": null}}; {unknown_but_escaped}""", "t");
        // {unknown_but_escaped} has no input: refused before any provider call.
        var refused = await (await project.Client.PostAsJsonAsync("/v1/functions/chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { template } } },
            inputs = new { email = "The heater is broken." },
        })).AssertProblemAsync(400, "missing_input");
        Assert.Contains("unknown_but_escaped", refused.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty(_app.Fake.Requests);

        var fixedTemplate = await project.VariableAsync("""Classify {email}. Reply as {"label": "..."} or {{"label": null}}; {{name}} {email}""", "t");
        var email = await project.VariableAsync("The heater is broken.", "email");
        await project.CallAsync("chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { fixedTemplate } } },
            inputs = new { email },
        });
        Assert.Equal("""Classify The heater is broken.. Reply as {"label": "..."} or {"label": null}; {name} The heater is broken.""",
            FakeOpenAiServer.MessageText(Assert.Single(_app.Fake.Requests), "user"));
    }

    [Fact]
    public async Task BadCalls_Get400sOr404s_BeforeAnyProviderCall()
    {
        var project = await _app.CreateProjectAsync();
        var other = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var foreignModel = await _app.RegisterModelAsync(other);
        var prompt = await project.VariableAsync("{a} {b}", "prompt");
        var foreignVariable = await other.VariableAsync("x", "x");
        var messages = new[] { new { role = "user", content = new[] { prompt } } };

        async Task Expect(object body, int status, string code)
        {
            using var response = await project.Client.PostAsJsonAsync("/v1/functions/chat_completion", body);
            await response.AssertProblemAsync(status, code);
        }

        await Expect(new { model_id = model, messages, inputs = new { a = new[] { "1", "2" }, b = new[] { "1", "2", "3" } } }, 400, "batch_length_mismatch");
        await Expect(new { model_id = model, messages, inputs = new { a = "1", b = "2" }, completion_args = new { n = 2 } }, 400, "unsupported_argument");
        await Expect(new { model_id = foreignModel, messages, inputs = new { a = "1", b = "2" } }, 404, "model_not_found");
        await Expect(new { model_id = model, messages = new[] { new { role = "user", content = new[] { foreignVariable } } } }, 404, "variable_not_found");
        await Expect(new { model_id = "mdl_nope", messages, inputs = new { a = "1", b = "2" } }, 400, "invalid_id");
        await Expect(new { messages, inputs = new { a = "1", b = "2" } }, 400, "missing_field");
        await Expect(new { model_id = model, messages = Array.Empty<object>() }, 400, "invalid_value");
        var nameless = await _app.RegisterModelAsync(project, new { temperature = 0 });
        await Expect(new { model_id = nameless, messages, inputs = new { a = "1", b = "2" } }, 400, "missing_model_name");
        Assert.Empty(_app.Fake.Requests);
    }

    [Theory]
    [InlineData("""{"role": "user\u0000", "content": ["VAR"]}""", null)]
    [InlineData("""{"role": "\ud800", "content": ["VAR"]}""", null)]
    [InlineData("""{"role": "user", "content": ["VAR"]}""", """{"user": "a\u0000"}""")]
    [InlineData("""{"role": "user", "content": ["VAR"]}""", """{"a\u0000": 1}""")]
    [InlineData("""{"role": "user", "content": ["VAR"]}""", """{"stop": ["\udc00"]}""")]
    public async Task UnstorableText_InRolesOrCompletionArgs_IsA400_BeforeAnyCall(string message, string? completionArgs)
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var prompt = await project.VariableAsync("hi", "prompt");
        var body = $$"""{"model_id": "{{model}}", "messages": [{{message.Replace("VAR", prompt, StringComparison.Ordinal)}}]{{(completionArgs is null ? "" : $", \"completion_args\": {completionArgs}")}}}""";

        await (await project.Client.SendRawAsync(HttpMethod.Post, "/v1/functions/chat_completion", body)).AssertProblemAsync(400, "invalid_arguments");
        await (await project.Client.SendRawAsync(HttpMethod.Post, "/v1/functions/lm_judge_evaluator",
            body.Replace("\"messages\"", $"\"prediction\": \"{prompt}\", \"messages\"", StringComparison.Ordinal))).AssertProblemAsync(400, "invalid_arguments");
        Assert.Empty(_app.Fake.Requests);
    }

    [Theory]
    [InlineData("retry-after-ms", "1e300")]
    [InlineData("Retry-After", "Infinity")]
    [InlineData("Retry-After", "NaN")]
    [InlineData("Retry-After", "-5")]
    [InlineData("Retry-After", "soon")]
    public async Task OddRetryAfterHeaders_AreCappedOrIgnored(string header, string value)
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var prompt = await project.VariableAsync("hi", "prompt");
        _app.Fake.Enqueue(new FakeReply { Status = 429, Body = """{"error":{"message":"slow down"}}""", Headers = new() { [header] = value } },
            FakeReply.Text("after the wait"));

        var output = await project.OutputAsync("chat_completion", new { model_id = model, messages = new[] { new { role = "user", content = new[] { prompt } } } });

        Assert.Equal("after the wait", (await project.Client.GetJsonAsync($"/v1/variables/{output}")).GetProperty("data").GetString());
        Assert.Equal(2, _app.Fake.Requests.Count);
    }

    [Fact]
    public async Task AFailingItem_StopsTheRestOfTheBatch()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project, maxConcurrency: 1);
        var prompt = await project.VariableAsync("{i}", "prompt");
        _app.Fake.Default = _ => new FakeReply { Status = 400, Body = """{"error":{"message":"context too long"}}""", Delay = TimeSpan.FromMilliseconds(100) };

        await (await project.Client.PostAsJsonAsync("/v1/functions/chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { prompt } } },
            inputs = new { i = Enumerable.Range(0, 20).Select(i => $"item {i}").ToArray() },
        })).AssertProblemAsync(502, "model_call_failed");

        // One at a time: the first item fails, and the others waiting for the slot are cancelled (one more
        // may take the slot while the failure is being journaled).
        Assert.InRange(_app.Fake.Requests.Count, 1, 3);
    }

    [Fact]
    public async Task ConcurrencyLimit_HoldsAcrossABatch_AndAcrossConcurrentRequests()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project, maxConcurrency: 3);
        _app.Fake.Default = _ => FakeReply.Text("done", TimeSpan.FromMilliseconds(80));
        var prompt = await project.VariableAsync("{i}", "prompt");
        var items = Enumerable.Range(0, 12).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

        await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => project.CallAsync("chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { prompt } } },
            inputs = new { i = items },
        })));

        Assert.Equal(24, _app.Fake.Requests.Count);
        Assert.Equal(3, _app.Fake.PeakConcurrency);
    }

    [Fact]
    public async Task ThirtyPercentTransientFaults_StillComplete_WithTheRightOutputs()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project, maxConcurrency: 8);
        var random = new Random(1234);
        var faults = 0;
        _app.Fake.Default = request =>
        {
            lock (random)
            {
                if (random.NextDouble() < 0.3)
                {
                    faults++;
                    return (faults % 3) switch
                    {
                        0 => FakeReply.RateLimited(0),
                        1 => FakeReply.ServerError(),
                        _ => FakeReply.Junk(),
                    };
                }
            }

            return FakeReply.Text("echo " + FakeOpenAiServer.MessageText(request, "user"));
        };
        var prompt = await project.VariableAsync("{i}", "prompt");
        var items = Enumerable.Range(0, 40).Select(i => $"item {i}").ToArray();

        var output = await project.OutputAsync("chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { prompt } } },
            inputs = new { i = items },
        });

        var data = (await project.Client.GetJsonAsync($"/v1/variables/{output}")).GetProperty("data");
        Assert.Equal(items.Select(i => "echo " + i), data.EnumerateArray().Select(e => e.GetString()));
        Assert.True(faults >= 5, $"only {faults} faults were injected");
        Assert.Equal(40 + faults, _app.Fake.Requests.Count);
    }

    [Fact]
    public async Task RetryAfter_IsHonoured_AndTimeoutsAreRetried()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var prompt = await project.VariableAsync("hi", "prompt");
        _app.Fake.Enqueue(FakeReply.RateLimited(1), FakeReply.Hang(TimeSpan.FromSeconds(10)), FakeReply.Text("finally"));
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var output = await project.OutputAsync("chat_completion", new { model_id = model, messages = new[] { new { role = "user", content = new[] { prompt } } } });

        Assert.Equal("finally", (await project.Client.GetJsonAsync($"/v1/variables/{output}")).GetProperty("data").GetString());
        Assert.Equal(3, _app.Fake.Requests.Count);
        // One second asked by Retry-After, two for the network timeout; the backoff base is only 20 ms.
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(2.9), $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task ExhaustedRetries_FailWith502_CreateNoOutput_AndAreJournaled()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var prompt = await project.VariableAsync("hi", "prompt");
        _app.Fake.Default = _ => FakeReply.ServerError();
        var before = (await project.Client.GetJsonAsync("/v1/variables?limit=100")).GetProperty("data").GetArrayLength();

        var problem = await (await project.Client.PostAsJsonAsync("/v1/functions/chat_completion",
            new { model_id = model, messages = new[] { new { role = "user", content = new[] { prompt } } } })).AssertProblemAsync(502, "model_call_failed");

        Assert.Contains("after 4 attempts", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("The server had an error", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(4, _app.Fake.Requests.Count);
        Assert.Equal(before, (await project.Client.GetJsonAsync("/v1/variables?limit=100")).GetProperty("data").GetArrayLength());
        await using var db = _app.CreateDbContext();
        var journaled = db.ModelCalls.Where(c => c.ModelId == ModelGuid(model)).ToList();
        var failed = Assert.Single(journaled);
        Assert.Equal("failed", failed.Status);
        Assert.Equal(4, failed.Attempts);
    }

    [Fact]
    public async Task ProviderRejections_AreNotRetried()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var prompt = await project.VariableAsync("hi", "prompt");
        _app.Fake.Default = _ => new FakeReply { Status = 401, Body = """{"error":{"message":"Incorrect API key provided"}}""" };

        var problem = await (await project.Client.PostAsJsonAsync("/v1/functions/chat_completion",
            new { model_id = model, messages = new[] { new { role = "user", content = new[] { prompt } } } })).AssertProblemAsync(502, "model_call_failed");

        Assert.Contains("401: Incorrect API key provided", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Single(_app.Fake.Requests);
    }

    [Fact]
    public async Task UsageAndCost_AddUpPerModel_AndTheReportGroupsThem_AndClearingResetsOnlyTheModel()
    {
        var project = await _app.CreateProjectAsync();
        var gpt4o = await _app.RegisterModelAsync(project, new { model = "gpt-4o-2024-08-06" });
        var nano = await _app.RegisterModelAsync(project, new { model = "gpt-4.1-nano" });
        _app.Fake.Default = _ => FakeReply.Text("x") with { PromptTokens = 1000, CachedTokens = 200, CompletionTokens = 500 };
        var prompt = await project.VariableAsync("{i}", "prompt");
        await project.CallAsync("chat_completion", new
        {
            model_id = gpt4o,
            messages = new[] { new { role = "user", content = new[] { prompt } } },
            inputs = new { i = new[] { "a", "b" } },
        });
        await project.CallAsync("chat_completion", new
        {
            model_id = nano,
            messages = new[] { new { role = "user", content = new[] { prompt } } },
            inputs = new { i = "c" },
        });

        // gpt-4o (a dated snapshot of it): 800 × 2.50 + 200 × 1.25 + 500 × 10.00 per million = 0.00725 USD per call.
        var usage = (await project.Client.GetJsonAsync($"/v1/models/{gpt4o}/usage")).GetProperty("usage");
        Assert.Equal(2, usage.GetProperty("calls").GetInt64());
        Assert.Equal(2000, usage.GetProperty("prompt_tokens").GetInt64());
        Assert.Equal(400, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt64());
        Assert.Equal(1000, usage.GetProperty("completion_tokens").GetInt64());
        Assert.Equal(3000, usage.GetProperty("total_tokens").GetInt64());
        Assert.Equal(0.0145m, usage.GetProperty("cost").GetProperty("amount").GetDecimal());
        Assert.Equal("USD", usage.GetProperty("cost").GetProperty("currency").GetString());
        // gpt-4.1-nano: 800 × 0.10 + 200 × 0.025 + 500 × 0.40 per million = 0.000285 USD.
        Assert.Equal(0.000285m, (await project.Client.GetJsonAsync($"/v1/models/{nano}")).GetProperty("usage").GetProperty("cost").GetProperty("amount").GetDecimal());

        var report = await project.Client.GetJsonAsync("/v1/usage?group_by=model");
        Assert.Equal(0.014785m, report.GetProperty("total").GetProperty("cost").GetProperty("amount").GetDecimal());
        Assert.Equal(3, report.GetProperty("total").GetProperty("calls").GetInt64());
        var groups = report.GetProperty("groups").EnumerateArray().ToDictionary(g => g.GetProperty("key").GetString()!, g => g.GetProperty("usage"));
        Assert.Equal(0.0145m, groups[gpt4o].GetProperty("cost").GetProperty("amount").GetDecimal());
        Assert.Equal(0.000285m, groups[nano].GetProperty("cost").GetProperty("amount").GetDecimal());
        var byName = await project.Client.GetJsonAsync("/v1/usage?group_by=model_name");
        Assert.Contains(byName.GetProperty("groups").EnumerateArray(), g => g.GetProperty("key").GetString() == "gpt-4o-2024-08-06");

        var cleared = await HttpJson.EnsureSuccessAsync(await project.Client.DeleteAsync($"/v1/models/{gpt4o}/usage"));
        Assert.Equal(0, cleared.GetProperty("usage").GetProperty("calls").GetInt64());
        Assert.Equal(0m, (await project.Client.GetJsonAsync($"/v1/models/{gpt4o}/usage")).GetProperty("usage").GetProperty("cost").GetProperty("amount").GetDecimal());
        Assert.Equal(0.014785m, (await project.Client.GetJsonAsync("/v1/usage")).GetProperty("total").GetProperty("cost").GetProperty("amount").GetDecimal());
        await (await project.Client.GetAsync("/v1/usage?group_by=week")).AssertProblemAsync(400, "invalid_group_by");
        await (await project.Client.GetAsync("/v1/usage?model_id=var_1")).AssertProblemAsync(400, "invalid_id");

        var stranger = await _app.CreateProjectAsync();
        Assert.Equal(0, (await stranger.Client.GetJsonAsync("/v1/usage")).GetProperty("total").GetProperty("calls").GetInt64());
    }

    [Fact]
    public async Task TheProviderKey_NeverAppearsInResponsesOrLogs()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var prompt = await project.VariableAsync("hi", "prompt");
        _app.Fake.Enqueue(FakeReply.ServerError(), new FakeReply { Status = 401, Body = """{"error":{"message":"bad key"}}""" });
        using var failed = await project.Client.PostAsJsonAsync("/v1/functions/chat_completion",
            new { model_id = model, messages = new[] { new { role = "user", content = new[] { prompt } } } });
        var bodies = new[]
        {
            await failed.Content.ReadAsStringAsync(),
            await project.Client.GetStringAsync($"/v1/models/{model}"),
            await project.Client.GetStringAsync("/v1/models"),
            await project.Client.GetStringAsync("/v1/usage?group_by=model"),
        };

        Assert.Equal(2, _app.Fake.Requests.Count);
        Assert.NotEmpty(_app.Logs);
        Assert.Contains(_app.Logs, line => line.Contains("attempt 1 failed", StringComparison.Ordinal));
        Assert.All(bodies.Concat(_app.Logs), text => Assert.DoesNotContain("SECRET", text, StringComparison.Ordinal));
        await using var db = _app.CreateDbContext();
        Assert.All(db.ModelCalls.Select(c => c.Request).ToList(), r => Assert.DoesNotContain("SECRET", r, StringComparison.Ordinal));
    }

    private static Guid ModelGuid(string id) =>
        Domain.Common.PrefixedId.TryParse(Domain.Common.PrefixedId.Model, id, out var guid) ? guid : throw new ArgumentException(id, nameof(id));
}
