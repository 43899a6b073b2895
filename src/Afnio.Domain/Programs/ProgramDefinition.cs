using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Programs;

/// <summary>A named value of a program: a parameter (optimized) or a constant.</summary>
/// <param name="Name">Its name, unique in the program.</param>
/// <param name="Value">Its (initial) value.</param>
/// <param name="Role">Its role, as a variable's.</param>
public sealed record ProgramValue(string Name, VariableData Value, string Role);

/// <summary>
/// Where a batch variable comes from: a field of each dataset item (a dotted path), and optionally
/// a field inside the JSON text found there (the Facility answers are JSON strings).
/// </summary>
/// <param name="Name">The input's or target's name.</param>
/// <param name="Field">Dotted path into the item, e.g. <c>fields.input</c>.</param>
/// <param name="JsonField">Dotted path inside the JSON string at <paramref name="Field"/>, or null.</param>
/// <param name="Role">The role of the batch variable.</param>
public sealed record FieldMapping(string Name, string Field, string? JsonField, string Role);

/// <summary>One step of a program: an operation whose arguments may reference earlier names with <c>{"ref": name}</c>.</summary>
/// <param name="Name">The step's name; its outputs are referenced by it.</param>
/// <param name="Op">The operation, as <c>POST /v1/functions/{name}</c> names it.</param>
/// <param name="Model">For operations that call a model: which of the run's models (default <c>forward</c>).</param>
/// <param name="Args">The operation's arguments, references unresolved.</param>
public sealed record ProgramStep(string Name, string Op, string? Model, JsonObject Args);

/// <summary>The program's output: a step's first output with a no-grad transform applied to each item.</summary>
/// <param name="Name">The name the loss references.</param>
/// <param name="From">The step whose first output is transformed.</param>
/// <param name="Transform">The transform, applied in order.</param>
public sealed record ProgramOutput(string Name, string From, IReadOnlyList<OutputTransform> Transform);

/// <summary>
/// A program: what a user's <c>Module.forward</c> and <c>training_step</c> were, as data the server can
/// run. Parameters and constants, inputs and targets read from dataset items, steps built from the
/// operations, a no-grad output transform, and a loss evaluator with its metrics.
/// </summary>
public sealed record ProgramDefinition(
    IReadOnlyList<ProgramValue> Parameters,
    IReadOnlyList<ProgramValue> Constants,
    IReadOnlyList<FieldMapping> Inputs,
    IReadOnlyList<FieldMapping> Targets,
    IReadOnlyList<ProgramStep> Steps,
    ProgramOutput? Output,
    ProgramStep Loss,
    IReadOnlyList<string> Metrics)
{
    /// <summary>The loss step's name: the evaluator's outputs are <c>loss</c> (score) and <c>loss.1</c> (explanation).</summary>
    public const string LossName = "loss";

    /// <summary>The metrics a program may name besides <c>loss</c> (the evaluator's score).</summary>
    public static IReadOnlyList<string> KnownMetrics { get; } = ["accuracy"];

    /// <summary>Operations a step may run.</summary>
    public static IReadOnlyList<string> StepOps { get; } = ["chat_completion", "add", "sum", "split"];

    /// <summary>Evaluators the loss may use.</summary>
    public static IReadOnlyList<string> LossOps { get; } = ["exact_match_evaluator", "deterministic_evaluator", "lm_judge_evaluator"];

    /// <summary>Operations whose arguments name a model client (given as <c>model</c>, one of the run's models).</summary>
    public static IReadOnlyList<string> ModelOps { get; } = ["chat_completion", "lm_judge_evaluator"];

    /// <summary>Limits that keep a program small enough to store and run.</summary>
    public const int MaxNames = 200;

    /// <summary>The parameter named <paramref name="name"/>, if there is one.</summary>
    public ProgramValue? Parameter(string name) => Parameters.FirstOrDefault(p => p.Name == name);

    /// <summary>The initial parameter values, by name.</summary>
    public IReadOnlyDictionary<string, string> InitialValues() =>
        Parameters.ToDictionary(p => p.Name, p => p.Value.Scalar.AsStr, StringComparer.Ordinal);

    /// <summary>The program as JSON, in the shape <see cref="ProgramParser.Parse"/> reads.</summary>
    public JsonObject ToJson()
    {
        static JsonObject Values(IEnumerable<ProgramValue> values) => new(values.Select(v => KeyValuePair.Create(v.Name,
            (JsonNode?)new JsonObject { ["value"] = JsonNode.Parse(v.Value.ToJson()), ["role"] = v.Role })));
        static JsonObject Fields(IEnumerable<FieldMapping> fields) => new(fields.Select(f => KeyValuePair.Create(f.Name, (JsonNode?)new JsonObject
        {
            ["field"] = f.Field,
            ["json_field"] = f.JsonField,
            ["role"] = f.Role,
        })));
        static JsonObject Step(ProgramStep s, bool named)
        {
            var o = new JsonObject();
            if (named)
            {
                o["name"] = s.Name;
            }

            o["op"] = s.Op;
            if (s.Model is not null)
            {
                o["model"] = s.Model;
            }

            o["args"] = s.Args.DeepClone();
            return o;
        }

        var json = new JsonObject
        {
            ["parameters"] = Values(Parameters),
            ["constants"] = Values(Constants),
            ["inputs"] = Fields(Inputs),
            ["targets"] = Fields(Targets),
            ["steps"] = new JsonArray([.. Steps.Select(s => (JsonNode)Step(s, true))]),
        };
        if (Output is not null)
        {
            json["output"] = new JsonObject
            {
                ["name"] = Output.Name,
                ["from"] = Output.From,
                ["transform"] = new JsonArray([.. Output.Transform.Select(t => t.ToJson())]),
            };
        }

        json["loss"] = Step(Loss, false);
        json["metrics"] = new JsonArray([.. Metrics.Select(m => (JsonNode)JsonValue.Create(m))]);
        return json;
    }
}

