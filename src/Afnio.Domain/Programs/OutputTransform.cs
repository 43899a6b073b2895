using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Common;

namespace Afnio.Domain.Programs;

/// <summary>Thrown when a transform cannot apply to one item (say, the model's reply is not JSON).</summary>
public sealed class TransformFailedException(string message) : Exception(message);

/// <summary>
/// One step of a program's no-grad output transform, applied to each item of the output: the
/// quickstart's <c>json.loads(item)["sentiment"].lower()</c> is <c>parse_json</c>, <c>field</c>,
/// <c>lowercase</c> (and <c>trim</c>). The value flows as JSON: text until <c>parse_json</c>, then
/// whatever <c>field</c> picks. The final value is its text (non-strings as compact JSON).
/// </summary>
public abstract record OutputTransform
{
    /// <summary>The transform names, for errors and documentation.</summary>
    public static IReadOnlyList<string> Names { get; } = ["parse_json", "field", "lowercase", "uppercase", "trim", "strip_code_fences"];

    /// <summary>Applies the step to one value.</summary>
    public abstract JsonNode? Apply(JsonNode? value);

    /// <summary>The step as JSON.</summary>
    public abstract JsonNode ToJson();

    /// <summary>Applies every step to a text, giving a text.</summary>
    /// <exception cref="TransformFailedException">A step does not apply.</exception>
    public static string Run(IEnumerable<OutputTransform> steps, string text)
    {
        JsonNode? value = JsonValue.Create(text);
        foreach (var step in steps)
        {
            value = step.Apply(value);
        }

        return value is JsonValue v && v.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "null";
    }

    /// <summary>Reads one step: a name (<c>"lowercase"</c>) or an object (<c>{"op": "field", "name": "sentiment"}</c>).</summary>
    public static OutputTransform Parse(JsonNode? node, string path)
    {
        var (op, obj) = node switch
        {
            JsonValue v when v.TryGetValue<string>(out var name) => (name, null),
            JsonObject o when o["op"] is JsonValue v && v.TryGetValue<string>(out var name) => (name, o),
            _ => throw ProgramParser.Invalid($"A transform step is a name or an object with 'op'. Steps: {string.Join(", ", Names)}.", path),
        };
        if (obj is not null)
        {
            ProgramParser.Only(obj, path, op == "field" ? ["op", "name"] : ["op"]);
        }

        return op switch
        {
            "parse_json" => new ParseJson(),
            "field" => new Field(obj?["name"] is JsonValue n && n.TryGetValue<string>(out var f)
                ? FieldPath.Check(f, $"{path}.name")
                : throw ProgramParser.Invalid("'field' needs 'name': the (dotted) field to pick, as {\"op\": \"field\", \"name\": \"sentiment\"}.", $"{path}.name")),
            "lowercase" => new Lowercase(),
            "uppercase" => new Uppercase(),
            "trim" => new Trim(),
            "strip_code_fences" => new StripCodeFences(),
            _ => throw ProgramParser.Invalid($"Unknown transform '{op}'. Steps: {string.Join(", ", Names)}.", path),
        };
    }

    private static string TextOf(JsonNode? value, string step) =>
        value is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new TransformFailedException($"'{step}' needs text, but got {value?.GetValueKind().ToString().ToLowerInvariant() ?? "null"}.");

    /// <summary>Parses the text as JSON.</summary>
    public sealed record ParseJson : OutputTransform
    {
        /// <inheritdoc />
        public override JsonNode? Apply(JsonNode? value)
        {
            var text = TextOf(value, "parse_json");
            try
            {
                return JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw new TransformFailedException($"'parse_json': the text is not JSON ({e.Message}).");
            }
        }

        /// <inheritdoc />
        public override JsonNode ToJson() => JsonValue.Create("parse_json");
    }

    /// <summary>Picks a (dotted) field of a JSON object.</summary>
    /// <param name="Name">The field path.</param>
    public sealed record Field(string Name) : OutputTransform
    {
        /// <inheritdoc />
        public override JsonNode? Apply(JsonNode? value) => FieldPath.Navigate(value, Name)
            ?? throw new TransformFailedException($"'field': the value has no field '{Name}'.");

        /// <inheritdoc />
        public override JsonNode ToJson() => new JsonObject { ["op"] = "field", ["name"] = Name };
    }

