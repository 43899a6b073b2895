using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Programs;

/// <summary>
/// Checks a whole program before it is stored: names are unique, every reference resolves to
/// something defined before it (steps run in order, so the graph is acyclic), each operation
/// accepts its arguments, templates have an input for every placeholder, and every parameter
/// reaches the loss.
/// </summary>
public static class ProgramValidator
{
    /// <summary>Validates <paramref name="program"/>; errors name the offending path under <paramref name="root"/>.</summary>
    public static void Validate(ProgramDefinition program, string root)
    {
        ArgumentNullException.ThrowIfNull(program);
        var defined = new Dictionary<string, (string Kind, int Outputs)>(StringComparer.Ordinal);
        var laterSteps = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < program.Steps.Count; i++)
        {
            laterSteps.TryAdd(program.Steps[i].Name, i);
        }

        void Define(string name, string kind, int outputs, string path)
        {
            if (name == ProgramDefinition.LossName || !defined.TryAdd(name, (kind, outputs)))
            {
                throw ProgramParser.Invalid($"The name '{name}' is used twice (or is reserved); names of parameters, constants, inputs, targets, steps and the output must all differ.", path);
            }
        }

        foreach (var p in program.Parameters)
        {
            Define(p.Name, "parameter", 1, $"{root}.parameters.{p.Name}");
        }

        foreach (var c in program.Constants)
        {
            Define(c.Name, "constant", 1, $"{root}.constants.{c.Name}");
        }

        foreach (var f in program.Inputs)
        {
            Define(f.Name, "input", 1, $"{root}.inputs.{f.Name}");
        }

        foreach (var f in program.Targets)
        {
            Define(f.Name, "target", 1, $"{root}.targets.{f.Name}");
        }

        if (defined.Count > ProgramDefinition.MaxNames || program.Steps.Count > ProgramDefinition.MaxNames)
        {
            throw ProgramParser.Invalid($"A program may hold at most {ProgramDefinition.MaxNames} names and {ProgramDefinition.MaxNames} steps.", root);
        }

        var operations = OperationRegistry.Standard(NoLanguageModels.Instance);
        var uses = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        for (var i = 0; i < program.Steps.Count; i++)
        {
            var step = program.Steps[i];
            var path = $"{root}.steps[{i}]";
            CheckStep(step, path, defined, laterSteps, operations, program, uses);
            Define(step.Name, "step", OutputsOf(step.Op), $"{path}.name");
            if (program.Output is { } output && output.From == step.Name)
            {
                Define(output.Name, "output", 1, $"{root}.output.name");
            }
        }

        if (program.Output is { } o && !defined.ContainsKey(o.Name))
        {
            throw ProgramParser.Invalid(
                laterSteps.ContainsKey(o.From) || defined.ContainsKey(o.From) ? $"'from' must name a step, and '{o.From}' is not one." : $"'from' names no step: '{o.From}'.",
                $"{root}.output.from");
        }

