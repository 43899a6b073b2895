using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Programs;

/// <summary>One batch run forward through a program: the graph it recorded and the loss.</summary>
/// <param name="Variables">Every variable of the batch, by id.</param>
/// <param name="Nodes">The graph (AccumulateGrad nodes of the parameters included); empty under no-grad.</param>
/// <param name="Score">The evaluator's score.</param>
/// <param name="Explanation">The evaluator's explanation; the backward pass starts here.</param>
/// <param name="Size">The number of samples.</param>
/// <param name="TransformFailures">Items whose output transform did not apply (they keep the model's text).</param>
public sealed record ForwardPass(
    IReadOnlyDictionary<Guid, VariableSnapshot> Variables,
    IReadOnlyDictionary<Guid, GraphNode> Nodes,
    VariableSnapshot Score,
    VariableSnapshot Explanation,
    int Size,
    int TransformFailures)
{
    /// <summary>The score as one number: a reduced score, or the sum of per-sample scores.</summary>
    public double ScoreValue => Score.Data.IsList ? Score.Data.Items.Sum(ToDouble) : ToDouble(Score.Data.Scalar);

    /// <summary>The metrics of the batch: <c>loss</c> (the score) and, when asked, <c>accuracy</c> (score ÷ batch size).</summary>
    public IReadOnlyDictionary<string, double> Metrics(IEnumerable<string> names)
    {
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal) { ["loss"] = ScoreValue };
        foreach (var name in names)
        {
            metrics[name] = name switch
            {
                "accuracy" => ScoreValue / Size,
                _ => throw new InvalidOperationException($"Unknown metric '{name}'."),
            };
        }

        return metrics;
    }

    private static double ToDouble(Scalar s) => s.Kind switch
    {
        ScalarKind.Int or ScalarKind.Bool => s.AsInt,
        ScalarKind.Float => s.AsFloat,
        _ => throw AfnioException.Invalid("invalid_score", $"The loss evaluator's score must be a number, but got {s.ToPythonString()}."),
    };
}

/// <summary>
/// Runs a program in memory, the way afnio's <c>training_step</c> runs a module: the batch's inputs
/// and targets become list variables, each step applies its operation (recording the graph unless
/// grad is off), the output transform rewrites the output's data without touching its graph, and the
/// loss evaluator scores it. Ids are derived from names, so the same batch asks the same questions.
/// </summary>
/// <param name="program">The program.</param>
/// <param name="models">The run's model clients by the names steps use (<c>forward</c>, …).</param>
public sealed class ProgramExecutor(ProgramDefinition program, IReadOnlyDictionary<string, Guid> models)
{
    /// <summary>Runs the batch forward and evaluates it.</summary>
    /// <param name="parameters">The parameters' current values, by name.</param>
    /// <param name="items">The batch's dataset items.</param>
    /// <param name="itemLabels">How errors name each item.</param>
    /// <param name="operationsFor">The operations a step (by name) runs with; their models journal under the step.</param>
    /// <param name="gradEnabled">False runs under no-grad (validation and tests).</param>
    /// <param name="cancellationToken">Stops the calls.</param>
    public async Task<ForwardPass> ForwardAsync(
        IReadOnlyDictionary<string, string> parameters, IReadOnlyList<JsonNode?> items, IReadOnlyList<string> itemLabels,
        Func<string, OperationRegistry> operationsFor, bool gradEnabled, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(operationsFor);
        if (items.Count == 0)
        {
            throw AfnioException.Invalid("empty_batch", "Batch is empty (size 0), which is not allowed.");
        }

        var variables = new Dictionary<Guid, VariableSnapshot>();
        var names = new Dictionary<string, Guid>(StringComparer.Ordinal);
        var nodes = new Dictionary<Guid, GraphNode>();
        var accumulate = new Dictionary<Guid, Guid>();
        VariableSnapshot Add(string key, VariableData data, string role, bool requiresGrad, Guid? gradFn = null, int outputNr = 0)
        {
            var v = new VariableSnapshot(ProgramIds.Of(key), data, role, requiresGrad, gradFn, outputNr);
            variables[v.Id] = v;
            names[key] = v.Id;
            return v;
        }

        foreach (var p in program.Parameters)
        {
            var value = parameters.TryGetValue(p.Name, out var current) ? current : p.Value.Scalar.AsStr;
            var v = Add(p.Name, VariableData.Of(value), p.Role, requiresGrad: true);
            var node = new GraphNode(ProgramIds.Of("accumulate:" + p.Name), GraphNode.AccumulateGradName, [], null, false, v.Id);
            accumulate[v.Id] = node.Id;
            if (gradEnabled)
            {
                nodes[node.Id] = node;
            }
        }

        foreach (var c in program.Constants)
        {
            Add(c.Name, c.Value, c.Role, requiresGrad: false);
        }

        foreach (var field in program.Inputs.Concat(program.Targets))
        {
            var texts = items.Select((item, i) => Scalar.FromStr(FieldPath.Read(item, field, itemLabels[i])));
            Add(field.Name, VariableData.List(texts), field.Role, requiresGrad: false);
        }

        var failures = 0;
        foreach (var step in program.Steps.Append(program.Loss))
        {
            var args = ProgramArgs.Resolve(step.Args, step.Name, (r, _) => PrefixedId.Format(PrefixedId.Variable, names[r.Key]));
            if (step.Model is not null)
            {
                args["model_id"] = PrefixedId.Format(PrefixedId.Model, models.TryGetValue(step.Model, out var model) ? model
                    : throw AfnioException.Invalid("missing_model", $"The program's step '{step.Name}' uses the model '{step.Model}', which the run does not give."));
            }

            var operation = operationsFor(step.Name).Get(step.Op);
            var bound = operation.Bind(JsonSerializer.SerializeToElement(args));
            var inputs = bound.Variables.Distinct().ToDictionary(id => id, id => variables[id]);
            var applied = await FunctionApplier.ApplyAsync(operation, bound, inputs, gradEnabled, leaf => accumulate[leaf], cancellationToken);
            Guid? gradFn = null;
            if (applied.Node is { } made)
            {
                var node = made with { Id = ProgramIds.Of("node:" + step.Name) };
                nodes[node.Id] = node;
                gradFn = node.Id;
            }

            for (var i = 0; i < applied.Outputs.Count; i++)
            {
                var key = i == 0 ? step.Name : $"{step.Name}.{i}";
                Add(key, applied.Outputs[i].Data, applied.Outputs[i].Role, applied.RequiresGrad, gradFn, i);
            }

            if (program.Output is { } output && output.From == step.Name)
            {
                // afnio's quickstart rewrites the output's data in place: the graph behind it is unchanged.
                var source = variables[names[step.Name]];
                var data = Transform(source.Data, output.Transform, ref failures);
                Add(output.Name, data, source.Role, source.RequiresGrad, source.GradFnId, source.OutputNr);
            }
        }

        return new ForwardPass(variables, nodes, variables[names[ProgramDefinition.LossName]],
            variables[names[$"{ProgramDefinition.LossName}.1"]], items.Count, failures);
    }

