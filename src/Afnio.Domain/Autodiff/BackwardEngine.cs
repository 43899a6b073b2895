using System.Threading.Channels;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff;

/// <summary>The gradient a backward pass starts from, for one root.</summary>
/// <param name="VariableId">The root variable.</param>
/// <param name="NodeId">Its grad_fn.</param>
/// <param name="OutputNr">Its output index there.</param>
/// <param name="Gradient">The starting gradient.</param>
public sealed record RootGradient(Guid VariableId, Guid NodeId, int OutputNr, GradientValue Gradient);

/// <summary>One gradient added to a variable's gradient list.</summary>
/// <param name="VariableId">The variable whose list grows.</param>
/// <param name="Gradient">The gradient.</param>
public sealed record GradientAppend(Guid VariableId, GradientValue Gradient);

/// <summary>
/// What running one node produced: a gradient per edge and the appends to gradient lists. A
/// step's result and its "done" mark are committed together, so a resumed pass replays committed
/// results instead of running their nodes again.
/// </summary>
/// <param name="NodeId">The node.</param>
/// <param name="EdgeGradients">One per edge of the node, null where none flows.</param>
/// <param name="Appends">Gradients appended to leaves (AccumulateGrad) or to retained non-leaf outputs.</param>
public sealed record NodeResult(Guid NodeId, IReadOnlyList<GradientValue?> EdgeGradients, IReadOnlyList<GradientAppend> Appends);

/// <summary>Receives each node's result as soon as it is computed; a store commits it with the step's done mark.</summary>
public interface INodeResultSink
{
    /// <summary>Commits <paramref name="result"/>. Called once per executed node.</summary>
    Task CommitAsync(NodeResult result, CancellationToken cancellationToken);
}

/// <summary>The nodes one backward pass will run, and how they depend on each other.</summary>
public sealed class BackwardPlan
{
    private BackwardPlan(
        IReadOnlyDictionary<Guid, GraphNode> nodes,
        IReadOnlyList<RootGradient> roots,
        IReadOnlyDictionary<Guid, int> dependencies,
        IReadOnlySet<Guid>? inputs,
        IReadOnlyDictionary<(Guid Node, int OutputNr), IReadOnlyList<Guid>> retained)
    {
        Nodes = nodes;
        Roots = roots;
        Dependencies = dependencies;
        Inputs = inputs;
        Retained = retained;
    }

    /// <summary>The nodes that run, by id.</summary>
    public IReadOnlyDictionary<Guid, GraphNode> Nodes { get; }

    /// <summary>The starting gradients.</summary>
    public IReadOnlyList<RootGradient> Roots { get; }

    /// <summary>Per node: how many edges from other planned nodes lead into it.</summary>
    public IReadOnlyDictionary<Guid, int> Dependencies { get; }

    /// <summary>When set, only these leaves accumulate gradients.</summary>
    public IReadOnlySet<Guid>? Inputs { get; }

    /// <summary>Non-leaf variables that retain their gradients, by the node output they are.</summary>
    public IReadOnlyDictionary<(Guid Node, int OutputNr), IReadOnlyList<Guid>> Retained { get; }

    /// <summary>The function nodes (not AccumulateGrad) of the plan; freed after a pass without retain_graph.</summary>
    public IEnumerable<Guid> FunctionNodeIds => Nodes.Values.Where(n => !n.IsAccumulateGrad).Select(n => n.Id);

    /// <summary>
    /// Plans a pass: every node reachable from the roots; with <paramref name="inputs"/>, only the
    /// nodes from which one of those leaves' AccumulateGrad can be reached. Fails before any work
    /// when a planned node's saved context was already freed.
    /// </summary>
    /// <param name="graph">Every node reachable from the roots (more is fine).</param>
    /// <param name="roots">The starting gradients.</param>
    /// <param name="inputs">Leaves to restrict accumulation to, or null for all.</param>
    /// <param name="retained">Retaining non-leaf variables by (node, output_nr).</param>
    public static BackwardPlan Create(
        IReadOnlyDictionary<Guid, GraphNode> graph,
        IReadOnlyList<RootGradient> roots,
        IReadOnlySet<Guid>? inputs,
        IReadOnlyDictionary<(Guid Node, int OutputNr), IReadOnlyList<Guid>> retained)
    {
        var reachable = new HashSet<Guid>();
        var stack = new Stack<Guid>(roots.Select(r => r.NodeId));
        while (stack.TryPop(out var id))
        {
            if (!reachable.Add(id))
            {
                continue;
            }

            var node = graph.TryGetValue(id, out var found) ? found
                : throw new InvalidOperationException($"Node {id} is missing from the loaded graph.");
            foreach (var edge in node.NextFunctions)
            {
                if (edge.NodeId is { } next)
                {
                    stack.Push(next);
                }
            }
        }

        if (inputs is not null)
        {
            reachable = LeadingTo(reachable, graph, n => n.IsAccumulateGrad && n.VariableId is { } leaf && inputs.Contains(leaf));
        }

        if (reachable.Select(id => graph[id]).FirstOrDefault(n => n.Released) is not null)
        {
            throw GraphReleased();
        }

        var nodes = reachable.ToDictionary(id => id, id => graph[id]);
        var dependencies = nodes.Keys.ToDictionary(id => id, _ => 0);
        foreach (var edge in nodes.Values.SelectMany(n => n.NextFunctions))
        {
            if (edge.NodeId is { } child && dependencies.TryGetValue(child, out var count))
            {
                dependencies[child] = count + 1;
            }
        }

        return new BackwardPlan(nodes, [.. roots.Where(r => nodes.ContainsKey(r.NodeId))], dependencies, inputs, retained);
    }

