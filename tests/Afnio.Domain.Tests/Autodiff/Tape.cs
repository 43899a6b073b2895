using System.Collections.Concurrent;
using System.Text.Json;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests.Autodiff;

/// <summary>An in-memory variable store and graph, driving the real engine the way the service does.</summary>
internal sealed class Tape(OperationRegistry? operations = null) : INodeResultSink
{
    private readonly OperationRegistry _ops = operations ?? OperationRegistry.Basic();
    private readonly ConcurrentDictionary<Guid, List<GradientValue>> _grads = new();

    public Dictionary<Guid, VariableSnapshot> Variables { get; } = [];
    public Dictionary<Guid, GraphNode> Nodes { get; } = [];
    public Dictionary<Guid, Guid> AccumulateNodeOf { get; } = [];
    public HashSet<Guid> RetainGrad { get; } = [];
    public List<NodeResult> Committed { get; } = [];

    public Guid Leaf(string json, string role, bool requiresGrad = false)
    {
        var v = new VariableSnapshot(PrefixedId.NewGuid(), Json.Data(json), role, requiresGrad, null, 0);
        Variables[v.Id] = v;
        return v.Id;
    }

    public static string Id(Guid id) => PrefixedId.Format(PrefixedId.Variable, id);

    public async Task<IReadOnlyList<Guid>> ApplyAsync(string op, string arguments, bool gradEnabled = true)
    {
        var operation = _ops.Get(op);
        using var doc = JsonDocument.Parse(arguments);
        var bound = operation.Bind(doc.RootElement);
        var applied = await FunctionApplier.ApplyAsync(operation, bound, Variables, gradEnabled,
            leaf => AccumulateNodeOf.TryGetValue(leaf, out var n) ? n : null, CancellationToken.None);
        foreach (var acc in applied.NewAccumulateNodes)
        {
            Nodes[acc.Id] = acc;
            AccumulateNodeOf[acc.VariableId!.Value] = acc.Id;
        }

        if (applied.Node is { } node)
        {
            Nodes[node.Id] = node;
        }

        return [.. applied.Outputs.Select((o, i) =>
        {
            var v = new VariableSnapshot(PrefixedId.NewGuid(), o.Data, o.Role, applied.RequiresGrad, applied.Node?.Id, applied.Node is null ? 0 : i);
            Variables[v.Id] = v;
            return v.Id;
        })];
    }

    public async Task BackwardAsync(
        IReadOnlyList<Guid> roots, IReadOnlyList<string?>? gradients = null, bool retainGraph = false,
        IReadOnlyList<Guid>? inputs = null, int concurrency = 4, IReadOnlyDictionary<Guid, NodeResult>? completed = null)
    {
        var resolved = BackwardRoots.Resolve([.. roots.Select(r => Variables[r])],
            gradients?.Select(g => g is null ? null : new GradientValue(VariableData.Of(g), "")).ToList(),
            _ => false);
        var retained = Variables.Values.Where(v => RetainGrad.Contains(v.Id) && v.GradFnId is not null)
            .GroupBy(v => (v.GradFnId!.Value, v.OutputNr))
            .ToDictionary(g => g.Key, g => (IReadOnlyList<Guid>)[.. g.Select(v => v.Id)]);
        var plan = BackwardPlan.Create(Nodes, resolved, BackwardRoots.Inputs(inputs?.Select(i => Variables[i]).ToList()), retained);
        await new BackwardEngine(_ops).RunAsync(plan, this, completed ?? new Dictionary<Guid, NodeResult>(), concurrency, CancellationToken.None);
        if (!retainGraph)
        {
            foreach (var id in plan.FunctionNodeIds)
            {
                Nodes[id] = Nodes[id] with { Released = true, SavedContext = null };
            }
        }
    }

    public IReadOnlyList<GradientValue> Grad(Guid variable) => _grads.TryGetValue(variable, out var list) ? list : [];

    public IReadOnlyList<string> GradTexts(Guid variable) => [.. Grad(variable).Select(g => g.Text)];

    public VariableSnapshot this[Guid id] => Variables[id];

    public Task CommitAsync(NodeResult result, CancellationToken cancellationToken)
    {
        lock (Committed)
        {
            Committed.Add(result);
            foreach (var append in result.Appends)
            {
                _grads.GetOrAdd(append.VariableId, _ => []).Add(append.Gradient);
            }
        }

        return Task.CompletedTask;
    }
}
