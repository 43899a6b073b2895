using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Afnio.Api.Tests;

/// <summary>
/// Programs are validated whole at creation, and runs at their start: every mistake is a precise 400
/// (or a 404 for ids of other projects) and stores nothing.
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed class ProgramInputTests : IClassFixture<ModelWorkerApp>
{
    private readonly ModelWorkerApp _app;

    public ProgramInputTests(ModelWorkerApp app)
    {
        _app = app;
        app.Fake.Reset();
        app.Fake.Default = FacilityTraining.Reply;
    }

    public static TheoryData<string, string, string, string> BadPrograms => new()
    {
        // (what, JSON edit as "path=value", code, param)
        { "no parameters", "parameters={}", "invalid_program", "definition.parameters" },
        { "a non-text parameter", "parameters.sentiment_task.value=3", "invalid_program", "definition.parameters.sentiment_task.value" },
        { "a parameter without a role", "parameters.sentiment_task.role=null", "invalid_program", "definition.parameters.sentiment_task.role" },
        { "a bad name", "constants.bad-name={\"value\":\"x\"}", "invalid_program", "definition.constants.bad-name" },
        { "an unknown field", "extra=1", "unknown_field", "definition.extra" },
        { "an unknown op", "steps[0].op=\"shell\"", "invalid_program", "definition.steps[0].op" },
        { "a model id in args", "steps[0].args.model_id=\"mdl_x\"", "invalid_program", "definition.steps[0].args.model_id" },
        { "a dangling reference", "steps[0].args.inputs.message={\"ref\":\"nowhere\"}", "invalid_program", "definition.steps[0].args.inputs.message" },
        { "a self reference", "steps[0].args.inputs.message={\"ref\":\"sentiment_classifier\"}", "invalid_program", "definition.steps[0].args.inputs.message" },
        { "a reference to a later step", "steps[0].args.inputs.message={\"ref\":\"prediction\"}", "invalid_program", "definition.steps[0].args.inputs.message" },
        { "an output that does not exist", "loss.args.prediction={\"ref\":\"sentiment_classifier\",\"output\":1}", "invalid_program", "definition.loss.args.prediction.output" },
        { "a template without its input", "steps[0].args.inputs={}", "missing_input", "definition.steps[0].args.messages[1]" },
        { "an op argument error", "steps[0].args.messages=3", "invalid_type", "definition.steps[0].args.messages" },
        { "an unknown transform", "output.transform=[\"shout\"]", "invalid_program", "definition.output.transform[0]" },
        { "a field without a name", "output.transform=[{\"op\":\"field\"}]", "invalid_program", "definition.output.transform[0].name" },
        { "an unknown metric", "metrics=[\"f1\"]", "invalid_program", "definition.metrics[0]" },
        { "a loss that is not an evaluator", "loss.op=\"add\"", "invalid_program", "definition.loss.op" },
        { "a duplicated name", "constants.message={\"value\":\"x\"}", "invalid_program", "definition.inputs.message" },
        { "a parameter that never reaches the loss", "parameters.unused={\"value\":\"x\",\"role\":\"r\"}", "invalid_program", "definition.parameters.unused" },
        { "an output from no step", "output.from=\"ghost\"", "invalid_program", "definition.output.from" },
        { "two steps with one name", "steps[1]={\"name\":\"sentiment_classifier\",\"op\":\"add\",\"args\":{\"x\":{\"ref\":\"message\"},\"y\":{\"ref\":\"message\"}}}", "invalid_program", "definition.steps[1].name" },
        { "a name with a trailing newline", "constants.c\n={\"value\":\"x\"}", "invalid_program", "definition.constants.c\n" },
        { "a bad field path", "inputs.message.field=\"fields..input\"", "invalid_program", "definition.inputs.message.field" },
    };

    [Theory]
    [MemberData(nameof(BadPrograms))]
    public async Task ABadProgram_IsRefused_WithAPreciseProblem_AndStoresNothing(string what, string edit, string code, string param)
    {
        var project = await _app.CreateProjectAsync();
        var definition = Edit(FacilityTraining.Program, edit);
        var response = await project.Client.PostAsJsonAsync("/v1/programs", new { name = what, definition });
        var problem = await response.AssertProblemAsync(400, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        Assert.Empty((await project.Client.GetJsonAsync("/v1/programs")).GetProperty("data").EnumerateArray());
    }

    [Theory]
    [InlineData("{\"metrics\": [], \"metrics\": []}")]
    [InlineData("{\"parameters\": {\"p\": {\"value\": \"\\ud800\", \"role\": \"r\"}}}")]
    [InlineData("{\"parameters\": {\"p\": {\"value\": \"a\\u0000b\", \"role\": \"r\"}}}")]
    public async Task UnreadableProgramJson_IsA400_NotA500(string definition)
    {
        var project = await _app.CreateProjectAsync();
        var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/programs", $"{{\"name\": \"x\", \"definition\": {definition}}}");
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Empty((await project.Client.GetJsonAsync("/v1/programs")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task ParameterNames_ComeBackExactlyAsGiven()
    {
        var project = await _app.CreateProjectAsync();
        var definition = Edit(FacilityTraining.Program, "parameters.systemPrompt={\"value\":\"Classify.\",\"role\":\"system prompt\"}");
        definition = Edit(definition, "steps[0].args.messages[0].content[0].ref=\"systemPrompt\"");
        definition = Edit(definition, "parameters.sentiment_task=null");
        var program = await project.Client.PostJsonAsync("/v1/programs", new { name = "camel", definition });
        Assert.Equal("Classify.", program.GetProperty("parameters").GetProperty("systemPrompt").GetProperty("value").GetString());
        var version = await project.Client.GetJsonAsync($"/v1/programs/{program.GetProperty("id").GetString()}/versions/1");
        Assert.Equal("Classify.", version.GetProperty("parameters").GetProperty("systemPrompt").GetString());
    }

    [Fact]
    public async Task TheQuickstartProgram_RoundTrips_AndOtherProjectsCannotSeeIt()
    {
        var project = await _app.CreateProjectAsync();
        var other = await _app.CreateProjectAsync();
        var program = await project.Client.PostJsonAsync("/v1/programs", new { name = "facility", definition = FacilityTraining.Program });
        var id = program.GetProperty("id").GetString()!;
        Assert.StartsWith("prg_", id, StringComparison.Ordinal);
        Assert.Equal("sentiment_classifier", program.GetProperty("definition").GetProperty("steps")[0].GetProperty("name").GetString());
        var versions = (await project.Client.GetJsonAsync($"/v1/programs/{id}/versions")).GetProperty("data");
        Assert.Equal("created", Assert.Single(versions.EnumerateArray()).GetProperty("source").GetString());
        await (await other.Client.GetAsync($"/v1/programs/{id}")).AssertProblemAsync(404, "program_not_found");
        await (await other.Client.DeleteAsync($"/v1/programs/{id}")).AssertProblemAsync(404, "program_not_found");
        await (await project.Client.GetAsync($"/v1/programs/{id}/versions/9")).AssertProblemAsync(404, "program_version_not_found");
        Assert.Equal(HttpStatusCode.NoContent, (await project.Client.DeleteAsync($"/v1/programs/{id}")).StatusCode);
        await (await project.Client.GetAsync($"/v1/programs/{id}")).AssertProblemAsync(404, "program_not_found");
    }

    public static TheoryData<string, string, int, string, string> BadRuns => new()
    {
        // (what, edit of the run body, status, code, param)
        { "an unknown program", "program_id=\"prg_00000000000000000000000000000000\"", 404, "program_not_found", "program_id" },
        { "no dataset", "dataset=null", 400, "missing_field", "dataset.id" },
        { "no split", "dataset={\"id\":\"$dataset\"}", 400, "missing_field", "dataset.splits" },
        { "a split name a run does not use", "dataset={\"id\":\"$dataset\",\"split\":{\"method\":\"sizes\",\"sizes\":[100,100],\"names\":[\"train\",\"holdout\"]}}", 400, "invalid_split_name", "dataset" },
        { "a foreign item", "dataset={\"id\":\"$dataset\",\"splits\":{\"train\":[\"item_00000000000000000000000000000000\"]}}", 400, "unknown_item", "dataset.splits.train" },
        { "an unknown model", "models={\"forward\":\"mdl_00000000000000000000000000000000\"}", 404, "model_not_found", "models.forward" },
        { "no forward model", "models={\"backward\":\"$model\"}", 400, "missing_model", "models.forward" },
        { "zero epochs", "epochs=0", 400, "invalid_epochs", "epochs" },
        { "a huge batch", "batch_size=5000", 400, "invalid_batch_size", "batch_size" },
        { "a string for epochs", "epochs=\"2\"", 400, "invalid_type", "epochs" },
        { "a negative budget", "max_cost_usd=-1", 400, "invalid_max_cost_usd", "max_cost_usd" },
        { "an unknown sampler", "sampler={\"type\":\"shuffled\"}", 400, "invalid_sampler", "sampler.type" },
        { "weights of the wrong length", "sampler={\"type\":\"weighted\",\"weights\":[1,2]}", 400, "invalid_weights", "sampler.weights" },
        { "an unknown select metric", "select_metric=\"f1\"", 400, "invalid_select_metric", "select_metric" },
        { "a status", "status=\"completed\"", 400, "invalid_status", "status" },
        { "a momentum out of range", "optimizer={\"momentum\":101}", 400, "invalid_momentum", "optimizer.momentum" },
    };

    [Theory]
    [MemberData(nameof(BadRuns))]
    public async Task ABadRun_IsRefused_AndStartsNothing(string what, string edit, int status, string code, string param)
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var body = JsonSerializer.SerializeToNode(FacilityTraining.RunBody(program, dataset, model))!.AsObject();
        var edited = Edit(JsonSerializer.SerializeToElement(body), edit.Replace("$dataset", dataset, StringComparison.Ordinal).Replace("$model", model, StringComparison.Ordinal));
        var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/runs", edited.GetRawText());
        var problem = await response.AssertProblemAsync(status, code);
        Assert.True(param == problem.GetProperty("param").GetString(), $"{what}: {problem}");
        Assert.Empty((await project.Client.GetJsonAsync("/v1/runs")).GetProperty("data").EnumerateArray());
        Assert.Empty((await project.Client.GetJsonAsync("/v1/jobs")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task RunsAndCheckpoints_OfAnotherProject_Are404()
    {
        var project = await _app.CreateProjectAsync();
        var other = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var run = await project.Client.PostJsonAsync("/v1/runs", FacilityTraining.RunBody(program, dataset, model, epochs: 1, batchSize: 66));
        var runId = run.GetProperty("id").GetString()!;
        await project.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 120);
        var checkpoint = (await project.Client.GetJsonAsync($"/v1/runs/{runId}/checkpoints")).GetProperty("data")[0].GetProperty("id").GetString()!;

        await (await other.Client.GetAsync($"/v1/runs/{runId}/checkpoints")).AssertProblemAsync(404, "run_not_found");
        await (await other.Client.GetAsync($"/v1/checkpoints/{checkpoint}")).AssertProblemAsync(404, "checkpoint_not_found");
        await (await other.Client.PostAsJsonAsync($"/v1/runs/{runId}/cancel", new { })).AssertProblemAsync(404, "run_not_found");
        await (await other.Client.PostAsJsonAsync($"/v1/runs/{runId}/test", new { })).AssertProblemAsync(404, "run_not_found");
        // The other project cannot train this project's program either, nor start from its checkpoint.
        var (otherData, otherProgram, otherModel) = await FacilityTraining.SetUpAsync(other, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        await (await other.Client.PostAsJsonAsync("/v1/runs", FacilityTraining.RunBody(program, otherData, otherModel))).AssertProblemAsync(404, "program_not_found");
        var body = FacilityTraining.RunBody(otherProgram, otherData, otherModel);
        body["from_checkpoint_id"] = checkpoint;
        await (await other.Client.PostAsJsonAsync("/v1/runs", body)).AssertProblemAsync(404, "checkpoint_not_found");
        // A finished run cannot be cancelled; a client-driven run has no job to cancel.
        await (await project.Client.PostAsJsonAsync($"/v1/runs/{runId}/cancel", new { })).AssertProblemAsync(409, "job_not_cancellable");
        // The service logs a server-driven run's metrics; a client may not add its own.
        await (await project.Client.PostAsJsonAsync($"/v1/runs/{runId}/metrics", new { name = "test_loss", value = 1 })).AssertProblemAsync(409, "run_server_driven");
        var manual = await project.Client.PostJsonAsync("/v1/runs", new { name = "by hand" });
        await (await project.Client.PostAsJsonAsync($"/v1/runs/{manual.GetProperty("id").GetString()}/cancel", new { })).AssertProblemAsync(409, "run_not_server_driven");
    }

    /// <summary>Applies one "path=json" edit (dots and [i] indices; a null value removes the field).</summary>
    private static JsonElement Edit(JsonElement source, string edit)
    {
        var root = JsonNode.Parse(source.GetRawText())!;
        var (path, value) = (edit[..edit.IndexOf('=', StringComparison.Ordinal)], edit[(edit.IndexOf('=', StringComparison.Ordinal) + 1)..]);
        var parts = path.Replace("[", ".[", StringComparison.Ordinal).Split('.');
        JsonNode node = root;
        foreach (var part in parts[..^1])
        {
            node = part.StartsWith('[') ? node[int.Parse(part[1..^1], System.Globalization.CultureInfo.InvariantCulture)]! : node[part]!;
        }

        var last = parts[^1];
        var parsed = JsonNode.Parse(value);
        if (last.StartsWith('['))
        {
            var index = int.Parse(last[1..^1], System.Globalization.CultureInfo.InvariantCulture);
            if (index == node.AsArray().Count)
            {
                node.AsArray().Add(parsed);
            }
            else
            {
                node[index] = parsed;
            }
        }
        else if (parsed is null)
        {
            node.AsObject().Remove(last);
        }
        else
        {
            node[last] = parsed;
        }

        return JsonSerializer.SerializeToElement(root);
    }
}