    /// <summary>Lower-cases the text.</summary>
    public sealed record Lowercase : OutputTransform
    {
        /// <inheritdoc />
        public override JsonNode? Apply(JsonNode? value) => JsonValue.Create(TextOf(value, "lowercase").ToLowerInvariant());

        /// <inheritdoc />
        public override JsonNode ToJson() => JsonValue.Create("lowercase");
    }

    /// <summary>Upper-cases the text.</summary>
    public sealed record Uppercase : OutputTransform
    {
        /// <inheritdoc />
        public override JsonNode? Apply(JsonNode? value) => JsonValue.Create(TextOf(value, "uppercase").ToUpperInvariant());

        /// <inheritdoc />
        public override JsonNode ToJson() => JsonValue.Create("uppercase");
    }

    /// <summary>Removes leading and trailing white space.</summary>
    public sealed record Trim : OutputTransform
    {
        /// <inheritdoc />
        public override JsonNode? Apply(JsonNode? value) => JsonValue.Create(TextOf(value, "trim").Trim());

        /// <inheritdoc />
        public override JsonNode ToJson() => JsonValue.Create("trim");
    }

    /// <summary>Removes a Markdown code fence around the text (<c>```json … ```</c>), if there is one.</summary>
    public sealed record StripCodeFences : OutputTransform
    {
        /// <inheritdoc />
        public override JsonNode? Apply(JsonNode? value)
        {
            var text = TextOf(value, "strip_code_fences").Trim();
            if (text.StartsWith("```", StringComparison.Ordinal) && text.EndsWith("```", StringComparison.Ordinal) && text.Length >= 6)
            {
                var inner = text[3..^3];
                var newline = inner.IndexOf('\n', StringComparison.Ordinal);
                // The opening fence may name a language (```json).
                text = (newline >= 0 && !inner[..newline].Contains(' ', StringComparison.Ordinal) ? inner[(newline + 1)..] : inner).Trim();
            }

            return JsonValue.Create(text);
        }

        /// <inheritdoc />
        public override JsonNode ToJson() => JsonValue.Create("strip_code_fences");
    }
}

/// <summary>Dotted paths into JSON values (<c>fields.input</c>).</summary>
public static class FieldPath
{
    /// <summary>Checks a path: dot-separated, non-empty segments.</summary>
    public static string Check(string path, string param) =>
        path.Length > 0 && path.Length <= 200 && path.Split('.').All(s => s.Length > 0) ? path
            : throw ProgramParser.Invalid($"'{path}' is not a field path: use dot-separated field names, e.g. 'fields.input'.", param);

    /// <summary>The value at <paramref name="path"/>, or null when a segment is missing.</summary>
    public static JsonNode? Navigate(JsonNode? value, string path)
    {
        foreach (var segment in path.Split('.'))
        {
            if (value is not JsonObject obj || !obj.TryGetPropertyValue(segment, out value))
            {
                return null;
            }
        }

        return value;
    }

    /// <summary>
    /// Reads a mapping from a dataset item: the value at its field, and inside the JSON text found
    /// there when it has a <c>json_field</c>. Text stays text; anything else becomes its compact JSON.
    /// </summary>
    /// <exception cref="AfnioException">The item lacks the field, or the text there is not JSON holding the inner field (code <c>dataset_field_missing</c>).</exception>
    public static string Read(JsonNode? item, FieldMapping mapping, string itemLabel)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        var value = Navigate(item, mapping.Field)
            ?? throw AfnioException.Invalid("dataset_field_missing", $"Item {itemLabel} has no field '{mapping.Field}' (needed by '{mapping.Name}').");
        if (mapping.JsonField is { } inner)
        {
            JsonNode? parsed;
            try
            {
                parsed = value is JsonValue v && v.TryGetValue<string>(out var text) ? JsonNode.Parse(text) : null;
            }
            catch (JsonException)
            {
                parsed = null;
            }

            value = Navigate(parsed, inner) ?? throw AfnioException.Invalid("dataset_field_missing",
                $"Item {itemLabel}: field '{mapping.Field}' is not JSON text with a field '{inner}' (needed by '{mapping.Name}').");
        }

        return value is JsonValue s && s.TryGetValue<string>(out var str) ? str : value.ToJsonString();
    }
}
