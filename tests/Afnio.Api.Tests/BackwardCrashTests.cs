using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>
/// Kills the Worker process in the middle of a backward pass, starts a new one, and compares the
/// result with an uninterrupted run of the same graph: same gradients, in the same order, none
/// duplicated, none lost, and every node committed exactly once.
/// </summary>
public sealed class BackwardCrashTests
{
    private const int Width = 1000;

    [Fact]
    public async Task AWorkerKilledMidPass_IsResumedByAnotherOne_WithTheUninterruptedResult()
    {
        // One node at a time keeps the pass long enough to kill it in the middle.
        await using var processes = await SeparateProcesses.StartAsync("afnio_crash", new Dictionary<string, string>
        {
            ["Afnio__Jobs__BackwardConcurrency"] = "1",
        });
        var calm = await processes.CreateProjectAsync("uninterrupted");
        var crashed = await processes.CreateProjectAsync("crashed");
        var calmGraph = await BuildAsync(calm);
        var crashedGraph = await BuildAsync(crashed);

        var reference = await calm.BackwardAsync(new { variables = new[] { calmGraph.Root }, grad_variables = new[] { calmGraph.Feedback } });
        Assert.Equal("succeeded", reference.GetProperty("status").GetString());

        var job = await crashed.Client.PostJsonAsync("/v1/backward", new { variables = new[] { crashedGraph.Root }, grad_variables = new[] { crashedGraph.Feedback } });
        var jobId = job.GetProperty("id").GetString()!;
        Assert.True(PrefixedId.TryParse(PrefixedId.Job, jobId, out var jobGuid));
        await using var db = TestDatabase.CreateDbContext(processes.ConnectionString);
        await WaitForStepsAsync(db, jobGuid, 300, processes.Worker);
        processes.KillWorker();
        var committedAtKill = await db.JobSteps.CountAsync(s => s.JobId == jobGuid);
        Assert.InRange(committedAtKill, 300, 2 * Width + 1);
        Assert.Equal("running", (await crashed.Client.GetJsonAsync($"/v1/jobs/{jobId}")).GetProperty("status").GetString());

        processes.StartWorker();
        var finished = await crashed.WaitForJobAsync(jobId, 120);

        Assert.True(finished.GetProperty("status").GetString() == "succeeded", $"{finished}\n{processes.Worker.Output}");
        Assert.Equal(2 * Width + 2, await db.JobSteps.CountAsync(s => s.JobId == jobGuid)); // every node exactly once
        Assert.Equal(2, await db.Jobs.Where(j => j.Id == jobGuid).Select(j => j.Attempts).SingleAsync());
        Assert.Equal(reference.GetProperty("result").GetProperty("gradients_appended").GetInt32(),
            finished.GetProperty("result").GetProperty("gradients_appended").GetInt32());

        // Same gradients, same order, for every leaf; the shared leaf got one per path.
        var sharedCalm = await calm.GradTextsAsync(calmGraph.Shared);
        Assert.Equal(Width, sharedCalm.Count);
        Assert.Equal(sharedCalm, await crashed.GradTextsAsync(crashedGraph.Shared));
        for (var i = 0; i < Width; i += 37)
        {
            Assert.Equal(await calm.GradTextsAsync(calmGraph.Leaves[i]), await crashed.GradTextsAsync(crashedGraph.Leaves[i]));
        }

        // No gradient variable was made twice: both projects hold exactly the same number of variables.
        Assert.Equal(await VariableCountAsync(db, calm), await VariableCountAsync(db, crashed));
        var started = (await crashed.Client.GetJsonAsync($"/v1/jobs/{jobId}/events")).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("type").GetString() == "job.started").Select(e => e.GetProperty("data").GetProperty("attempt").GetInt32());
        Assert.Equal([1, 2], started);
    }

    private sealed record Graph(string Root, string Feedback, string Shared, IReadOnlyList<string> Leaves);

    /// <summary><c>sum(add(p_i, shared) for i in 0..n)</c>: 2n + 2 nodes; the shared leaf is reached by n paths.</summary>
    private static async Task<Graph> BuildAsync(TestProject project)
    {
        var shared = await project.VariableAsync("s", "shared", requiresGrad: true);
        var leaves = await project.LeavesAsync(Width);

        // The adds are recorded in index order in both projects, so the shared leaf's gradients
        // (ordered by the node that sent them) line up between the two runs.
        var sums = new List<string>();
        foreach (var leaf in leaves)
        {
            sums.Add(await project.OutputAsync("add", new { x = leaf, y = shared }));
        }

        var root = await project.OutputAsync("sum", new { x = sums });
        return new Graph(root, await project.VariableAsync("MISSED_THE_DEADLINE", "feedback"), shared, leaves);
    }

    private static async Task<int> VariableCountAsync(Data.AfnioDbContext db, TestProject project)
    {
        Assert.True(PrefixedId.TryParse(PrefixedId.Project, project.Id, out var id));
        return await db.Variables.CountAsync(v => v.ProjectId == id);
    }

    private static Task WaitForStepsAsync(Data.AfnioDbContext db, Guid jobId, int atLeast, ProcessHost worker) =>
        Eventually.UntilAsync(async () => await db.JobSteps.CountAsync(s => s.JobId == jobId) >= atLeast,
            TimeSpan.FromSeconds(60), () => $"the pass did not start:\n{worker.Output}");
}
