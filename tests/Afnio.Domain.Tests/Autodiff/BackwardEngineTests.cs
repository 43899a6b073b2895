using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Autodiff.Ops;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests.Autodiff;

public sealed class BackwardEngineTests
{
    private static string Combined(string role, string feedback) =>
        $"Here is the combined feedback we got for this specific {role} and other variables: {feedback}";

    private static string Add(Guid x, Guid y) => $"{{\"x\": \"{Tape.Id(x)}\", \"y\": \"{Tape.Id(y)}\"}}";

    [Fact]
    public async Task Add_Backward_GivesTheCombinedFeedback_OnlyToInputsThatRequireGrad()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"abc\"", "first input", requiresGrad: true);
        var y = tape.Leaf("\"def\"", "second input");
        var z = Assert.Single(await tape.ApplyAsync("add", Add(x, y)));

        await tape.BackwardAsync([z], ["MY_FEEDBACK"]);

        var gradient = Assert.Single(tape.Grad(x));
        Assert.Equal(Combined("first input", "MY_FEEDBACK"), gradient.Text);
        Assert.Equal("feedback to first input", gradient.Role);
        Assert.Empty(tape.Grad(y));
    }

    [Fact]
    public async Task Split_BackwardFromEachPart_WithRetainGraph_GivesTwoGradients()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"afnio is great!\"", "sentence", requiresGrad: true);
        var parts = await tape.ApplyAsync("split", $"{{\"x\": \"{Tape.Id(x)}\", \"sep\": \" \", \"maxsplit\": 1}}");

        await tape.BackwardAsync([parts[0]], ["MY_FIRST_FEEDBACK"], retainGraph: true);
        await tape.BackwardAsync([parts[1]], ["MY_SECOND_FEEDBACK"]);

        Assert.Equal([
            Combined("sentence", "<ITEM>MY_FIRST_FEEDBACK</ITEM><ITEM></ITEM>"),
            Combined("sentence", "<ITEM></ITEM><ITEM>MY_SECOND_FEEDBACK</ITEM>"),
        ], tape.GradTexts(x));
        Assert.All(tape.Grad(x), g => Assert.Equal("feedback to sentence", g.Role));
    }

    [Fact]
    public async Task ASecondPass_ThroughAFreedGraph_FailsBeforeDoingAnything()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"a b\"", "sentence", requiresGrad: true);
        var parts = await tape.ApplyAsync("split", $"{{\"x\": \"{Tape.Id(x)}\"}}");
        await tape.BackwardAsync([parts[0]], ["first"]);

        var error = await Assert.ThrowsAsync<AfnioException>(() => tape.BackwardAsync([parts[1]], ["second"]));

        Assert.Equal("graph_released", error.Code);
        Assert.StartsWith("Trying to backward through the graph a second time", error.Message);
        Assert.Contains("Specify retain_graph=True", error.Message);
        Assert.Single(tape.Grad(x));
    }

    [Fact]
    public async Task ALeafReachedByTwoPaths_GetsTwoGradients()
    {
        // b = a + v1; c = b + v2; d = c + v3; e = Add(a, d)
        var tape = new Tape();
        var a = tape.Leaf("\"a\"", "a", requiresGrad: true);
        var v1 = tape.Leaf("\"1\"", "v1");
        var v2 = tape.Leaf("\"2\"", "v2");
        var v3 = tape.Leaf("\"3\"", "v3");
        var b = Assert.Single(await tape.ApplyAsync("add", Add(a, v1)));
        var c = Assert.Single(await tape.ApplyAsync("add", Add(b, v2)));
        var d = Assert.Single(await tape.ApplyAsync("add", Add(c, v3)));
        var e = Assert.Single(await tape.ApplyAsync("add", Add(a, d)));

        await tape.BackwardAsync([e], ["g"]);

        Assert.Equal(2, tape.Grad(a).Count);
        Assert.Empty(tape.Grad(v1));
        // The direct path gives one level of the sentence; the long one nests it once per Add.
        Assert.Contains(Combined("a", "g"), tape.GradTexts(a));
        Assert.Contains(tape.GradTexts(a), t => t.Split("Here is the combined feedback").Length == 5);
    }

    [Fact]
    public async Task SeveralGradientsIntoOneOutput_AreMerged_BeforeTheNodeRunsOnce()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"x\"", "x", requiresGrad: true);
        var other = tape.Leaf("\"o\"", "o");
        var y = Assert.Single(await tape.ApplyAsync("add", Add(x, other)));
        var left = Assert.Single(await tape.ApplyAsync("add", Add(y, other)));
        var right = Assert.Single(await tape.ApplyAsync("add", Add(other, y)));
        var top = Assert.Single(await tape.ApplyAsync("add", Add(left, right)));

        await tape.BackwardAsync([top], ["G"]);

        // y's node ran once, with both paths merged into one <ITEM> list, so x gets one gradient.
        var gradient = Assert.Single(tape.GradTexts(x));
        Assert.StartsWith(Combined("x", "<ITEM>"), gradient);
        Assert.Equal(2, gradient.Split("<ITEM>").Length - 1);
        Assert.Single(tape.Committed, r => r.NodeId == tape[y].GradFnId);
    }

    [Fact]
    public async Task EveryNode_RunsOncePerPass()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"x\"", "x", requiresGrad: true);
        var current = x;
        for (var i = 0; i < 5; i++)
        {
            current = Assert.Single(await tape.ApplyAsync("add", Add(current, x)));
        }

        await tape.BackwardAsync([current], ["g"]);

        Assert.Equal(tape.Committed.Count, tape.Committed.Select(r => r.NodeId).Distinct().Count());
        Assert.Equal(6, tape.Committed.Count); // five adds and one AccumulateGrad
        Assert.Equal(6, tape.Grad(x).Count);   // one gradient per path into x
    }

    [Fact]
    public async Task RetainedNonLeaves_AppendTheirGradient()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"x\"", "x", requiresGrad: true);
        var y = Assert.Single(await tape.ApplyAsync("add", Add(x, x)));
        tape.RetainGrad.Add(y);
        var z = Assert.Single(await tape.ApplyAsync("add", Add(y, x)));

        await tape.BackwardAsync([z], ["G"]);

        Assert.Equal([Combined("x and x", "G")], tape.GradTexts(y));
    }

    [Fact]
    public async Task Inputs_RestrictAccumulation_AndSkipNodesThatDoNotLeadToThem()
    {
        var tape = new Tape();
        var a = tape.Leaf("\"a\"", "a", requiresGrad: true);
        var b = tape.Leaf("\"b\"", "b", requiresGrad: true);
        var aa = Assert.Single(await tape.ApplyAsync("add", Add(a, a)));
        var bb = Assert.Single(await tape.ApplyAsync("add", Add(b, b)));
        var top = Assert.Single(await tape.ApplyAsync("add", Add(aa, bb)));

        await tape.BackwardAsync([top], ["G"], inputs: [a]);

        Assert.Equal(2, tape.Grad(a).Count);
        Assert.Empty(tape.Grad(b));
        Assert.DoesNotContain(tape.Committed, r => r.NodeId == tape[bb].GradFnId);
    }

    [Fact]
    public async Task Inputs_MustBeLeaves()
    {
        var tape = new Tape();
        var a = tape.Leaf("\"a\"", "a", requiresGrad: true);
        var aa = Assert.Single(await tape.ApplyAsync("add", Add(a, a)));

        var error = await Assert.ThrowsAsync<AfnioException>(() => tape.BackwardAsync([aa], ["G"], inputs: [aa]));

        Assert.Equal("inputs", error.Param);
        Assert.Contains("not a leaf", error.Message);
    }

    [Fact]
    public async Task Roots_MustRequireGradAndHaveAGradFn()
    {
        var tape = new Tape();
        var leaf = tape.Leaf("\"a\"", "a", requiresGrad: true);

        var error = await Assert.ThrowsAsync<AfnioException>(() => tape.BackwardAsync([leaf], ["G"]));

        Assert.Equal("element 0 of variables does not require grad and does not have a grad_fn", error.Message);
    }

    [Fact]
    public async Task AListRoot_NeedsAnExplicitGradient_AScalarRootDefaultsToEmpty()
    {
        var tape = new Tape();
        var batch = tape.Leaf("[\"a\", \"b\"]", "batch", requiresGrad: true);
        var scalar = tape.Leaf("\"a\"", "scalar", requiresGrad: true);
        var listOut = Assert.Single(await tape.ApplyAsync("add", Add(batch, batch)));
        var scalarOut = Assert.Single(await tape.ApplyAsync("add", Add(scalar, scalar)));

        var error = await Assert.ThrowsAsync<AfnioException>(() => tape.BackwardAsync([listOut]));
        await tape.BackwardAsync([scalarOut]);

        Assert.Equal("grad can be implicitly created only for scalar outputs", error.Message);
        // An empty gradient passes through Add unchanged, and still lands (as "") once per path.
        Assert.Equal(["", ""], tape.GradTexts(scalar));
    }

    [Fact]
    public async Task EvaluatorRoots_GetAnImplicitEmptyGradient()
    {
        var tape = new Tape();
        var batch = tape.Leaf("[\"a\", \"b\"]", "batch", requiresGrad: true);
        var output = Assert.Single(await tape.ApplyAsync("add", Add(batch, batch)));
        var node = tape[output].GradFnId!.Value;

        var roots = BackwardRoots.Resolve([tape[output]], null, isEvaluatorNode: n => n == node);

        Assert.True(Assert.Single(roots).Gradient.IsEmpty);
    }

    [Fact]
    public async Task IndependentNodes_RunConcurrently()
    {
        // Eight branches whose backward only finishes once four of them are running together:
        // a sequential walk would never get there and the test would time out.
        var gate = new Gate(4);
        var tape = new Tape(new OperationRegistry([new SumOperation(), new GatedOperation(gate)]));
        var x = tape.Leaf("\"x\"", "x", requiresGrad: true);
        var branches = new List<Guid>();
        for (var i = 0; i < 8; i++)
        {
            branches.Add(Assert.Single(await tape.ApplyAsync("gated", $"{{\"x\": \"{Tape.Id(x)}\"}}")));
        }

        var ids = string.Join(",", branches.Select(b => $"\"{Tape.Id(b)}\""));
        var total = Assert.Single(await tape.ApplyAsync("sum", $"{{\"x\": [{ids}]}}"));

        await tape.BackwardAsync([total], ["G"], concurrency: 4).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(4, gate.MaxConcurrent);
        Assert.Equal(8, tape.Grad(x).Count);
    }

    [Fact]
    public async Task AResumedPass_ReplaysCommittedNodes_AndEndsWithTheSameGradients()
    {
        async Task<Tape> BuildAsync()
        {
            var t = new Tape();
            var x = t.Leaf("\"x\"", "x", requiresGrad: true);
            var y = t.Leaf("\"y\"", "y", requiresGrad: true);
            var current = Assert.Single(await t.ApplyAsync("add", Add(x, y)));
            for (var i = 0; i < 6; i++)
            {
                current = Assert.Single(await t.ApplyAsync("add", Add(current, i % 2 == 0 ? x : y)));
            }

            return t;
        }

        var full = await BuildAsync();
        var root = full.Variables.Values.Single(v => v.Role.Count(c => c == 'x' || c == 'y') == 8).Id;
        await full.BackwardAsync([root], ["G"], retainGraph: true);

        // Same graph; pretend the first half of the steps had committed before a crash.
        var done = full.Committed.Take(full.Committed.Count / 2).ToDictionary(r => r.NodeId);
        var resumed = new Tape();
        foreach (var (id, v) in full.Variables) { resumed.Variables[id] = v; }
        foreach (var (id, n) in full.Nodes) { resumed.Nodes[id] = n; }
        foreach (var r in done.Values) { await resumed.CommitAsync(r, CancellationToken.None); }
        var before = resumed.Committed.Count;

        await resumed.BackwardAsync([root], ["G"], completed: done);

        Assert.Equal(full.Committed.Count - done.Count, resumed.Committed.Count - before);
        foreach (var leaf in full.Variables.Values.Where(v => v.IsLeaf))
        {
            Assert.Equal(full.GradTexts(leaf.Id).Order(), resumed.GradTexts(leaf.Id).Order());
        }
    }

    [Fact]
    public async Task ConcurrentRuns_OfOneGraph_AppendInTheSameOrder()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"x\"", "x", requiresGrad: true);
        var outputs = new List<Guid>();
        for (var i = 0; i < 12; i++)
        {
            var other = tape.Leaf($"\"{i}\"", $"other {i}");
            outputs.Add(Assert.Single(await tape.ApplyAsync("add", Add(x, other))));
        }

        var total = Assert.Single(await tape.ApplyAsync("sum", $"{{\"x\": [{string.Join(",", outputs.Select(o => $"\"{Tape.Id(o)}\""))}]}}"));
        for (var run = 0; run < 3; run++)
        {
            await tape.BackwardAsync([total], [$"G"], retainGraph: true, concurrency: 8);
        }

        var texts = tape.GradTexts(x);
        Assert.Equal(36, texts.Count);
        Assert.Equal(texts.Take(12), texts.Skip(12).Take(12));
        Assert.Equal(texts.Take(12), texts.Skip(24));
    }

    private sealed class Gate(int needed)
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _running;

        public int MaxConcurrent { get; private set; }

        public async Task PassAsync()
        {
            var now = Interlocked.Increment(ref _running);
            lock (this)
            {
                MaxConcurrent = Math.Max(MaxConcurrent, now);
            }

            if (now >= needed)
            {
                _open.TrySetResult();
            }

            await _open.Task;
            Interlocked.Decrement(ref _running);
        }
    }

    [Fact]
    public async Task Draining_StopsBetweenNodes_AndLetsNodesInFlightCommit()
    {
        var tape = new Tape();
        var leaves = Enumerable.Range(0, 40).Select(i => tape.Leaf($"\"p{i}\"", $"p{i}", requiresGrad: true)).ToList();
        var sum = Assert.Single(await tape.ApplyAsync("sum", $"{{\"x\": [{string.Join(",", leaves.Select(l => $"\"{Tape.Id(l)}\""))}]}}"));
        var plan = BackwardPlan.Create(tape.Nodes,
            BackwardRoots.Resolve([tape[sum]], [new GradientValue(VariableData.Of("g"), "")], _ => false), null,
            new Dictionary<(Guid, int), IReadOnlyList<Guid>>());
        using var drain = new CancellationTokenSource();
        var sink = new DrainingSink(tape, drain, after: 5);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new BackwardEngine(OperationRegistry.Basic()).RunAsync(plan, sink, new Dictionary<Guid, NodeResult>(), 4, CancellationToken.None, drain.Token));

        // The sum and a few leaves committed (at most the ones already running when the drain fired), each whole.
        Assert.InRange(tape.Committed.Count, 5, 5 + 4);
        Assert.All(leaves, l => Assert.InRange(tape.Grad(l).Count, 0, 1));
        Assert.Equal(tape.Committed.Count - 1, leaves.Sum(l => tape.Grad(l).Count));
    }

    [Fact]
    public async Task AnAccumulateGradNodeWhoseLeafWasDeleted_TakesNothing()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"x\"", "x", requiresGrad: true);
        var y = tape.Leaf("\"y\"", "y", requiresGrad: true);
        var z = Assert.Single(await tape.ApplyAsync("add", Add(x, y)));
        var xNode = tape.AccumulateNodeOf[x];
        tape.Nodes[xNode] = tape.Nodes[xNode] with { VariableId = null };

        await tape.BackwardAsync([z], ["g"]);

        Assert.Empty(tape.Grad(x));
        Assert.Equal([Combined("y", "g")], tape.GradTexts(y));
    }

    // Commits like the tape, and fires the drain once a number of nodes have committed.
    private sealed class DrainingSink(Tape tape, CancellationTokenSource drain, int after) : INodeResultSink
    {
        public async Task CommitAsync(NodeResult result, CancellationToken cancellationToken)
        {
            await tape.CommitAsync(result, cancellationToken);
            if (tape.Committed.Count >= after)
            {
                await drain.CancelAsync();
            }
        }
    }

    // A one-input operation whose backward waits at the gate: a stand-in for a slow language-model call.
    private sealed class GatedOperation(Gate gate) : IOperation
    {
        public string Name => "gated";

        public string BackwardName => "GatedBackward0";

        public OpCall Bind(JsonElement arguments)
        {
            var x = Arguments.Variable(arguments, "x");
            return new OpCall([x], x);
        }

        public ValueTask<ForwardResult> ForwardAsync(OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken) =>
            ValueTask.FromResult(new ForwardResult([new OutputValue(VariableData.Of("out"), "gated")], new JsonObject()));

        public async ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken)
        {
            await gate.PassAsync();
            return [new GradientValue(VariableData.Of("from gate"), "feedback to x")];
        }
    }
}