/// <summary>A reference inside step arguments: <c>{"ref": "name"}</c>, or <c>{"ref": "name", "output": n}</c> for a step's n-th output.</summary>
/// <param name="Name">The referenced name.</param>
/// <param name="Output">Which output of a step (0 for everything that is not a step).</param>
public sealed record ProgramRef(string Name, int Output)
{
    /// <summary>The key of a reference in the name table: <c>name</c> or <c>name.n</c>.</summary>
    public string Key => Output == 0 ? Name : $"{Name}.{Output}";

    /// <summary>True when <paramref name="node"/> is a reference object.</summary>
    public static bool TryRead(JsonNode? node, out ProgramRef reference, string path)
    {
        reference = null!;
        if (node is not JsonObject obj || !obj.ContainsKey("ref"))
        {
            return false;
        }

        if (obj.Any(p => p.Key is not ("ref" or "output")))
        {
            throw ProgramParser.Invalid($"A reference takes only 'ref' and 'output', but has '{obj.First(p => p.Key is not ("ref" or "output")).Key}'.", path);
        }

        if (obj["ref"] is not JsonValue name || !name.TryGetValue<string>(out var text) || text.Length == 0)
        {
            throw ProgramParser.Invalid("'ref' must be a name.", $"{path}.ref");
        }

        var output = 0;
        if (obj["output"] is { } o && (o is not JsonValue ov || !ov.TryGetValue(out output) || output < 0))
        {
            throw ProgramParser.Invalid("'output' must be a non-negative integer.", $"{path}.output");
        }

        reference = new ProgramRef(text, output);
        return true;
    }
}

/// <summary>Reads a program from JSON with precise errors (code <c>invalid_program</c> and the offending path).</summary>
public static partial class ProgramParser
{
    /// <summary>The error code of every structural problem.</summary>
    public const string Code = "invalid_program";

    /// <summary>A 400-kind error about the program at <paramref name="path"/>.</summary>
    public static AfnioException Invalid(string message, string path) => AfnioException.Invalid(Code, message, path);

    /// <summary>Reads a program; <paramref name="root"/> names the field holding it (for error paths).</summary>
    public static ProgramDefinition Parse(JsonElement json, string root = "definition")
    {
        try
        {
            return ParseObject(json, root);
        }
        catch (ArgumentException e)
        {
            // JsonObject refuses a key given twice in one object.
            throw Invalid($"The program has a key twice in one object: {e.Message}", root);
        }
        catch (InvalidOperationException e)
        {
            // Text with a lone surrogate cannot be read as a string.
            throw Invalid($"The program holds text that cannot be read: {e.Message}", root);
        }
    }