    /// <summary>The error for a pass through a graph another pass already freed (PyTorch's wording).</summary>
    public static AfnioException GraphReleased() =>
        AfnioException.Conflict("graph_released",
            "Trying to backward through the graph a second time (or directly access saved variables after they have " +
            "already been freed). Saved intermediate values of the graph are freed when you call .backward() or " +
            "autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or " +
            "if you need to access saved variables after calling backward.");

    // The subset of nodes from which a target can be reached (targets included).
    private static HashSet<Guid> LeadingTo(HashSet<Guid> nodes, IReadOnlyDictionary<Guid, GraphNode> graph, Func<GraphNode, bool> isTarget)
    {
        var memo = new Dictionary<Guid, bool>();
        bool Leads(Guid id)
        {
            if (memo.TryGetValue(id, out var known))
            {
                return known;
            }

            memo[id] = false; // graphs are acyclic; this only guards against malformed input
            var node = graph[id];
            var result = isTarget(node) || node.NextFunctions.Any(e => e.NodeId is { } next && nodes.Contains(next) && Leads(next));
            memo[id] = result;
            return result;
        }

        return [.. nodes.Where(Leads)];
    }
}

/// <summary>
/// Runs a planned backward pass. A node runs once, when every planned node that feeds it has run,
/// with all gradients for each of its outputs gathered (several are merged into one
/// <c>&lt;ITEM&gt;</c> list; none gives <c>""</c>). AccumulateGrad appends one gradient per arriving
/// path. Independent nodes run concurrently, up to a bound, so wall time follows the graph's depth.
/// Incoming gradients are ordered by their source, never by timing, so every run gives the same result.
/// </summary>
public sealed class BackwardEngine(OperationRegistry operations)
{
    /// <summary>Runs the pass.</summary>
    /// <param name="plan">The plan.</param>
    /// <param name="sink">Commits each node's result.</param>
    /// <param name="completed">Results committed by an earlier, interrupted run of the same pass: replayed, not rerun.</param>
    /// <param name="maxConcurrency">How many nodes may run at once.</param>
    /// <param name="cancellationToken">Stops the pass at once; nodes in flight are abandoned uncommitted.</param>
    /// <param name="drain">
    /// Stops the pass between nodes: no node starts after it fires, nodes in flight finish and commit,
    /// then the pass ends with an <see cref="OperationCanceledException"/>.
    /// </param>
    public async Task RunAsync(
        BackwardPlan plan,
        INodeResultSink sink,
        IReadOnlyDictionary<Guid, NodeResult> completed,
        int maxConcurrency,
        CancellationToken cancellationToken,
        CancellationToken drain = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrency, 1);
        var state = plan.Nodes.Keys.ToDictionary(id => id, id => new NodeState(plan.Dependencies[id]));
        foreach (var (root, index) in plan.Roots.Select((r, i) => (r, i)))
        {
            state[root.NodeId].Add(new Incoming(0, Guid.Empty, index, root.OutputNr, root.Gradient));
        }

        if (state.Count == 0)
        {
            return;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, drain);
        var ready = Channel.CreateUnbounded<Guid>();
        var remaining = state.Count;
        foreach (var (id, node) in state)
        {
            if (node.Pending == 0)
            {
                ready.Writer.TryWrite(id);
            }
        }

