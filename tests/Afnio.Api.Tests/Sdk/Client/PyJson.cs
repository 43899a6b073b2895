using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>
/// JSON seen through Python's eyes. The afnio client decodes every frame with <c>json.loads</c>, compares
/// with <c>==</c>, tests with truthiness and formats its error texts with <c>repr</c>/<c>str</c>, and it
/// encodes with <c>json.dumps</c>. Reproducing those rules is what lets the simulator accept and reject
/// exactly what the Python client would, and say so in the same words.
/// </summary>
internal static class PyJson
{
    /// <summary>
    /// <c>json.loads</c>: duplicate keys keep the last value (System.Text.Json would throw on them), and
    /// the whole tree is built eagerly so no lazy-parse error surfaces later in a handler.
    /// </summary>
    public static JsonNode? Loads(string text)
    {
        using var doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 1000 });
        return FromElement(doc.RootElement);
    }

    private static JsonNode? FromElement(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var obj = new JsonObject();
                foreach (var p in e.EnumerateObject())
                {
                    obj[p.Name] = FromElement(p.Value);
                }

                return obj;
            case JsonValueKind.Array:
                var arr = new JsonArray();
                foreach (var item in e.EnumerateArray())
                {
                    arr.Add(FromElement(item));
                }

                return arr;
            case JsonValueKind.String:
                return JsonValue.Create(e.GetString());
            case JsonValueKind.Number:
                return JsonValue.Create(e.Clone());
            case JsonValueKind.True:
                return JsonValue.Create(true);
            case JsonValueKind.False:
                return JsonValue.Create(false);
            default:
                return null;
        }
    }

    public static JsonNode? Clone(JsonNode? node) => node?.DeepClone();

    public static JsonValue Str(string s) => JsonValue.Create(s);

    // ---- classification ------------------------------------------------------------------------------

    public enum Kind
    {
        None,
        Bool,
        Int,
        Float,
        Str,
        List,
        Dict,
    }

    public static Kind KindOf(JsonNode? node)
    {
        switch (node)
        {
            case null:
                return Kind.None;
            case JsonObject:
                return Kind.Dict;
            case JsonArray:
                return Kind.List;
        }

        var v = node.AsValue();
        switch (v.GetValueKind())
        {
            case JsonValueKind.String:
                return Kind.Str;
            case JsonValueKind.True:
            case JsonValueKind.False:
                return Kind.Bool;
            case JsonValueKind.Number:
                return TryNumber(v, out var isInt, out _, out _) && isInt ? Kind.Int : Kind.Float;
            default:
                return Kind.None;
        }
    }

    /// <summary>Python's <c>type(x).__name__</c> for a decoded JSON value.</summary>
    public static string TypeName(JsonNode? node) => KindOf(node) switch
    {
        Kind.None => "NoneType",
        Kind.Bool => "bool",
        Kind.Int => "int",
        Kind.Float => "float",
        Kind.Str => "str",
        Kind.List => "list",
        _ => "dict",
    };

    public static bool IsStr(JsonNode? node, out string value)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            value = v.GetValue<string>();
            return true;
        }

        value = "";
        return false;
    }

    public static bool IsStr(JsonNode? node, string expected) => IsStr(node, out var s) && s == expected;

    private static bool TryNumber(JsonValue v, out bool isInt, out BigInteger i, out double d)
    {
        isInt = false;
        i = BigInteger.Zero;
        d = 0;
        if (v.TryGetValue<JsonElement>(out var el))
        {
            if (el.ValueKind != JsonValueKind.Number)
            {
                return false;
            }

            var raw = el.GetRawText();
            isInt = raw.IndexOfAny(['.', 'e', 'E']) < 0;
            if (isInt)
            {
                i = BigInteger.Parse(raw, CultureInfo.InvariantCulture);
                d = (double)i;
            }
            else
            {
                d = double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);
            }

            return true;
        }

        if (TryInteger(v, out i))
        {
            isInt = true;
            d = (double)i;
            return true;
        }

        if (v.TryGetValue<double>(out var f64))
        {
            d = f64;
            return true;
        }

        if (v.TryGetValue<float>(out var f32))
        {
            d = f32;
            return true;
        }

        if (v.TryGetValue<decimal>(out var dec))
        {
            d = (double)dec;
            return true;
        }

        return false;
    }

    private static bool TryInteger(JsonValue v, out BigInteger i)
    {
        i = BigInteger.Zero;
        if (v.TryGetValue<int>(out var i32))
        {
            i = i32;
        }
        else if (v.TryGetValue<long>(out var i64))
        {
            i = i64;
        }
        else if (v.TryGetValue<short>(out var i16))
        {
            i = i16;
        }
        else if (v.TryGetValue<byte>(out var u8))
        {
            i = u8;
        }
        else if (v.TryGetValue<sbyte>(out var i8))
        {
            i = i8;
        }
        else if (v.TryGetValue<ushort>(out var u16))
        {
            i = u16;
        }
        else if (v.TryGetValue<uint>(out var u32))
        {
            i = u32;
        }
        else if (v.TryGetValue<ulong>(out var u64))
        {
            i = u64;
        }
        else
        {
            return false;
        }

        return true;
    }

    /// <summary>The value as a Python int, when it is one (bool counts, as <c>isinstance(True, int)</c>).</summary>
    public static bool TryInt(JsonNode? node, out BigInteger value)
    {
        value = BigInteger.Zero;
        if (node is not JsonValue v)
        {
            return false;
        }

        switch (v.GetValueKind())
        {
            case JsonValueKind.True:
                value = BigInteger.One;
                return true;
            case JsonValueKind.False:
                return true;
            case JsonValueKind.Number:
                return TryNumber(v, out var isInt, out value, out _) && isInt;
            default:
                return false;
        }
    }

    /// <summary><c>float(x)</c> of a bool, int or float.</summary>
    public static double ToFloat(JsonNode? node) =>
        TryNumeric(node, out _, out _, out var d) ? d : throw new ArgumentException("not a number", nameof(node));

    private static bool TryNumeric(JsonNode? node, out bool isInt, out BigInteger i, out double d)
    {
        isInt = false;
        i = BigInteger.Zero;
        d = 0;
        if (node is not JsonValue v)
        {
            return false;
        }

        switch (v.GetValueKind())
        {
            case JsonValueKind.True:
                isInt = true;
                i = BigInteger.One;
                d = 1;
                return true;
            case JsonValueKind.False:
                isInt = true;
                return true;
            case JsonValueKind.Number:
                return TryNumber(v, out isInt, out i, out d);
            default:
                return false;
        }
    }

    // ---- Python semantics ------------------------------------------------------------------------------

    /// <summary>Python truthiness of the decoded value.</summary>
    public static bool Truthy(JsonNode? node)
    {
        switch (KindOf(node))
        {
            case Kind.None:
                return false;
            case Kind.Dict:
                return node!.AsObject().Count > 0;
            case Kind.List:
                return node!.AsArray().Count > 0;
            case Kind.Str:
                return node!.GetValue<string>().Length > 0;
            default:
                TryNumeric(node, out var isInt, out var i, out var d);
                return isInt ? !i.IsZero : d != 0;
        }
    }

    /// <summary>
    /// Python <c>==</c> on decoded JSON: dicts ignore key order, <c>1 == 1.0 == True</c>, and a list is
    /// never equal to anything but a list. The afnio client checks its echoes with exactly this.
    /// </summary>
    public static bool Equal(JsonNode? a, JsonNode? b)
    {
        var ka = KindOf(a);
        var kb = KindOf(b);
        if (ka == Kind.None || kb == Kind.None)
        {
            return ka == kb;
        }

        if (ka is Kind.Bool or Kind.Int or Kind.Float)
        {
            if (kb is not (Kind.Bool or Kind.Int or Kind.Float))
            {
                return false;
            }

            TryNumeric(a, out var ai, out var aInt, out var aD);
            TryNumeric(b, out var bi, out var bInt, out var bD);
            if (ai && bi)
            {
                return aInt == bInt;
            }

            if (ai)
            {
                return IsExact(bD, aInt);
            }

            if (bi)
            {
                return IsExact(aD, bInt);
            }

            return aD == bD;
        }

        if (ka != kb)
        {
            return false;
        }

        switch (ka)
        {
            case Kind.Str:
                return a!.GetValue<string>() == b!.GetValue<string>();
            case Kind.List:
                var la = a!.AsArray();
                var lb = b!.AsArray();
                if (la.Count != lb.Count)
                {
                    return false;
                }

                for (var n = 0; n < la.Count; n++)
                {
                    if (!Equal(la[n], lb[n]))
                    {
                        return false;
                    }
                }

                return true;
            default:
                var da = a!.AsObject();
                var db = b!.AsObject();
                if (da.Count != db.Count)
                {
                    return false;
                }

                foreach (var (key, value) in da)
                {
                    if (!db.TryGetPropertyValue(key, out var other) || !Equal(value, other))
                    {
                        return false;
                    }
                }

                return true;
        }
    }

    private static bool IsExact(double d, BigInteger i) =>
        !double.IsNaN(d) && !double.IsInfinity(d) && Math.Floor(d) == d && new BigInteger(d) == i;

    // ---- repr / str ------------------------------------------------------------------------------------

    /// <summary>Python <c>str(x)</c>: a string is itself, anything else its repr.</summary>
    public static string PyStr(JsonNode? node) => IsStr(node, out var s) ? s : Repr(node);

    /// <summary>Python <c>repr(x)</c> of the decoded value, as the afnio client's f-strings print it.</summary>
    public static string Repr(JsonNode? node)
    {
        var sb = new StringBuilder();
        WriteRepr(sb, node);
        return sb.ToString();
    }

    private static void WriteRepr(StringBuilder sb, JsonNode? node)
    {
        switch (node)
        {
            case null:
                sb.Append("None");
                return;
            case JsonObject obj:
                sb.Append('{');
                var first = true;
                foreach (var (key, value) in obj)
                {
                    if (!first)
                    {
                        sb.Append(", ");
                    }

                    first = false;
                    sb.Append(ReprString(key)).Append(": ");
                    WriteRepr(sb, value);
                }

                sb.Append('}');
                return;
            case JsonArray arr:
                sb.Append('[');
                for (var n = 0; n < arr.Count; n++)
                {
                    if (n > 0)
                    {
                        sb.Append(", ");
                    }

                    WriteRepr(sb, arr[n]);
                }

                sb.Append(']');
                return;
        }

        var v = node.AsValue();
        switch (v.GetValueKind())
        {
            case JsonValueKind.String:
                sb.Append(ReprString(v.GetValue<string>()));
                return;
            case JsonValueKind.True:
                sb.Append("True");
                return;
            case JsonValueKind.False:
                sb.Append("False");
                return;
            case JsonValueKind.Number:
                TryNumber(v, out var isInt, out var i, out var d);
                sb.Append(isInt ? i.ToString(CultureInfo.InvariantCulture) : FloatRepr(d));
                return;
            default:
                sb.Append("None");
                return;
        }
    }

    /// <summary>Python's <c>repr(str)</c>: single quotes unless only double quotes avoid escaping.</summary>
    public static string ReprString(string? s)
    {
        if (s is null)
        {
            return "None";
        }

        var quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2).Append(quote);
        for (var n = 0; n < s.Length; n++)
        {
            var c = s[n];
            if (c == quote || c == '\\')
            {
                sb.Append('\\').Append(c);
            }
            else if (c == '\n')
            {
                sb.Append("\\n");
            }
            else if (c == '\r')
            {
                sb.Append("\\r");
            }
            else if (c == '\t')
            {
                sb.Append("\\t");
            }
            else if (char.IsHighSurrogate(c) && n + 1 < s.Length && char.IsLowSurrogate(s[n + 1]))
            {
                sb.Append(c).Append(s[n + 1]);
                n++;
            }
            else if (!IsPrintable(c))
            {
                sb.Append(c < 0x100 ? $"\\x{(int)c:x2}" : $"\\u{(int)c:x4}");
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.Append(quote).ToString();
    }

    private static bool IsPrintable(char c)
    {
        if (c == ' ')
        {
            return true;
        }

        return char.GetUnicodeCategory(c) switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
                or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
                or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                or UnicodeCategory.SpaceSeparator => false,
            _ => true,
        };
    }

    /// <summary>Python's <c>repr(float)</c>: shortest round trip, exponent form outside 1e-4..1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        if (d == 0)
        {
            return double.IsNegative(d) ? "-0.0" : "0.0";
        }

        var r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        var exp = 0;
        var e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exp = int.Parse(r[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            r = r[..e];
        }

        var dot = r.IndexOf('.', StringComparison.Ordinal);
        var intPart = dot >= 0 ? r[..dot] : r;
        var fracPart = dot >= 0 ? r[(dot + 1)..] : "";
        var digits = (intPart + fracPart).TrimStart('0');
        var leadingZeros = (intPart + fracPart).Length - digits.Length;
        // The decimal exponent of the first significant digit: value = d.ddd x 10^point.
        var point = intPart.Length - 1 - leadingZeros + exp;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            digits = "0";
        }

        var sign = d < 0 ? "-" : "";
        if (point < -4 || point >= 16)
        {
            var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            var expText = Math.Abs(point).ToString("00", CultureInfo.InvariantCulture);
            return $"{sign}{mantissa}e{(point < 0 ? '-' : '+')}{expText}";
        }

        string text;
        if (point < 0)
        {
            text = "0." + new string('0', -point - 1) + digits;
        }
        else if (digits.Length <= point + 1)
        {
            text = digits + new string('0', point + 1 - digits.Length) + ".0";
        }
        else
        {
            text = digits[..(point + 1)] + "." + digits[(point + 1)..];
        }

        return sign + text;
    }

    // ---- json.dumps --------------------------------------------------------------------------------------

    /// <summary>
    /// <c>json.dumps</c> with its defaults (", " and ": " separators, ASCII only), byte for byte what the
    /// Python client puts on the wire.
    /// </summary>
    public static string Dumps(JsonNode? node)
    {
        var sb = new StringBuilder();
        WriteDumps(sb, node);
        return sb.ToString();
    }

    private static void WriteDumps(StringBuilder sb, JsonNode? node)
    {
        switch (node)
        {
            case null:
                sb.Append("null");
                return;
            case JsonObject obj:
                sb.Append('{');
                var first = true;
                foreach (var (key, value) in obj)
                {
                    if (!first)
                    {
                        sb.Append(", ");
                    }

                    first = false;
                    WriteJsonString(sb, key);
                    sb.Append(": ");
                    WriteDumps(sb, value);
                }

                sb.Append('}');
                return;
            case JsonArray arr:
                sb.Append('[');
                for (var n = 0; n < arr.Count; n++)
                {
                    if (n > 0)
                    {
                        sb.Append(", ");
                    }

                    WriteDumps(sb, arr[n]);
                }

                sb.Append(']');
                return;
        }

        var v = node.AsValue();
        switch (v.GetValueKind())
        {
            case JsonValueKind.String:
                WriteJsonString(sb, v.GetValue<string>());
                return;
            case JsonValueKind.True:
                sb.Append("true");
                return;
            case JsonValueKind.False:
                sb.Append("false");
                return;
            case JsonValueKind.Number:
                TryNumber(v, out var isInt, out var i, out var d);
                if (isInt)
                {
                    sb.Append(i.ToString(CultureInfo.InvariantCulture));
                }
                else if (double.IsNaN(d))
                {
                    sb.Append("NaN");
                }
                else if (double.IsInfinity(d))
                {
                    sb.Append(d > 0 ? "Infinity" : "-Infinity");
                }
                else
                {
                    sb.Append(FloatRepr(d));
                }

                return;
            default:
                sb.Append("null");
                return;
        }
    }

    private static void WriteJsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"':
                    sb.Append("\\\"");
                    break;
                case '\\':
                    sb.Append("\\\\");
                    break;
                case '\n':
                    sb.Append("\\n");
                    break;
                case '\r':
                    sb.Append("\\r");
                    break;
                case '\t':
                    sb.Append("\\t");
                    break;
                case '\b':
                    sb.Append("\\b");
                    break;
                case '\f':
                    sb.Append("\\f");
                    break;
                default:
                    if (c < 0x20 || c > 0x7e)
                    {
                        sb.Append($"\\u{(int)c:x4}");
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }

    /// <summary>Python's <c>repr(type(x))</c>, as in <c>&lt;class 'dict'&gt;</c>.</summary>
    public static string TypeRepr(JsonNode? node) => $"<class '{TypeName(node)}'>";

    /// <summary>A key for Python dicts keyed by decoded JSON values (strings, numbers, None).</summary>
    public static string HashKey(JsonNode? node) => Dumps(node);

    /// <summary>Raises Python's TypeError for values that cannot be dict keys.</summary>
    public static void EnsureHashable(JsonNode? node)
    {
        if (node is JsonObject or JsonArray)
        {
            throw new PyError("TypeError", $"unhashable type: '{TypeName(node)}'");
        }
    }

    /// <summary>A short rendering of a frame for violation messages.</summary>
    public static string Snip(string text, int max = 400) =>
        text.Length <= max ? text : string.Concat(text.AsSpan(0, max), "…");
}
