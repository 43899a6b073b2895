using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests.Limits;

/// <summary>
/// The prompt-amplification findings in small form: every limit answers its status and code before
/// any model call is made and before anything is stored.
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed class OperationLimitTests : IClassFixture<ModelWorkerApp>
{
    private readonly ModelWorkerApp _app;

    public OperationLimitTests(ModelWorkerApp app)
    {
        _app = app;
        app.Fake.Reset();
    }

    [Fact]
    public async Task ATemplateOfTooManyPlaceholders_IsRefused_BeforeAnyCall()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var template = await project.VariableAsync(string.Concat(Enumerable.Repeat("{a}", 257)), "user message template");

        var response = await ChatAsync(project, model, template, new { a = "x" });

        var problem = await response.AssertProblemAsync(400, "too_many_placeholders");
        Assert.Contains("at most 256", problem.GetProperty("detail").GetString());
        Assert.Empty(_app.Fake.Requests);
    }

    [Fact]
    public async Task APromptOverThePerCallLimit_Is413_BeforeAnyCall()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        // A request of 100 KB that would render 43 copies of its input: 4.3 MB, over the 4 MiB per call.
        var template = await project.VariableAsync(string.Concat(Enumerable.Repeat("{a} ", 43)), "user message template");

        var response = await ChatAsync(project, model, template, new { a = new string('x', 100_000) });

        var problem = await response.AssertProblemAsync(413, "prompt_too_large");
        Assert.Contains("4194304 bytes per call", problem.GetProperty("detail").GetString());
        Assert.Empty(_app.Fake.Requests);
    }

    [Fact]
    public async Task ABatchWhosePromptsTogetherExceedThePerRequestLimit_Is413_BeforeAnyCall()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        // Each item renders 900 KB (under the per-call limit); twenty of them are 18 MB, over the 16 MiB per request.
        var template = await project.VariableAsync(string.Concat(Enumerable.Repeat("{a}", 20)), "user message template");
        var items = Enumerable.Range(0, 20).Select(i => new string((char)('a' + i), 45_000)).ToArray();

        var response = await ChatAsync(project, model, template, new { a = items });

        var problem = await response.AssertProblemAsync(413, "prompt_too_large");
        Assert.Contains("16777216 bytes together", problem.GetProperty("detail").GetString());
        Assert.Empty(_app.Fake.Requests);
    }

    [Fact]
    public async Task ABatchOfTooManyItems_IsRefused_BeforeAnyCall()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var template = await project.VariableAsync("{a}", "user message template");

        var response = await ChatAsync(project, model, template, new { a = Enumerable.Range(0, 1001).Select(i => $"{i}").ToArray() });

        await response.AssertProblemAsync(400, "batch_too_large");
        Assert.Empty(_app.Fake.Requests);
    }

    [Fact]
    public async Task ABatchWithinTheLimits_StillRunsOneCallPerItem()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var template = await project.VariableAsync("Say {a} twice: {a} {a}", "user message template");

        var response = await ChatAsync(project, model, template, new { a = new[] { "one", "two", "three" } });

        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        Assert.Equal(["Say one twice: one one", "Say three twice: three three", "Say two twice: two two"],
            _app.Fake.Requests.Select(r => FakeOpenAiServer.MessageText(r, "user")).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task ARoleOverTheLimit_IsRefused_OnCreateAndUpdate_AndNothingChanges()
    {
        var project = await _app.CreateProjectAsync();
        var created = await project.Client.PostAsJsonAsync("/v1/variables", new { data = "x", role = new string('r', 1001) });
        await created.AssertProblemAsync(400, "role_too_long");

        var variable = await project.VariableAsync("x", "a short role");
        var updated = await project.Client.PatchAsJsonAsync($"/v1/variables/{variable}", new { role = new string('r', 1001) });
        await updated.AssertProblemAsync(400, "role_too_long");
        Assert.Equal("a short role", (await project.Client.GetJsonAsync($"/v1/variables/{variable}")).GetProperty("role").GetString());

        var longest = await project.Client.PostAsJsonAsync("/v1/variables", new { data = "x", role = new string('r', 1000) });
        Assert.True(longest.IsSuccessStatusCode, await longest.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ASplitIntoTooManyParts_IsRefused_AndStoresNoOutputs()
    {
        var project = await _app.CreateProjectAsync();
        var words = await project.VariableAsync(string.Join(' ', Enumerable.Range(0, 1001).Select(i => $"w{i}")), new string('r', 1000));
        var before = await CountVariablesAsync(project);

        var response = await project.Client.PostAsJsonAsync("/v1/functions/split", new { x = words });

        await response.AssertProblemAsync(400, "too_many_outputs");
        Assert.Equal(before, await CountVariablesAsync(project));
        var fits = await project.VariableAsync(string.Join(' ', Enumerable.Range(0, 1000).Select(i => $"w{i}")), "text");
        Assert.Equal(1000, (await project.OutputsAsync("split", new { x = fits })).Count);
    }

    [Fact]
    public async Task ABackwardNamingTooManyVariables_IsRefused_BeforeAnyLookup()
    {
        var project = await _app.CreateProjectAsync();
        var ids = Enumerable.Range(0, 1001).Select(_ => $"var_{Guid.CreateVersion7():N}").ToArray();

        var response = await project.Client.PostAsJsonAsync("/v1/backward", new { variables = ids });

        await response.AssertProblemAsync(400, "too_many_variables");
    }

    [Fact]
    public async Task AFailedCallsOversizedRequest_IsJournaledAsItsHashAndAnExcerpt()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        _app.Fake.Default = _ => new FakeReply { Status = 400, Body = """{"error":{"message":"context length exceeded","type":"invalid_request_error"}}""" };
        var template = await project.VariableAsync("{a}", "user message template");

        var response = await ChatAsync(project, model, template, new { a = new string('x', 200_000) });

        await response.AssertProblemAsync(502, "model_call_failed");
        await using var db = _app.CreateDbContext();
        var projectId = Guid.ParseExact(project.Id["proj_".Length..], "N");
        var stored = await db.ModelCalls.AsNoTracking().Where(c => c.ProjectId == projectId).Select(c => c.Request).SingleAsync();
        Assert.True(stored.Length < 70_000, $"the journal kept {stored.Length} characters of a 200 KB request");
        using var journaled = JsonDocument.Parse(stored);
        Assert.True(journaled.RootElement.GetProperty("truncated").GetBoolean());
        Assert.Equal(64, journaled.RootElement.GetProperty("sha256").GetString()!.Length);
        Assert.True(journaled.RootElement.GetProperty("bytes").GetInt32() > 200_000);
        Assert.StartsWith("{\"model\":\"gpt-4o\"", journaled.RootElement.GetProperty("excerpt").GetString());
    }

    [Fact]
    public async Task ATrainingRunWhoseItemsRenderAnOversizedPrompt_FailsWithTheLimit_BeforeAnyCall()
    {
        var project = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(project);
        var message = new string('m', (int)Afnio.Domain.Common.OperationLimits.Default.MaxPromptBytesPerCall);
        var items = Enumerable.Range(0, 4).Select(i => new { fields = new { input = $"{i} {message}" }, answer = """{"sentiment":"neutral"}""" });
        var dataset = (await project.Client.PostJsonAsync("/v1/datasets", new { name = "oversized", items })).GetProperty("id").GetString()!;
        var program = (await project.Client.PostJsonAsync("/v1/programs", new { name = "analyzer", definition = FacilityTraining.Program })).GetProperty("id").GetString()!;
        var body = FacilityTraining.RunBody(program, dataset, model, epochs: 1, batchSize: 2);
        body["dataset"] = new { id = dataset, split = new { method = "sizes", sizes = new[] { 2, 1, 1 }, seed = 0 } };
        body["test"] = false;
        body["promote"] = false;

        var run = await project.Client.PostJsonAsync("/v1/runs", body);
        var job = await project.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 120);

        Assert.Equal("failed", job.GetProperty("status").GetString());
        Assert.Equal("prompt_too_large", job.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("Afnio__Limits__MaxPromptBytesPerCall", job.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(_app.Fake.Requests);
        var finished = await project.Client.GetJsonAsync($"/v1/runs/{run.GetProperty("id").GetString()}");
        Assert.Equal("failed", finished.GetProperty("status").GetString());
    }

    private static Task<HttpResponseMessage> ChatAsync(TestProject project, string model, string template, object inputs) =>
        project.Client.PostAsJsonAsync("/v1/functions/chat_completion", new
        {
            model_id = model,
            messages = new[] { new { role = "user", content = new[] { template } } },
            inputs,
        });

    private async Task<int> CountVariablesAsync(TestProject project)
    {
        await using var db = _app.CreateDbContext();
        var projectId = Guid.ParseExact(project.Id["proj_".Length..], "N");
        return await db.Variables.CountAsync(v => v.ProjectId == projectId);
    }
}
