using Afnio.Data.Jobs;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Afnio.Api.Tests;

/// <summary>Backward passes through the API and a real worker, with the reference's examples (semantics §2.4–2.5).</summary>
[Collection(WorkerHosts.Name)]
public sealed class BackwardApiTests(WorkerApp app) : IClassFixture<WorkerApp>
{
    private static string Combined(string role, string feedback) =>
        $"Here is the combined feedback we got for this specific {role} and other variables: {feedback}";

    [Fact]
    public async Task AddThenBackward_GivesTheCombinedFeedback_ToTheInputThatRequiresGrad()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("abc", "first input", requiresGrad: true);
        var y = await project.VariableAsync("def", "second input");
        var z = await project.OutputAsync("add", new { x, y });
        var feedback = await project.VariableAsync("MY_FEEDBACK", "feedback");

        var job = await project.BackwardAsync(new { variables = new[] { z }, grad_variables = new[] { feedback } });

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal("backward", job.GetProperty("type").GetString());
        var gradient = Assert.Single((await project.GradListAsync(x)).EnumerateArray());
        Assert.Equal(Combined("first input", "MY_FEEDBACK"), gradient.GetProperty("data").GetString());
        Assert.Equal("feedback to first input", gradient.GetProperty("role").GetString());
        Assert.False(gradient.GetProperty("requires_grad").GetBoolean());
        Assert.Equal(JsonValueKind.Null, gradient.GetProperty("grad_fn").ValueKind);
        Assert.Empty(await project.GradTextsAsync(y));
        Assert.Equal([x], job.GetProperty("result").GetProperty("variable_ids").EnumerateArray().Select(v => v.GetString()));
        Assert.Equal(1, job.GetProperty("result").GetProperty("gradients_appended").GetInt32());
        Assert.Equal(job.GetProperty("progress").GetProperty("total").GetInt32(), job.GetProperty("progress").GetProperty("completed").GetInt32());
    }

    [Fact]
    public async Task Split_BackwardFromEachPart_WithRetainGraph_GivesTwoGradientsInOrder()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("afnio is great!", "sentence", requiresGrad: true);
        var parts = await project.OutputsAsync("split", new { x, sep = " ", maxsplit = 1 });
        var first = await project.VariableAsync("MY_FIRST_FEEDBACK", "f");
        var second = await project.VariableAsync("MY_SECOND_FEEDBACK", "f");

        var one = await project.BackwardAsync(new { variables = new[] { parts[0] }, grad_variables = new[] { first }, retain_graph = true });
        var two = await project.BackwardAsync(new { variables = new[] { parts[1] }, grad_variables = new[] { second } });

        Assert.Equal("succeeded", one.GetProperty("status").GetString());
        Assert.Equal("succeeded", two.GetProperty("status").GetString());
        Assert.Equal([
            Combined("sentence", "<ITEM>MY_FIRST_FEEDBACK</ITEM><ITEM></ITEM>"),
            Combined("sentence", "<ITEM></ITEM><ITEM>MY_SECOND_FEEDBACK</ITEM>"),
        ], await project.GradTextsAsync(x));

        // The second pass did not retain the graph: the node is freed, and a third pass is refused.
        var node = (await project.Client.GetJsonAsync($"/v1/variables/{parts[0]}")).GetProperty("grad_fn").GetString();
        var freed = await project.Client.GetJsonAsync($"/v1/nodes/{node}");
        Assert.True(freed.GetProperty("released").GetBoolean());
        Assert.Equal(JsonValueKind.Null, freed.GetProperty("saved_context").ValueKind);
        using var third = await project.Client.PostAsJsonAsync("/v1/backward", new { variables = new[] { parts[0] }, grad_variables = new[] { first } });
        var problem = await third.AssertProblemAsync(409, "graph_released");
        Assert.StartsWith("Trying to backward through the graph a second time", problem.GetProperty("detail").GetString());
        Assert.Equal(2, (await project.GradTextsAsync(x)).Count);
    }

    [Fact]
    public async Task ALeafReachedByTwoPaths_GetsTwoGradients()
    {
        // b = a + v1; c = b + v2; d = c + v3; e = Add(a, d)
        var project = await app.CreateProjectAsync();
        var a = await project.VariableAsync("a", "a", requiresGrad: true);
        var b = await project.OutputAsync("add", new { x = a, y = await project.VariableAsync("1", "v1") });
        var c = await project.OutputAsync("add", new { x = b, y = await project.VariableAsync("2", "v2") });
        var d = await project.OutputAsync("add", new { x = c, y = await project.VariableAsync("3", "v3") });
        var e = await project.OutputAsync("add", new { x = a, y = d });
        var g = await project.VariableAsync("g", "feedback");

        await project.BackwardAsync(new { variables = new[] { e }, grad_variables = new[] { g } });

        var roleD = "a and v1 and v2 and v3";
        var roleC = "a and v1 and v2";
        var roleB = "a and v1";
        // One gradient per path, never merged; ordered by the sending node (b's node was recorded before e's).
        Assert.Equal([
            Combined("a", Combined(roleB, Combined(roleC, Combined(roleD, "g")))),
            Combined("a", "g"),
        ], await project.GradTextsAsync(a));
    }

    [Fact]
    public async Task ImplicitGradient_IsEmptyForScalarRoots_AndRefusedForListRoots()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("abc", "x", requiresGrad: true);
        var z = await project.OutputAsync("add", new { x, y = x });
        var list = await project.VariableAsync(new[] { "a", "b" }, "batch", requiresGrad: true);
        var doubled = await project.OutputAsync("add", new { x = list, y = list });

        await project.BackwardAsync(new { variables = new[] { z } });
        // An empty gradient passes through Add unchanged; x arrives by both edges, so it gets two.
        var grads = (await project.GradListAsync(x)).EnumerateArray().ToList();
        Assert.Equal(["", ""], grads.Select(g => g.GetProperty("data").GetString()));
        Assert.All(grads, g => Assert.Equal("feedback to x", g.GetProperty("role").GetString()));

        using var refused = await project.Client.PostAsJsonAsync("/v1/backward", new { variables = new[] { doubled } });
        var problem = await refused.AssertProblemAsync(400, "invalid_backward");
        Assert.Equal("grad can be implicitly created only for scalar outputs", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Roots_MustRequireGradAndHaveAGradFn_AndInputsMustBeLeaves()
    {
        var project = await app.CreateProjectAsync();
        var leaf = await project.VariableAsync("abc", "x", requiresGrad: true);
        var other = await project.VariableAsync("d", "y", requiresGrad: true);
        var z = await project.OutputAsync("add", new { x = leaf, y = other });

        using var noGradFn = await project.Client.PostAsJsonAsync("/v1/backward", new { variables = new[] { z, leaf } });
        var problem = await noGradFn.AssertProblemAsync(400, "invalid_backward");
        Assert.Equal("element 1 of variables does not require grad and does not have a grad_fn", problem.GetProperty("detail").GetString());

        using var nonLeafInput = await project.Client.PostAsJsonAsync("/v1/backward", new { variables = new[] { z }, inputs = new[] { z } });
        await nonLeafInput.AssertProblemAsync(400, "invalid_backward");
        using var lengths = await project.Client.PostAsJsonAsync("/v1/backward", new { variables = new[] { z }, grad_variables = new[] { leaf, leaf } });
        await lengths.AssertProblemAsync(400, "invalid_backward");
        using var badId = await project.Client.PostAsJsonAsync("/v1/backward", new { variables = new[] { "node_1" } });
        await badId.AssertProblemAsync(400, "invalid_id");
        using var wrongType = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/backward", "{\"variables\":\"x\"}");
        await wrongType.AssertProblemAsync(400, "invalid_type");
        using var missing = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/backward", "{}");
        await missing.AssertProblemAsync(400, "missing_field");

        await using var db = app.CreateDbContext();
        Assert.Equal(0, await db.Jobs.CountAsync(j => j.Type == BackwardJobArguments.JobType && j.ProjectId == ProjectGuid(project)));
    }

    [Fact]
    public async Task Inputs_RestrictAccumulation()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("x", "x", requiresGrad: true);
        var y = await project.VariableAsync("y", "y", requiresGrad: true);
        var z = await project.OutputAsync("add", new { x, y });

        var g = await project.VariableAsync("G", "f");

        var job = await project.BackwardAsync(new { variables = new[] { z }, grad_variables = new[] { g }, inputs = new[] { y } });

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Empty(await project.GradTextsAsync(x));
        Assert.Equal([Combined("y", "G")], await project.GradTextsAsync(y));
    }

    [Fact]
    public async Task RetainedNonLeaves_ReceiveTheirMergedGradient()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("x", "x", requiresGrad: true);
        var mid = await project.OutputAsync("add", new { x, y = x });
        (await project.Client.PostAsync($"/v1/variables/{mid}/retain_grad", null)).EnsureSuccessStatusCode();
        var left = await project.OutputAsync("add", new { x = mid, y = x });
        var right = await project.OutputAsync("add", new { x = mid, y = x });
        var top = await project.OutputAsync("sum", new { x = new[] { left, right } });
        var g = await project.VariableAsync("G", "f");

        await project.BackwardAsync(new { variables = new[] { top }, grad_variables = new[] { g } });

        // Two paths reach mid's output; they are merged into one <ITEM> list before AddBackward0 runs.
        var fromLeft = Combined("x and x", Combined("x and x and x", "G"));
        var fromRight = fromLeft;
        Assert.Equal([$"<ITEM>{fromLeft}</ITEM><ITEM>{fromRight}</ITEM>"], await project.GradTextsAsync(mid));
        Assert.Equal(4, (await project.GradTextsAsync(x)).Count);
    }

    [Fact]
    public async Task ConcurrentPassesThroughOneGraph_WithoutRetainGraph_OnlyOneRuns()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("x", "x", requiresGrad: true);
        var z = await project.OutputAsync("add", new { x, y = x });

        var responses = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => project.Client.PostAsJsonAsync("/v1/backward", new { variables = new[] { z } })));
        var outcomes = new List<string>();
        foreach (var response in responses)
        {
            if (response.StatusCode == HttpStatusCode.Conflict)
            {
                outcomes.Add("refused");
                continue;
            }

            var job = await project.WaitForJobAsync((await HttpJson.EnsureSuccessAsync(response)).GetProperty("id").GetString()!);
            var status = job.GetProperty("status").GetString()!;
            if (status == "failed")
            {
                Assert.Equal("graph_released", job.GetProperty("error").GetProperty("code").GetString());
                Assert.StartsWith("Trying to backward through the graph a second time", job.GetProperty("error").GetProperty("message").GetString());
            }

            outcomes.Add(status);
        }

        Assert.Single(outcomes, o => o == "succeeded");
        Assert.Equal(2, (await project.GradTextsAsync(x)).Count); // one pass: x arrives by its two edges
    }

    [Fact]
    public async Task ADeliveredTwiceJob_IsANoOp_AndConcurrentDeliveriesCommitEachStepOnce()
    {
        var project = await app.CreateProjectAsync();
        var leaves = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            leaves.Add(await project.VariableAsync($"p{i}", $"p{i}", requiresGrad: true));
        }

        var sum = await project.OutputAsync("sum", new { x = leaves });
        var job = await project.BackwardAsync(new { variables = new[] { sum }, retain_graph = true });
        Assert.Equal("succeeded", job.GetProperty("status").GetString());

        // Hangfire is at-least-once: deliver the finished job again, several times at once.
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, job.GetProperty("id").GetString(), out var jobId));
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            using var scope = app.Services.CreateScope();
            await scope.ServiceProvider.GetRequiredService<IBackwardJobs>().RunAsync(jobId, CancellationToken.None);
        }));

        foreach (var leaf in leaves)
        {
            Assert.Single(await project.GradTextsAsync(leaf));
        }

        await using var db = app.CreateDbContext();
        Assert.Equal(21, await db.JobSteps.CountAsync(s => s.JobId == jobId));
        Assert.Equal(1, await db.Jobs.Where(j => j.Id == jobId).Select(j => j.Attempts).SingleAsync());
    }

    [Fact]
    public async Task DeletingALeaf_DropsItsGradients_ButKeepsTheGraphUsable()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("x", "x", requiresGrad: true);
        var y = await project.VariableAsync("y", "y", requiresGrad: true);
        var z = await project.OutputAsync("add", new { x, y });
        (await project.Client.DeleteAsync($"/v1/variables/{x}")).EnsureSuccessStatusCode();

        var job = await project.BackwardAsync(new { variables = new[] { z }, grad_variables = new[] { await project.VariableAsync("G", "f") } });

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal([Combined("y", "G")], await project.GradTextsAsync(y));
    }

    [Fact]
    public async Task AJobFetchedButNotStarted_WakesTheWorkersWithANotification()
    {
        Assert.NotNull(app.Services); // starts the host, and with it the worker's watchdog
        await using var listener = new Npgsql.NpgsqlConnection(app.CreateDbContext().Database.GetConnectionString());
        await listener.OpenAsync();
        await using (var listen = new Npgsql.NpgsqlCommand("LISTEN new_job", listener))
        {
            await listen.ExecuteNonQueryAsync();
        }

        // A job a worker fetched a second ago and never moved to Processing, on a queue no worker reads.
        await using var db = app.CreateDbContext();
        await db.Database.ExecuteSqlRawAsync("""
            WITH j AS (INSERT INTO hangfire.job (statename, invocationdata, arguments, createdat)
                       VALUES ('Enqueued', '{{}}', '[]', NOW()) RETURNING id)
            INSERT INTO hangfire.jobqueue (jobid, queue, fetchedat) SELECT id, 'z_stalled_test', NOW() - INTERVAL '1 second' FROM j
            """);
        try
        {
            Assert.True(await listener.WaitAsync(TimeSpan.FromSeconds(5)), "no new_job notification within 5 s");
        }
        finally
        {
            await db.Database.ExecuteSqlRawAsync("DELETE FROM hangfire.jobqueue WHERE queue = 'z_stalled_test'");
        }
    }

    private static Guid ProjectGuid(TestProject project) =>
        PrefixedId.TryParse(PrefixedId.Project, project.Id, out var id) ? id : throw new InvalidOperationException(project.Id);
}