    /// <summary>
    /// Runs the backward pass from the loss's explanation (afnio's <c>explanation.backward()</c>) and
    /// returns each parameter's new gradients, by name.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, IReadOnlyList<GradientValue>>> BackwardAsync(
        ForwardPass pass, OperationRegistry operations, int maxConcurrency, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pass);
        if (!pass.Explanation.RequiresGrad || pass.Explanation.GradFnId is not { } root)
        {
            return new Dictionary<string, IReadOnlyList<GradientValue>>();
        }

        var plan = BackwardPlan.Create(pass.Nodes,
            [new RootGradient(pass.Explanation.Id, root, pass.Explanation.OutputNr, GradientValue.Empty())], null,
            new Dictionary<(Guid, int), IReadOnlyList<Guid>>());
        var sink = new Collector();
        await new BackwardEngine(operations).RunAsync(plan, sink, new Dictionary<Guid, NodeResult>(), maxConcurrency, cancellationToken);
        var byId = program.Parameters.ToDictionary(p => ProgramIds.Of(p.Name), p => p.Name);
        return sink.Results.OrderBy(r => r.NodeId).SelectMany(r => r.Appends)
            .Where(a => byId.ContainsKey(a.VariableId))
            .GroupBy(a => byId[a.VariableId], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<GradientValue>)[.. g.Select(a => a.Gradient)], StringComparer.Ordinal);
    }

    private static VariableData Transform(VariableData data, IReadOnlyList<OutputTransform> steps, ref int failures)
    {
        if (steps.Count == 0)
        {
            return data;
        }

        var failed = 0;
        string One(Scalar item)
        {
            var text = item.Kind == ScalarKind.Str ? item.AsStr : item.ToPythonString();
            try
            {
                return OutputTransform.Run(steps, text);
            }
            catch (TransformFailedException)
            {
                // The sample keeps the model's text: it scores as a wrong answer, and the feedback can say why.
                Interlocked.Increment(ref failed);
                return text;
            }
        }

        var result = data.IsList ? VariableData.List(data.Items.Select(i => Scalar.FromStr(One(i)))) : VariableData.Of(One(data.Scalar));
        failures += failed;
        return result;
    }

    private sealed class Collector : INodeResultSink
    {
        private readonly ConcurrentBag<NodeResult> _results = [];

        public IEnumerable<NodeResult> Results => _results;

        public Task CommitAsync(NodeResult result, CancellationToken cancellationToken)
        {
            _results.Add(result);
            return Task.CompletedTask;
        }
    }
}