    private static ProgramDefinition ParseObject(JsonElement json, string root)
    {
        var obj = json.ValueKind == JsonValueKind.Object ? JsonObject.Create(json)! : throw Invalid("The program must be a JSON object.", root);
        // JsonObject reads nested objects lazily: touch them all now, so a duplicated key anywhere is found here.
        _ = Descendants(obj).Count();
        Only(obj, root, "parameters", "constants", "inputs", "targets", "steps", "output", "loss", "metrics");
        var parameters = Values(obj["parameters"], $"{root}.parameters", isParameter: true);
        var constants = Values(obj["constants"], $"{root}.constants", isParameter: false);
        var inputs = Fields(obj["inputs"], $"{root}.inputs");
        var targets = Fields(obj["targets"], $"{root}.targets");
        if (parameters.Count == 0)
        {
            throw Invalid("A program needs at least one parameter to optimize.", $"{root}.parameters");
        }

        if (obj["steps"] is not JsonArray stepsJson || stepsJson.Count == 0)
        {
            throw Invalid("'steps' must be a non-empty list of steps.", $"{root}.steps");
        }

        var steps = stepsJson.Select((s, i) => Step(s, $"{root}.steps[{i}]", StepKind.Step)).ToList();
        var output = obj["output"] is null ? null : Output(obj["output"]!, $"{root}.output");
        var loss = Step(obj["loss"] ?? throw Invalid("'loss' is required: an evaluator step.", $"{root}.loss"), $"{root}.loss", StepKind.Loss);
        var metrics = Metrics(obj["metrics"], $"{root}.metrics");
        var program = new ProgramDefinition(parameters, constants, inputs, targets, steps, output, loss, metrics);
        ProgramValidator.Validate(program, root);
        return program;
    }

    private static IEnumerable<JsonNode> Descendants(JsonNode node)
    {
        var children = node switch
        {
            JsonObject o => o.Select(p => p.Value),
            JsonArray a => a.AsEnumerable(),
            _ => [],
        };
        foreach (var child in children.OfType<JsonNode>())
        {
            yield return child;
            foreach (var d in Descendants(child))
            {
                yield return d;
            }
        }
    }

    private enum StepKind
    {
        Step,
        Loss,
    }

