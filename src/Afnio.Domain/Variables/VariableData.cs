using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Afnio.Domain.Common;

namespace Afnio.Domain.Variables;

/// <summary>
/// A variable's payload: one scalar (string, int, float, bool or null) or a homogeneous list
/// (all strings, all ints or all floats). Construct it with <see cref="FromJson(JsonElement, string)"/>,
/// which applies the reference's validation and normalization rules.
/// </summary>
[JsonConverter(typeof(VariableDataJsonConverter))]
public sealed class VariableData : IEquatable<VariableData>
{
    private const string NotASingleValue =
        "`data` must be a single value (str, int, float) or a list/tuple of such values.";

    private const string NotHomogeneous =
        "When `data` is a list, it must be either all strings or all numbers (int, float).";

    // Stored JSON keeps '+', quotes and non-ASCII text as they are (still valid JSON).
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private VariableData(Scalar scalar)
    {
        Scalar = scalar;
        Items = [];
    }

    private VariableData(ScalarKind elementKind, ImmutableArray<Scalar> items)
    {
        IsList = true;
        ElementKind = elementKind;
        Items = items;
    }

    /// <summary>True for list data ("batched"), false for a scalar.</summary>
    public bool IsList { get; }

    /// <summary>The scalar value; <see cref="Scalar.Null"/> for lists.</summary>
    public Scalar Scalar { get; }

    /// <summary>The list items; empty for scalars.</summary>
    public ImmutableArray<Scalar> Items { get; }

    /// <summary>The kind shared by every list item (an empty list counts as a list of strings).</summary>
    public ScalarKind ElementKind { get; }

    /// <summary>The storage tag: <c>str</c>, <c>int</c>, <c>float</c>, <c>bool</c>, <c>null</c>, or <c>list[str]</c> and so on.</summary>
    public string Kind => IsList ? $"list[{Scalar.PythonTypeNameOf(ElementKind)}]" : Scalar.Kind switch
    {
        ScalarKind.Null => "null",
        var kind => Scalar.PythonTypeNameOf(kind),
    };

    /// <summary>Python's type name of the data, as <c>type(x).__name__</c> gives it: <c>list</c>, <c>str</c>, …</summary>
    public string PythonTypeName => IsList ? "list" : Scalar.PythonTypeName;

    /// <summary>A scalar payload.</summary>
    public static VariableData Of(Scalar scalar) => new(scalar);

    /// <summary>A string payload.</summary>
    public static VariableData Of(string value) => new(Scalar.FromStr(value));

    /// <summary>
    /// A list payload. Items must be all strings or all numbers; a list mixing ints and floats
    /// becomes all floats.
    /// </summary>
    public static VariableData List(IEnumerable<Scalar> items)
    {
        var array = items.ToImmutableArray();
        if (array.Length == 0 || array.All(i => i.Kind == ScalarKind.Str))
        {
            return new(ScalarKind.Str, array);
        }

        if (!array.All(i => i.IsNumber))
        {
            throw AfnioException.Invalid("invalid_data", NotHomogeneous, "data");
        }

        if (array.All(i => i.Kind == ScalarKind.Int))
        {
            return new(ScalarKind.Int, array);
        }

        return new(ScalarKind.Float, [.. array.Select(i => i.Kind == ScalarKind.Float ? i : Scalar.FromFloat(i.AsInt))]);
    }

    /// <summary>The empty string, the default data of a new variable.</summary>
    public static VariableData Empty { get; } = new(Scalar.FromStr(string.Empty));

    /// <summary>
    /// Validates and normalizes user JSON: scalars are kept as given; a list must be all strings
    /// or all numbers; a list mixing ints and floats becomes all floats; nested lists, objects,
    /// booleans or nulls inside lists are refused with a message that says why.
    /// </summary>
    /// <param name="json">The JSON value.</param>
    /// <param name="param">The request field to name in errors.</param>
    public static VariableData FromJson(JsonElement json, string param = "data")
    {
        switch (json.ValueKind)
        {
            case JsonValueKind.Array:
                var items = ImmutableArray.CreateBuilder<Scalar>(json.GetArrayLength());
                var index = 0;
                foreach (var element in json.EnumerateArray())
                {
                    items.Add(ListItem(element, $"{param}[{index}]"));
                    index++;
                }

                try
                {
                    return List(items.MoveToImmutable());
                }
                catch (AfnioException e)
                {
                    throw AfnioException.Invalid(e.Code, $"{NotHomogeneous} Got a list that mixes strings and numbers.", param);
                }

            case JsonValueKind.Object:
                throw AfnioException.Invalid("invalid_data",
                    $"{NotASingleValue} Got an object; objects are not supported.", param);
            case JsonValueKind.Undefined:
                return Empty;
            default:
                return new(ScalarFromJson(json, param));
        }
    }

    /// <summary>Reads data stored by <see cref="ToJson"/> together with its <see cref="Kind"/> tag.</summary>
    public static VariableData FromStored(string kind, string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        Scalar Read(JsonElement e, string k) => k switch
        {
            "str" => Scalar.FromStr(e.GetString()!),
            "int" => Scalar.FromInt(e.GetInt64()),
            "float" => Scalar.FromFloat(e.GetDouble()),
            "bool" => Scalar.FromBool(e.GetBoolean()),
            "null" => Scalar.Null,
            _ => throw new InvalidOperationException($"Unknown stored data kind '{k}'."),
        };

        if (kind.StartsWith("list[", StringComparison.Ordinal))
        {
            var element = kind[5..^1];
            var items = root.EnumerateArray().Select(e => Read(e, element)).ToImmutableArray();
            return new(Enum.Parse<ScalarKind>(element, ignoreCase: true), items);
        }

        return new(Read(root, kind));
    }