        CheckStep(program.Loss, $"{root}.loss", defined, laterSteps, operations, program, uses);
        var reachLoss = Reaching(ProgramDefinition.LossName, uses, program);
        var unused = program.Parameters.FirstOrDefault(p => !reachLoss.Contains(p.Name));
        if (unused is not null)
        {
            throw ProgramParser.Invalid($"The parameter '{unused.Name}' does not reach the loss: no step that leads to it uses the parameter, so it could never be optimized.",
                $"{root}.parameters.{unused.Name}");
        }
    }

    /// <summary>How many outputs an operation gives (split: any number, checked when it runs).</summary>
    private static int OutputsOf(string op) => op switch
    {
        "split" => int.MaxValue,
        "exact_match_evaluator" or "deterministic_evaluator" or "lm_judge_evaluator" => 2,
        _ => 1,
    };

    private static void CheckStep(
        ProgramStep step, string path, Dictionary<string, (string Kind, int Outputs)> defined, Dictionary<string, int> steps,
        OperationRegistry operations, ProgramDefinition program, Dictionary<string, HashSet<string>> uses)
    {
        var used = uses[step.Name] = new HashSet<string>(StringComparer.Ordinal);
        var args = ProgramArgs.Resolve(step.Args, $"{path}.args", (reference, at) =>
        {
            if (reference.Name == step.Name)
            {
                throw ProgramParser.Invalid($"The step refers to itself ('{reference.Name}'): a step may use only names defined before it.", at);
            }

            if (!defined.TryGetValue(reference.Name, out var target))
            {
                throw ProgramParser.Invalid(steps.ContainsKey(reference.Name) || reference.Name == program.Output?.Name
                    ? $"'{reference.Name}' is defined by a later step: a step may use only names defined before it, so the program stays acyclic."
                    : $"'{reference.Name}' is not defined: name a parameter, constant, input, target, earlier step or the output.", at);
            }

            if (reference.Output >= target.Outputs)
            {
                throw ProgramParser.Invalid($"'{reference.Name}' has {target.Outputs} output(s); output {reference.Output} does not exist.", $"{at}.output");
            }

            used.Add(reference.Name == program.Output?.Name ? program.Output.From : reference.Name);
            return PrefixedId.Format(PrefixedId.Variable, ProgramIds.Of(reference.Key));
        });
        if (step.Model is not null)
        {
            args["model_id"] = PrefixedId.Format(PrefixedId.Model, ProgramIds.Of("model:" + step.Model));
        }

        try
        {
            operations.Get(step.Op).Bind(JsonSerializer.SerializeToElement(args));
        }
        catch (AfnioException e) when (e.Kind == ErrorKind.InvalidArgument)
        {
            throw AfnioException.Invalid(e.Code, e.Message, e.Param is null ? $"{path}.args" : $"{path}.args.{e.Param}");
        }

        if (step.Op is "chat_completion" or "lm_judge_evaluator")
        {
            CheckTemplates(step, path, program);
        }
    }

    // Placeholders in the fixed texts (parameters and constants) need an input; the judge also fills prediction and target.
    private static void CheckTemplates(ProgramStep step, string path, ProgramDefinition program)
    {
        var inputs = (step.Args["inputs"] as JsonObject)?.Select(p => p.Key).ToHashSet(StringComparer.Ordinal) ?? [];
        if (step.Op == "lm_judge_evaluator")
        {
            inputs.UnionWith(["prediction", "target"]);
        }

        if (step.Args["messages"] is not JsonArray messages)
        {
            return;
        }

        for (var m = 0; m < messages.Count; m++)
        {
            if (messages[m]?["content"] is not JsonArray content)
            {
                continue;
            }

            var texts = content.Select(c => ProgramRef.TryRead(c, out var r, path) && r.Output == 0
                    ? program.Parameters.Concat(program.Constants).FirstOrDefault(v => v.Name == r.Name)?.Value
                    : null)
                .OfType<Variables.VariableData>()
                .Select(v => v.Scalar.Kind == Variables.ScalarKind.Str ? v.Scalar.AsStr : v.Scalar.ToPythonString());
            var missing = texts.SelectMany(PromptTemplate.Placeholders).FirstOrDefault(name => !inputs.Contains(name));
            if (missing is not null)
            {
                throw AfnioException.Invalid("missing_input",
                    $"The message's template has a placeholder '{{{missing}}}' but the step's 'inputs' has no '{missing}'. " +
                    $"Add it to 'inputs', or write '{{{{{missing}}}}}' for literal braces.", $"{path}.args.messages[{m}]");
            }
        }
    }

    private static HashSet<string> Reaching(string from, Dictionary<string, HashSet<string>> uses, ProgramDefinition program)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>([from]);
        while (stack.TryPop(out var name))
        {
            if (seen.Add(name) && uses.TryGetValue(name, out var next))
            {
                foreach (var n in next)
                {
                    stack.Push(n);
                }
            }
        }

        return seen;
    }
}

/// <summary>Step arguments with references resolved.</summary>
public static class ProgramArgs
{
    /// <summary>A copy of <paramref name="args"/> with every <c>{"ref": …}</c> replaced by what <paramref name="resolve"/> gives.</summary>
    public static JsonObject Resolve(JsonObject args, string path, Func<ProgramRef, string, string> resolve)
    {
        ArgumentNullException.ThrowIfNull(args);
        return (JsonObject)Walk(args, path, resolve)!;
    }

    private static JsonNode? Walk(JsonNode? node, string path, Func<ProgramRef, string, string> resolve)
    {
        if (ProgramRef.TryRead(node, out var reference, path))
        {
            return JsonValue.Create(resolve(reference, path));
        }

        return node switch
        {
            JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, Walk(p.Value, $"{path}.{p.Key}", resolve)))),
            JsonArray array => new JsonArray([.. array.Select((item, i) => Walk(item, $"{path}[{i}]", resolve))]),
            _ => node?.DeepClone(),
        };
    }
}

/// <summary>
/// Stable ids for a program's in-memory variables and nodes: the same name gives the same id in
/// every batch and every delivery, so a resumed batch asks the journal the same questions.
/// </summary>
public static class ProgramIds
{
    /// <summary>The id for <paramref name="key"/>.</summary>
    public static Guid Of(string key) => new(SHA256.HashData(Encoding.UTF8.GetBytes("afnio.program/" + key)).AsSpan(0, 16));
}
