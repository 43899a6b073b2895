using System.Net;
using System.Text.Json;

namespace Afnio.Api.Tests;

/// <summary>
/// Server-driven training of the afnio quickstart's FacilitySupportAnalyzer, stored as a program,
/// against scripted deterministic models (<see cref="FacilityTraining"/>): every metric the run logs
/// is checked against figures computed here from the data.
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed class TrainingRunTests : IClassFixture<ModelWorkerApp>
{
    private readonly ModelWorkerApp _app;

    public TrainingRunTests(ModelWorkerApp app)
    {
        _app = app;
        app.Fake.Reset();
        app.Fake.Default = FacilityTraining.Reply;
    }

    [Fact]
    public async Task TheQuickstartProgram_Trains_Validates_Tests_AndPromotesTheBestPrompt()
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var created = await project.Client.GetJsonAsync($"/v1/programs/{program}");
        Assert.Equal(1, created.GetProperty("version").GetInt32());
        Assert.Equal(FacilityTraining.InitialPrompt, created.GetProperty("parameters").GetProperty("sentiment_task").GetProperty("value").GetString());

        var response = await project.Client.PostAsJsonAsync("/v1/runs", FacilityTraining.RunBody(program, dataset, model));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var run = await response.Content.ReadFromJsonAsync<JsonElement>();
        var runId = run.GetProperty("id").GetString()!;
        Assert.Equal(program, run.GetProperty("training").GetProperty("program_id").GetString());
        Assert.Equal(66, run.GetProperty("training").GetProperty("splits").GetProperty("validation").GetInt32());
        var job = await project.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 120);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());

        // Expected figures, from the data and the scripted models.
        var (train, validation, test) = await SplitAsync(project, dataset);
        var initial = FacilityTraining.InitialPrompt;
        var after1 = $"{initial} {FacilityTraining.Hint}";
        var after2 = $"{after1} {FacilityTraining.Hint}";
        var baseline = Evaluate(validation, initial);
        var neutralVal = Evaluate(validation, after1);
        var batch0 = Score(train[..33], initial);
        var batch1 = Score(train[33..], after1);

        var metrics = await MetricsAsync(project, runId);
        Assert.Equal(baseline.Loss, metrics[("val_loss", 0)], 9);
        Assert.Equal(baseline.Accuracy, metrics[("val_accuracy", 0)], 9);
        Assert.Equal((batch0 + batch1) / 2.0, metrics[("train_loss", 1)], 9);
        Assert.Equal(((batch0 / 33.0) + (batch1 / 33.0)) / 2, metrics[("train_accuracy", 1)], 9);
        Assert.Equal(neutralVal.Accuracy, metrics[("val_accuracy", 1)], 9);
        Assert.Equal(Score(train, after2) / 2.0, metrics[("train_loss", 2)], 9);
        Assert.Equal(neutralVal.Accuracy, metrics[("val_accuracy", 2)], 9);
        Assert.Equal(Evaluate(test, after1).Accuracy, metrics[("test_accuracy", 2)], 9);
        Assert.True(metrics[("total_cost($)", 2)] > metrics[("total_cost($)", 1)], "cost grows epoch by epoch");

        // The best validation checkpoint (epoch 1; epoch 2 ties and the earliest wins) beat production: it is version 2.
        var finished = await project.Client.GetJsonAsync($"/v1/runs/{runId}");
        Assert.Equal("completed", finished.GetProperty("status").GetString());
        var summary = finished.GetProperty("training").GetProperty("summary");
        Assert.True(neutralVal.Accuracy > baseline.Accuracy, "the scripted training improves validation accuracy");
        Assert.Equal(1, summary.GetProperty("best_epoch").GetInt32());
        Assert.True(summary.GetProperty("promotion").GetProperty("promoted").GetBoolean());
        Assert.Equal(2, summary.GetProperty("promotion").GetProperty("program_version").GetInt32());
        var promoted = await project.Client.GetJsonAsync($"/v1/programs/{program}");
        Assert.Equal(2, promoted.GetProperty("version").GetInt32());
        Assert.Equal(after2, promoted.GetProperty("parameters").GetProperty("sentiment_task").GetProperty("value").GetString());
        var version = await project.Client.GetJsonAsync($"/v1/programs/{program}/versions/2");
        Assert.Equal("promoted", version.GetProperty("source").GetString());
        Assert.Equal(runId, version.GetProperty("run_id").GetString());
        Assert.Equal(summary.GetProperty("best_checkpoint_id").GetString(), version.GetProperty("checkpoint_id").GetString());

        // Calls per batch: 33 forward + 1 evaluator feedback + 1 backward + 1 optimizer = B + 2P + 1.
        var usage = summary.GetProperty("usage");
        Assert.Equal(36, usage.GetProperty("call_bound_per_batch").GetInt32());
        Assert.Equal(36, usage.GetProperty("max_calls_per_batch").GetInt32());
        Assert.Equal(4, usage.GetProperty("batches").GetInt32());
        Assert.Equal(66 + (2 * ((2 * 36) + 66)) + 68, usage.GetProperty("calls").GetInt32());
        Assert.Equal(usage.GetProperty("calls").GetInt32(), _app.Fake.Requests.Count);

        // Checkpoints: the baseline, one per batch, one per epoch.
        var checkpoints = (await project.Client.GetJsonAsync($"/v1/runs/{runId}/checkpoints")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(["baseline", "batch", "batch", "epoch", "batch", "batch", "epoch"], checkpoints.Select(c => c.GetProperty("kind").GetString()));
        Assert.Equal(after1, checkpoints[1].GetProperty("parameters").GetProperty("sentiment_task").GetString());
        var full = await project.Client.GetJsonAsync($"/v1/checkpoints/{checkpoints[2].GetProperty("id").GetString()}");
        var state = full.GetProperty("state");
        Assert.Equal([initial, after1], state.GetProperty("momentum").GetProperty("sentiment_task").EnumerateArray().Select(p => p.GetProperty("value").GetString()));
        var gradient = Assert.Single(state.GetProperty("gradients").GetProperty("sentiment_task").EnumerateArray());
        Assert.Equal("feedback to system prompt for sentiment classification", gradient.GetProperty("role").GetString());

        // Progress shows in the job's event stream.
        var events = (await project.Client.GetJsonAsync($"/v1/jobs/{run.GetProperty("job_id").GetString()}/events?limit=100")).GetProperty("data").EnumerateArray().ToList();
        var batches = events.Where(e => e.GetProperty("type").GetString() == "run.batch_completed").Select(e => e.GetProperty("data")).ToList();
        Assert.Equal([(1, 0), (1, 1), (2, 0), (2, 1)], batches.Select(b => (b.GetProperty("epoch").GetInt32(), b.GetProperty("batch").GetInt32())));
        Assert.All(batches, b => Assert.Equal(36, b.GetProperty("calls").GetInt32()));
        Assert.All(batches, b => Assert.True(b.GetProperty("eta_seconds").GetDouble() >= 0));
        Assert.Equal(2, events.Count(e => e.GetProperty("type").GetString() == "run.epoch_completed"));
        Assert.Single(events, e => e.GetProperty("type").GetString() == "program.promoted");
    }

    [Fact]
    public async Task ARunThatCannotBeatProduction_LeavesTheProgramUnchanged_AndSaysWhy()
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var first = await RunAsync(project, FacilityTraining.RunBody(program, dataset, model, epochs: 1));
        Assert.True(first.GetProperty("summary").GetProperty("promotion").GetProperty("promoted").GetBoolean());

        // Production now answers neutral already; training it again cannot do better on validation.
        var second = await RunAsync(project, FacilityTraining.RunBody(program, dataset, model, epochs: 1));
        var promotion = second.GetProperty("summary").GetProperty("promotion");
        Assert.False(promotion.GetProperty("promoted").GetBoolean());
        Assert.Contains("No epoch beat production version 2", promotion.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(2, (await project.Client.GetJsonAsync($"/v1/programs/{program}")).GetProperty("version").GetInt32());
    }

    [Fact]
    public async Task ARunOutOfBudget_StopsBeforeTheNextBatch_AsStoppedBudget_KeepingItsBestCheckpoint()
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        const decimal budget = 0.0004m;
        var body = FacilityTraining.RunBody(program, dataset, model, epochs: 3);
        body["max_cost_usd"] = budget;
        var training = await RunAsync(project, body);

        var summary = training.GetProperty("summary");
        Assert.Equal("stopped_budget", summary.GetProperty("status").GetString());
        Assert.Contains("max_cost_usd", summary.GetProperty("stop_reason").GetString(), StringComparison.Ordinal);
        var spent = summary.GetProperty("usage").GetProperty("cost_usd").GetDecimal();
        Assert.True(spent <= budget, $"spent {spent} of {budget}");

        // It validated production, trained one batch, and stopped because another batch would cross the budget.
        var checkpoints = (await project.Client.GetJsonAsync($"/v1/runs/{training.GetProperty("run_id").GetString()}/checkpoints")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(["baseline", "batch"], checkpoints.Select(c => c.GetProperty("kind").GetString()));
        var batchCost = checkpoints[1].GetProperty("cost_usd").GetDecimal() - checkpoints[0].GetProperty("cost_usd").GetDecimal();
        Assert.True(spent + batchCost > budget, "the run did not stop early: one more batch would have crossed the budget");
        Assert.Equal(checkpoints[0].GetProperty("id").GetString(), summary.GetProperty("best_checkpoint_id").GetString());
        Assert.Equal("stopped_budget", (await project.Client.GetJsonAsync($"/v1/runs/{training.GetProperty("run_id").GetString()}")).GetProperty("status").GetString());
        Assert.False(summary.GetProperty("promotion").GetProperty("promoted").GetBoolean());
        Assert.Equal(1, (await project.Client.GetJsonAsync($"/v1/programs/{program}")).GetProperty("version").GetInt32());
    }

    [Fact]
    public async Task AWeightedSampler_ValidateEvery_AndALaterTestPass_FollowTheRunsSettings()
    {
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var body = FacilityTraining.RunBody(program, dataset, model, epochs: 3);
        body["sampler"] = new { type = "weighted", label_field = "answer", label_json_field = "sentiment" };
        body["seed"] = 5;
        body["validate_every"] = 2;
        body["promote"] = false;
        body["test"] = false;
        var run = await project.Client.PostJsonAsync("/v1/runs", body);
        var runId = run.GetProperty("id").GetString()!;
        Assert.Equal("succeeded", (await project.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 120)).GetProperty("status").GetString());

        // Epoch 1 draws its batches with class-balancing weights (Python's random.choices, seed 5 + epoch 0).
        var (train, validation, test) = await SplitAsync(project, dataset);
        var weights = Domain.Datasets.Sampler.ClassBalancingWeights([.. train.Select(FacilityTraining.Gold)]);
        var order = new Domain.Datasets.WeightedRandomSampler(weights, train.Length, 5).Order(0);
        var batch0 = Score(order.Take(33).Select(i => train[i]), FacilityTraining.InitialPrompt);
        var batch1 = Score(order.Skip(33).Select(i => train[i]), $"{FacilityTraining.InitialPrompt} {FacilityTraining.Hint}");
        var metrics = await MetricsAsync(project, runId);
        Assert.Equal((batch0 + batch1) / 2.0, metrics[("train_loss", 1)], 9);
        Assert.NotEqual(Score(train[..33], FacilityTraining.InitialPrompt) + Score(train[33..], $"{FacilityTraining.InitialPrompt} {FacilityTraining.Hint}"), batch0 + batch1);

        // Validation every 2 epochs, and after the last; no test pass until one is asked for.
        Assert.Equal([2L, 3L], metrics.Keys.Where(k => k.Name == "val_accuracy").Select(k => k.Step).Order());
        Assert.DoesNotContain(metrics.Keys, k => k.Name.StartsWith("test_", StringComparison.Ordinal));
        var job = await project.Client.PostJsonAsync($"/v1/runs/{runId}/test", new { });
        var tested = await project.WaitForJobAsync(job.GetProperty("id").GetString()!, 120);
        Assert.Equal("succeeded", tested.GetProperty("status").GetString());
        var expected = Evaluate(test, $"{FacilityTraining.InitialPrompt} {FacilityTraining.Hint}").Accuracy;
        Assert.Equal(expected, tested.GetProperty("result").GetProperty("metrics").GetProperty("test_accuracy").GetDouble(), 9);
        Assert.Equal(expected, (await MetricsAsync(project, runId))[("test_accuracy", 3)], 9);
        Assert.Equal(Evaluate(validation, FacilityTraining.Hint).Accuracy, metrics[("val_accuracy", 2)], 9);
    }

    [Fact]
    public async Task CancellingARunningRun_StopsIt_AndKeepsTheCheckpointsItCommitted()
    {
        _app.Fake.Default = r => FacilityTraining.Reply(r) with { Delay = TimeSpan.FromMilliseconds(150) };
        var project = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }, maxConcurrency: 4));
        var run = await project.Client.PostJsonAsync("/v1/runs", FacilityTraining.RunBody(program, dataset, model, epochs: 5, batchSize: 11));
        var runId = run.GetProperty("id").GetString()!;
        await Eventually.UntilAsync(async () => (await project.Client.GetJsonAsync($"/v1/runs/{runId}/checkpoints")).GetProperty("data").GetArrayLength() >= 2,
            TimeSpan.FromSeconds(60), () => "the run did not commit a batch");
        var cancelling = await project.Client.PostJsonAsync($"/v1/runs/{runId}/cancel", new { });
        Assert.Contains(cancelling.GetProperty("status").GetString(), new[] { "cancelling", "cancelled" });
        var job = await project.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 60);
        Assert.Equal("cancelled", job.GetProperty("status").GetString());
        Assert.Equal("cancelled", (await project.Client.GetJsonAsync($"/v1/runs/{runId}")).GetProperty("status").GetString());
        var kept = (await project.Client.GetJsonAsync($"/v1/runs/{runId}/checkpoints?limit=100")).GetProperty("data").GetArrayLength();
        Assert.InRange(kept, 2, 5 * 7);
        Assert.Equal(1, (await project.Client.GetJsonAsync($"/v1/programs/{program}")).GetProperty("version").GetInt32());
    }

    private static async Task<JsonElement> RunAsync(TestProject project, object body)
    {
        var run = await project.Client.PostJsonAsync("/v1/runs", body);
        var job = await project.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 120);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var training = (await project.Client.GetJsonAsync($"/v1/runs/{run.GetProperty("id").GetString()}")).GetProperty("training");
        return JsonSerializer.SerializeToElement(new Dictionary<string, JsonElement>
        {
            ["run_id"] = run.GetProperty("id"),
            ["summary"] = training.GetProperty("summary"),
        });
    }

    internal static async Task<(JsonElement[] Train, JsonElement[] Validation, JsonElement[] Test)> SplitAsync(TestProject project, string dataset)
    {
        var split = await project.Client.PostJsonAsync($"/v1/datasets/{dataset}/split", new { method = "sizes", sizes = new[] { 66, 66, 68 }, seed = 0 });
        var items = (await project.Client.GetJsonAsync($"/v1/datasets/{dataset}/items?limit=1000")).GetProperty("data").EnumerateArray()
            .ToDictionary(i => i.GetProperty("id").GetString()!, i => i.GetProperty("data").Clone());
        JsonElement[] Of(int i) => [.. split.GetProperty("splits")[i].GetProperty("item_ids").EnumerateArray().Select(id => items[id.GetString()!])];
        return (Of(0), Of(1), Of(2));
    }

    internal static async Task<Dictionary<(string Name, long Step), double>> MetricsAsync(TestProject project, string runId) =>
        (await project.Client.GetJsonAsync($"/v1/runs/{runId}/metrics?limit=100")).GetProperty("data").EnumerateArray()
            .ToDictionary(m => (m.GetProperty("name").GetString()!, m.GetProperty("step").GetInt64()), m => m.GetProperty("value").GetDouble());

    /// <summary>Correct answers of the scripted classifier over some items, with a given system prompt.</summary>
    internal static int Score(IEnumerable<JsonElement> items, string system) =>
        items.Count(i => FacilityTraining.Classify(system, FacilityTraining.UserPrompt(i)) == FacilityTraining.Gold(i));

    /// <summary>Validation as afnio averages it: per batch of 33, then the mean over batches.</summary>
    internal static (double Loss, double Accuracy) Evaluate(JsonElement[] items, string system)
    {
        var batches = items.Chunk(33).Select(b => (Score: (double)Score(b, system), Size: b.Length)).ToList();
        return (batches.Average(b => b.Score), batches.Average(b => b.Score / b.Size));
    }
}