        Exception? failure = null;
        async Task Worker()
        {
            try
            {
                await foreach (var id in ready.Reader.ReadAllAsync(reading.Token))
                {
                    // The reader only looks at its token when it has to wait (a wide graph never does), and a
                    // linked token may learn of the drain a moment late: ask the drain itself.
                    if (drain.IsCancellationRequested)
                    {
                        break;
                    }

                    var result = completed.TryGetValue(id, out var done)
                        ? done
                        : await ExecuteAsync(plan, plan.Nodes[id], state[id].Drain(), sink, stop.Token);
                    foreach (var (edge, i) in plan.Nodes[id].NextFunctions.Select((e, i) => (e, i)))
                    {
                        if (edge.NodeId is not { } child || !state.TryGetValue(child, out var target))
                        {
                            continue;
                        }

                        if (result.EdgeGradients[i] is { } gradient)
                        {
                            target.Add(new Incoming(1, id, i, edge.OutputNr, gradient));
                        }

                        if (target.Release())
                        {
                            ready.Writer.TryWrite(child);
                        }
                    }

                    if (Interlocked.Decrement(ref remaining) == 0)
                    {
                        ready.Writer.TryComplete();
                    }
                }
            }
            catch (OperationCanceledException) when (drain.IsCancellationRequested && !stop.IsCancellationRequested)
            {
                // Drained: this worker takes no more nodes.
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Interlocked.CompareExchange(ref failure, e, null);
                await stop.CancelAsync();
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Math.Min(maxConcurrency, state.Count)).Select(_ => Task.Run(Worker, CancellationToken.None)));
        cancellationToken.ThrowIfCancellationRequested();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        if (Volatile.Read(ref remaining) > 0)
        {
            throw new OperationCanceledException("The backward pass was stopped between nodes.", drain);
        }
    }

    private async Task<NodeResult> ExecuteAsync(
        BackwardPlan plan, GraphNode node, IReadOnlyList<Incoming> incoming, INodeResultSink sink, CancellationToken ct)
    {
        NodeResult result;
        if (node.IsAccumulateGrad)
        {
            // One gradient per arriving path, never merged; only the chosen inputs when restricted.
            // A leaf deleted since the graph was built (VariableId null) takes nothing.
            var accumulates = node.VariableId is { } leaf && (plan.Inputs is null || plan.Inputs.Contains(leaf));
            result = new NodeResult(node.Id, [], accumulates ? [.. incoming.Select(g => new GradientAppend(node.VariableId!.Value, g.Gradient))] : []);
        }
        else if (incoming.Count == 0)
        {
            // Nothing reached this node (every path to it carried no gradient): running it would only cost.
            return new NodeResult(node.Id, [.. node.NextFunctions.Select(_ => (GradientValue?)null)], []);
        }
        else
        {
            var outputs = Enumerable.Range(0, OutputCount(plan, node, incoming))
                .Select(i => Merge([.. incoming.Where(g => g.OutputNr == i).Select(g => g.Gradient)]))
                .ToList();
            var appends = plan.Inputs is not null
                ? []
                : outputs.SelectMany((gradient, i) => plan.Retained.TryGetValue((node.Id, i), out var variables)
                    ? variables.Select(v => new GradientAppend(v, gradient))
                    : []).ToList();
            var grads = await operations.ForNode(node.Name).BackwardAsync(
                new BackwardContext(node.Id, node.SavedContext!, outputs, [.. node.NextFunctions.Select(e => e.NodeId is not null)]), ct);
            if (grads.Count != node.NextFunctions.Count)
            {
                throw new InvalidOperationException($"{node.Name} returned {grads.Count} gradients for {node.NextFunctions.Count} edges.");
            }

            result = new NodeResult(node.Id, grads, appends);
        }

        await sink.CommitAsync(result, ct);
        return result;
    }

    // Outputs are counted from the saved context when the op records it, else from what arrived.
    private static int OutputCount(BackwardPlan plan, GraphNode node, IReadOnlyList<Incoming> incoming)
    {
        var fromContext = node.SavedContext?["output_count"]?.GetValue<int>() ?? 0;
        var fromRetained = plan.Retained.Keys.Where(k => k.Node == node.Id).Select(k => k.OutputNr + 1).DefaultIfEmpty(0).Max();
        return Math.Max(Math.Max(fromContext, fromRetained), incoming.Max(g => g.OutputNr) + 1);
    }

    private static GradientValue Merge(IReadOnlyList<GradientValue> gradients) => gradients.Count switch
    {
        0 => GradientValue.Empty(),
        1 => gradients[0],
        _ => new GradientValue(VariableData.Of(Feedback.Items(gradients.Select(g => g.Text))), gradients[0].Role),
    };

    private sealed record Incoming(int SourceKind, Guid Source, int SourceIndex, int OutputNr, GradientValue Gradient);

    private sealed class NodeState(int pending)
    {
        private readonly List<Incoming> _incoming = [];
        private int _pending = pending;

        public int Pending => _pending;

        public void Add(Incoming gradient)
        {
            lock (_incoming)
            {
                _incoming.Add(gradient);
            }
        }

        /// <summary>Counts one finished parent; true when this node has heard from all of them.</summary>
        public bool Release() => Interlocked.Decrement(ref _pending) == 0;

        public IReadOnlyList<Incoming> Drain()
        {
            lock (_incoming)
            {
                return [.. _incoming.OrderBy(g => g.SourceKind).ThenBy(g => g.Source).ThenBy(g => g.SourceIndex)];
            }
        }
    }
}