    /// <summary>JSON text; floats are written as Python writes them, so they stay floats (<c>1.0</c>).</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, WriterOptions))
        {
            WriteTo(writer);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Writes the data as JSON.</summary>
    public void WriteTo(Utf8JsonWriter writer)
    {
        if (!IsList)
        {
            WriteScalar(writer, Scalar);
            return;
        }

        writer.WriteStartArray();
        foreach (var item in Items)
        {
            WriteScalar(writer, item);
        }

        writer.WriteEndArray();
    }

    /// <summary>Python's <c>str()</c> of the data (lists as <c>['a', 'b']</c>).</summary>
    public override string ToString() => IsList
        ? "[" + string.Join(", ", Items.Select(i => i.Kind == ScalarKind.Str ? PythonQuote(i.AsStr) : i.ToPythonString())) + "]"
        : Scalar.ToPythonString();

    /// <inheritdoc />
    public bool Equals(VariableData? other) =>
        other is not null && IsList == other.IsList && ElementKind == other.ElementKind
        && Scalar.Equals(other.Scalar) && Items.SequenceEqual(other.Items);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as VariableData);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(IsList, Scalar, Items.Length);

    private static Scalar ListItem(JsonElement element, string param) => element.ValueKind switch
    {
        JsonValueKind.String or JsonValueKind.Number => ScalarFromJson(element, param),
        JsonValueKind.Array => throw AfnioException.Invalid("invalid_data",
            $"{NotHomogeneous} Got a nested list at {param}; nested lists are not supported.", param),
        JsonValueKind.Object => throw AfnioException.Invalid("invalid_data",
            $"{NotHomogeneous} Got an object at {param}.", param),
        JsonValueKind.Null => throw AfnioException.Invalid("invalid_data",
            $"{NotHomogeneous} Got null at {param}.", param),
        _ => throw AfnioException.Invalid("invalid_data",
            $"{NotHomogeneous} Got a boolean at {param}.", param),
    };

    private static Scalar ScalarFromJson(JsonElement element, string param)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return Scalar.FromStr(StorableText.Check(ReadString(element, param), "invalid_data", param));
            case JsonValueKind.True:
            case JsonValueKind.False:
                return Scalar.FromBool(element.GetBoolean());
            case JsonValueKind.Null:
                return Scalar.Null;
            case JsonValueKind.Number:
                var raw = element.GetRawText();
                if (raw.AsSpan().IndexOfAny(".eE") >= 0)
                {
                    var value = element.GetDouble();
                    return double.IsFinite(value)
                        ? Scalar.FromFloat(value)
                        : throw AfnioException.Invalid("invalid_data", $"The number {raw} at {param} is out of range for a float.", param);
                }

                return long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer)
                    ? Scalar.FromInt(integer)
                    : throw AfnioException.Invalid("invalid_data",
                        $"The integer {raw} at {param} does not fit in 64 bits; send it as a float or a string.", param);
            default:
                throw AfnioException.Invalid("invalid_data", NotASingleValue, param);
        }
    }

    private static string ReadString(JsonElement element, string param)
    {
        try
        {
            return element.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw AfnioException.Invalid("invalid_data", $"The string at {param} is not valid Unicode (a lone surrogate or invalid UTF-8).", param);
        }
    }

    private static void WriteScalar(Utf8JsonWriter writer, Scalar scalar)
    {
        switch (scalar.Kind)
        {
            case ScalarKind.Null:
                writer.WriteNullValue();
                break;
            case ScalarKind.Bool:
                writer.WriteBooleanValue(scalar.AsBool);
                break;
            case ScalarKind.Int:
                writer.WriteNumberValue(scalar.AsInt);
                break;
            case ScalarKind.Float:
                writer.WriteRawValue(PythonFloat.Repr(scalar.AsFloat), skipInputValidation: true);
                break;
            default:
                writer.WriteStringValue(scalar.AsStr);
                break;
        }
    }

    /// <summary>Python's <c>repr(str)</c>: single quotes unless the text has one and no double quote.</summary>
    private static string PythonQuote(string s)
    {
        var quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        var sb = new StringBuilder().Append(quote);
        foreach (var c in s)
        {
            _ = c switch
            {
                '\\' => sb.Append("\\\\"),
                '\n' => sb.Append("\\n"),
                '\r' => sb.Append("\\r"),
                '\t' => sb.Append("\\t"),
                _ when c == quote => sb.Append('\\').Append(c),
                _ when c < ' ' || c == '\x7f' => sb.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}"),
                _ => sb.Append(c),
            };
        }

        return sb.Append(quote).ToString();
    }
}

/// <summary>Reads and writes <see cref="VariableData"/> as plain JSON values.</summary>
public sealed class VariableDataJsonConverter : JsonConverter<VariableData>
{
    /// <inheritdoc />
    public override bool HandleNull => true;

    /// <inheritdoc />
    public override VariableData Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var doc = JsonDocument.ParseValue(ref reader);
        try
        {
            return VariableData.FromJson(doc.RootElement);
        }
        catch (AfnioException e)
        {
            throw new JsonException(e.Message, e);
        }
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, VariableData value, JsonSerializerOptions options) =>
        value.WriteTo(writer);
}
