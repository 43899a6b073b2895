using Afnio.Api.Tests.Infrastructure;
using Afnio.Client;

namespace Afnio.Api.Tests;

/// <summary>
/// The generated C# client drives a whole optimization loop against the real API and worker:
/// forward, evaluate, backward, TGD step, forward again with the new prompt.
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed class GeneratedClientLoopTests : IClassFixture<ModelWorkerApp>
{
    private readonly ModelWorkerApp _app;

    public GeneratedClientLoopTests(ModelWorkerApp app)
    {
        _app = app;
        app.Fake.Default = OptimizerStepTests.Loop;
    }

    [Fact]
    public async Task GeneratedClient_RunsForwardBackwardAndStep_AndTheNewPromptChangesTheAnswer()
    {
        var admin = new AfnioClient(_app.CreateAdminClient());
        var project = await admin.CreateProjectAsync(new CreateProjectRequest { Name = "generated loop" });
        var key = await admin.CreateApiKeyAsync(project.Id, new CreateApiKeyRequest { Name = "sdk" });
        var client = new AfnioClient(_app.CreateClientWithKey(key.Key));
        var model = await client.CreateModelAsync(new CreateModelRequest
        {
            Provider = "openai",
            Base_url = _app.Fake.Endpoint.ToString(),
            Api_key = ModelWorkerApp.ApiKey,
            Default_completion_args = new { model = "gpt-4o" },
        });
        await client.SetBackwardModelAsync(new SetBackwardModelRequest { Model_id = model.Id, Completion_args = new { model = "gpt-4o", temperature = 0 } });
        var prompt = await client.CreateVariableAsync(new CreateVariableRequest { Data = "Answer in lowercase.", Role = "system prompt", Is_parameter = true });
        var question = await client.CreateVariableAsync(new CreateVariableRequest { Data = "{q}", Role = "user question" });
        var target = await client.CreateVariableAsync(new CreateVariableRequest { Data = "HELLO", Role = "expected answer" });
        var optimizer = await client.CreateOptimizerAsync(new CreateOptimizerRequest { Type = "tgd", Params = [prompt.Id], Model_id = model.Id, Momentum = 1 });

        async Task<(double Score, string Explanation)> ForwardAndEvaluateAsync()
        {
            var answer = (await client.CallFunctionAsync("chat_completion", new
            {
                model_id = model.Id,
                messages = new object[] { new { role = "system", content = new[] { prompt.Id } }, new { role = "user", content = new[] { question.Id } } },
                inputs = new { q = "hello" },
            })).Outputs.Single();
            var evaluation = (await client.CallFunctionAsync("exact_match_evaluator", new { prediction = answer.Id, target = target.Id })).Outputs.ToList();
            var score = await client.RetrieveVariableAsync(evaluation[0].Id);
            return (double.Parse(score.Data.ToString()!, System.Globalization.CultureInfo.InvariantCulture), evaluation[1].Id);
        }

        var before = await ForwardAndEvaluateAsync();
        Assert.Equal(0, before.Score);
        var backward = await client.StartBackwardAsync(new BackwardRequest { Variables = [before.Explanation] });
        Assert.Equal(JobStatus.Succeeded, (await WaitAsync(client, backward.Id)).Status);
        Assert.Equal(["Ask for UPPERCASE answers."], (await client.ListVariableGradAsync(prompt.Id)).Data.Select(g => g.Data.ToString()));

        var step = await client.StepOptimizerAsync(optimizer.Id);
        Assert.Equal(JobStatus.Succeeded, (await WaitAsync(client, step.Id)).Status);
        Assert.Equal("Answer in UPPERCASE.", (await client.RetrieveVariableAsync(prompt.Id)).Data.ToString());
        await client.ClearOptimizerGradAsync(optimizer.Id);
        Assert.Empty((await client.ListVariableGradAsync(prompt.Id)).Data);

        var after = await ForwardAndEvaluateAsync();
        Assert.Equal(1, after.Score);
    }

    private static async Task<JobResponse> WaitAsync(AfnioClient client, string jobId)
    {
        for (var i = 0; i < 12; i++)
        {
            var job = await client.RetrieveJobAsync(jobId, wait_seconds: 10);
            if (job.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled)
            {
                return job;
            }
        }

        throw new TimeoutException($"Job {jobId} did not finish.");
    }
}