    internal static void Only(JsonObject obj, string path, params string[] allowed)
    {
        if (obj.FirstOrDefault(p => !allowed.Contains(p.Key)) is { Key: { } unknown })
        {
            throw AfnioException.Invalid("unknown_field", $"Unknown field '{unknown}'. Allowed here: {string.Join(", ", allowed)}.", $"{path}.{unknown}");
        }
    }

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]{0,63}\z")]
    private static partial Regex NamePattern();

    internal static string Name(string name, string path) => NamePattern().IsMatch(name) ? name
        : throw Invalid($"'{name}' is not a valid name: use letters, digits and underscores, starting with a letter or underscore, at most 64 characters.", path);

    private static string? Text(JsonNode? node, string path, bool required)
    {
        if (node is null)
        {
            return required ? throw Invalid("This field is required.", path) : null;
        }

        return node is JsonValue v && v.TryGetValue<string>(out var text) ? text : throw Invalid("This field must be a string.", path);
    }

    private static List<ProgramValue> Values(JsonNode? node, string path, bool isParameter)
    {
        if (node is null)
        {
            return [];
        }

        if (node is not JsonObject obj)
        {
            throw Invalid("This must be an object of named values: {\"name\": {\"value\": …, \"role\": …}}.", path);
        }

        return [.. obj.Select(p =>
        {
            var at = $"{path}.{Name(p.Key, $"{path}.{p.Key}")}";
            if (p.Value is not JsonObject value)
            {
                throw Invalid("Each value must be an object with 'value' and 'role'.", at);
            }

            Only(value, at, "value", "role");
            var data = value["value"] is { } raw ? VariableData.FromJson(JsonSerializer.SerializeToElement(raw), $"{at}.value")
                : throw Invalid("'value' is required.", $"{at}.value");
            if (data.IsList)
            {
                throw Invalid("A program value must be a single string or number, not a list.", $"{at}.value");
            }

            if (isParameter && data.Scalar.Kind != ScalarKind.Str)
            {
                throw Invalid("A parameter's value must be text: the optimizer rewrites it.", $"{at}.value");
            }

            var role = Text(value["role"], $"{at}.role", required: isParameter) ?? string.Empty;
            return new ProgramValue(p.Key, data, role);
        })];
    }

    private static List<FieldMapping> Fields(JsonNode? node, string path)
    {
        if (node is null)
        {
            return [];
        }

        if (node is not JsonObject obj)
        {
            throw Invalid("This must be an object of named fields: {\"name\": {\"field\": \"path.in.item\", \"json_field\"?: …, \"role\"?: …}}.", path);
        }

        return [.. obj.Select(p =>
        {
            var at = $"{path}.{Name(p.Key, $"{path}.{p.Key}")}";
            if (p.Value is not JsonObject value)
            {
                throw Invalid("Each mapping must be an object with 'field' (and optionally 'json_field' and 'role').", at);
            }

            Only(value, at, "field", "json_field", "role");
            var field = FieldPath.Check(Text(value["field"], $"{at}.field", required: true)!, $"{at}.field");
            var jsonField = Text(value["json_field"], $"{at}.json_field", required: false) is { } inner ? FieldPath.Check(inner, $"{at}.json_field") : null;
            return new FieldMapping(p.Key, field, jsonField, Text(value["role"], $"{at}.role", required: false) ?? string.Empty);
        })];
    }

    private static ProgramStep Step(JsonNode? node, string path, StepKind kind)
    {
        if (node is not JsonObject obj)
        {
            throw Invalid("A step must be an object with 'op' and 'args'.", path);
        }

        Only(obj, path, kind == StepKind.Step ? ["name", "op", "model", "args"] : ["op", "model", "args"]);
        var name = kind == StepKind.Loss ? ProgramDefinition.LossName : Name(Text(obj["name"], $"{path}.name", required: true)!, $"{path}.name");
        var op = Text(obj["op"], $"{path}.op", required: true)!;
        var allowed = kind == StepKind.Step ? ProgramDefinition.StepOps : ProgramDefinition.LossOps;
        if (!allowed.Contains(op))
        {
            throw Invalid($"Unknown {(kind == StepKind.Step ? "step" : "loss")} operation '{op}'. Allowed: {string.Join(", ", allowed)}.", $"{path}.op");
        }

        var callsModel = ProgramDefinition.ModelOps.Contains(op);
        var model = Text(obj["model"], $"{path}.model", required: false);
        if (model is not null && !callsModel)
        {
            throw Invalid($"'{op}' calls no model, so it takes no 'model'.", $"{path}.model");
        }

        var args = obj["args"] is JsonObject a ? a.DeepClone().AsObject() : throw Invalid("'args' must be an object: the operation's arguments.", $"{path}.args");
        if (args.ContainsKey("model_id"))
        {
            throw Invalid("A program names no model client: give 'model' (one of the run's models, default 'forward') on the step instead.", $"{path}.args.model_id");
        }

        return new ProgramStep(name, op, callsModel ? Name(model ?? "forward", $"{path}.model") : null, args);
    }

    private static ProgramOutput Output(JsonNode node, string path)
    {
        if (node is not JsonObject obj)
        {
            throw Invalid("'output' must be an object with 'from' and 'transform'.", path);
        }

        Only(obj, path, "name", "from", "transform");
        var name = Name(Text(obj["name"], $"{path}.name", required: false) ?? "prediction", $"{path}.name");
        var from = Text(obj["from"], $"{path}.from", required: true)!;
        var transform = obj["transform"] switch
        {
            null => [],
            JsonArray items => items.Select((t, i) => OutputTransform.Parse(t, $"{path}.transform[{i}]")).ToList(),
            _ => throw Invalid("'transform' must be a list of transform steps.", $"{path}.transform"),
        };
        return new ProgramOutput(name, from, transform);
    }

    private static List<string> Metrics(JsonNode? node, string path)
    {
        if (node is null)
        {
            return [];
        }

        if (node is not JsonArray items)
        {
            throw Invalid("'metrics' must be a list of metric names.", path);
        }

        var names = items.Select((m, i) => Text(m, $"{path}[{i}]", required: true)!).ToList();
        var unknown = names.FindIndex(n => !ProgramDefinition.KnownMetrics.Contains(n));
        if (unknown >= 0)
        {
            throw Invalid($"Unknown metric '{names[unknown]}'. 'loss' (the evaluator's score) is always recorded; others: {string.Join(", ", ProgramDefinition.KnownMetrics)}.", $"{path}[{unknown}]");
        }

        return [.. names.Distinct()];
    }
}
