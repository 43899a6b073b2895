using Xunit.Abstractions;

namespace Afnio.Api.Tests.Faults;

/// <summary>Random SIGKILLs of the Worker during backward passes whose nodes ask the provider for feedback.</summary>
public sealed class BackwardKillTrialTests(ITestOutputHelper output)
{
    [Fact]
    public async Task BackwardPasses_KilledAtRandomMoments_EndLikeTheUninterruptedPass()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = LanguageModelCrashTests.Reply;
        await using var processes = await SeparateProcesses.StartAsync("afnio_kill_backward", new Dictionary<string, string>
        {
            ["Afnio__Jobs__BackwardConcurrency"] = "4",
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        await new KillTrials(processes, fake, LanguageModelCrashTests.FeedbackCalls, output).RunAsync("backward", new Scenario(fake));
    }

    private sealed class Scenario(FakeOpenAiServer fake) : KillTrials.IScenario<LanguageModelCrashTests.Graph>
    {
        public Task<LanguageModelCrashTests.Graph> SetUpAsync(TestProject project) => LanguageModelCrashTests.BuildAsync(project, fake);

        public async Task<string> StartAsync(TestProject project, LanguageModelCrashTests.Graph graph) =>
            (await project.Client.PostJsonAsync("/v1/backward", new { variables = new[] { graph.Root }, grad_variables = new[] { graph.Feedback } }))
                .GetProperty("id").GetString()!;

        // Every parameter holds exactly the uninterrupted pass's feedback, once.
        public async Task AssertSameAsync(TestProject reference, LanguageModelCrashTests.Graph referenceGraph, TestProject trial, LanguageModelCrashTests.Graph trialGraph)
        {
            for (var i = 0; i < LanguageModelCrashTests.Width; i++)
            {
                var expected = await reference.GradTextsAsync(referenceGraph.Parameters[i]);
                Assert.Equal([$"Make p{i} more specific."], expected);
                Assert.Equal(expected, await trial.GradTextsAsync(trialGraph.Parameters[i]));
            }
        }
    }
}

/// <summary>Random SIGKILLs of the Worker during TGD optimizer steps.</summary>
public sealed class OptimizerKillTrialTests(ITestOutputHelper output)
{
    [Fact]
    public async Task OptimizerSteps_KilledAtRandomMoments_EndLikeTheUninterruptedStep()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = OptimizerCrashTests.Reply;
        await using var processes = await SeparateProcesses.StartAsync("afnio_kill_step", new Dictionary<string, string>
        {
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        await new KillTrials(processes, fake, OptimizerCrashTests.OptimizerCalls, output).RunAsync("optimizer step", new Scenario(fake, processes));
    }

    private sealed class Scenario(FakeOpenAiServer fake, SeparateProcesses processes) : KillTrials.IScenario<OptimizerCrashTests.Setup>
    {
        public Task<OptimizerCrashTests.Setup> SetUpAsync(TestProject project) => OptimizerCrashTests.SetUpAsync(project, fake);

        public async Task<string> StartAsync(TestProject project, OptimizerCrashTests.Setup setup) =>
            (await project.Client.PostJsonAsync($"/v1/optimizers/{setup.Optimizer}/step", new { })).GetProperty("id").GetString()!;

        // Every parameter rewritten once, as the uninterrupted step did, with one momentum entry; no orphan snapshots.
        public async Task AssertSameAsync(TestProject reference, OptimizerCrashTests.Setup referenceSetup, TestProject trial, OptimizerCrashTests.Setup trialSetup)
        {
            var referenceState = await OptimizerCrashTests.StateAsync(reference, referenceSetup.Optimizer);
            var trialState = await OptimizerCrashTests.StateAsync(trial, trialSetup.Optimizer);
            for (var i = 0; i < OptimizerCrashTests.Width; i++)
            {
                var expected = await OptimizerCrashTests.DataAsync(reference, referenceSetup.Parameters[i]);
                Assert.Equal($"P{i} MUST BE UPPER CASE", expected);
                Assert.Equal(expected, await OptimizerCrashTests.DataAsync(trial, trialSetup.Parameters[i]));
                Assert.Single(referenceState[referenceSetup.Parameters[i]]);
                var entry = Assert.Single(trialState[trialSetup.Parameters[i]]);
                Assert.Equal($"p{i} must be upper case", await OptimizerCrashTests.DataAsync(trial, entry.GetProperty("snapshot_id").GetString()!));
            }

            await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
            Assert.Equal(await OptimizerCrashTests.VariableCountAsync(db, reference), await OptimizerCrashTests.VariableCountAsync(db, trial));
        }
    }
}

/// <summary>Random SIGKILLs of the Worker during training runs of the Facility Support program.</summary>
public sealed class TrainingKillTrialTests(ITestOutputHelper output)
{
    [Fact]
    public async Task TrainingRuns_KilledAtRandomMoments_EndLikeTheUninterruptedRun()
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = r => FacilityTraining.Reply(r) with { Delay = TimeSpan.FromMilliseconds(40) };
        await using var processes = await SeparateProcesses.StartAsync("afnio_kill_run", new Dictionary<string, string>
        {
            ["Afnio__Models__AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        });
        await new KillTrials(processes, fake, f => f.Requests.Count, output).RunAsync("training run", new TrainingScenario(fake));
    }
}

/// <summary>A two-epoch Facility Support run with the random sampler (seed 7) and batches of 22.</summary>
internal sealed class TrainingScenario(FakeOpenAiServer fake) : KillTrials.IScenario<TrainingScenario.Setup>
{
    /// <summary>The project's dataset, program and model, and the run once started.</summary>
    public sealed class Setup(string dataset, string program, string model)
    {
        public string Dataset => dataset;

        public string Program => program;

        public string Model => model;

        public string? Run { get; set; }
    }

    public async Task<Setup> SetUpAsync(TestProject project)
    {
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, p => TrainingCrashTests.RegisterAsync(p, fake));
        return new Setup(dataset, program, model);
    }

    public async Task<string> StartAsync(TestProject project, Setup setup)
    {
        var run = await project.Client.PostJsonAsync("/v1/runs",
            TrainingCrashTests.WithRandomSampler(FacilityTraining.RunBody(setup.Program, setup.Dataset, setup.Model, epochs: 2, batchSize: 22)));
        setup.Run = run.GetProperty("id").GetString()!;
        return run.GetProperty("job_id").GetString()!;
    }

    // The same metrics value for value, the same checkpoints, best epoch and promoted prompt.
    public async Task AssertSameAsync(TestProject reference, Setup referenceSetup, TestProject trial, Setup trialSetup)
    {
        Assert.Equal(await TrainingRunTests.MetricsAsync(reference, referenceSetup.Run!), await TrainingRunTests.MetricsAsync(trial, trialSetup.Run!));
        Assert.Equal(await TrainingCrashTests.CheckpointsAsync(reference, referenceSetup.Run!), await TrainingCrashTests.CheckpointsAsync(trial, trialSetup.Run!));
        Assert.Equal(await TrainingCrashTests.ProductionAsync(reference, referenceSetup.Program), await TrainingCrashTests.ProductionAsync(trial, trialSetup.Program));
        var expected = (await reference.Client.GetJsonAsync($"/v1/runs/{referenceSetup.Run}")).GetProperty("training").GetProperty("summary");
        var actual = (await trial.Client.GetJsonAsync($"/v1/runs/{trialSetup.Run}")).GetProperty("training").GetProperty("summary");
        Assert.Equal(expected.GetProperty("best_epoch").GetInt32(), actual.GetProperty("best_epoch").GetInt32());
        Assert.Equal(expected.GetProperty("usage").GetProperty("calls").GetInt32(), actual.GetProperty("usage").GetProperty("calls").GetInt32());
    }
}
