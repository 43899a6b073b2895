using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary>The value rules of Add, Sum and Split (semantics §2.3).</summary>
public static class DataOps
{
    /// <summary>
    /// Add: numbers add arithmetically, strings concatenate, a string and a number concatenate their
    /// string forms; lists add element by element and must have the same length.
    /// </summary>
    public static VariableData Add(VariableData x, VariableData y)
    {
        if (x.IsList != y.IsList)
        {
            throw AfnioException.Invalid("invalid_operands", "Cannot add a scalar .data to a list .data.");
        }

        if (!x.IsList)
        {
            return VariableData.Of(AddScalars(x.Scalar, y.Scalar));
        }

        if (x.Items.Length != y.Items.Length)
        {
            throw AfnioException.Invalid("length_mismatch",
                $"List .data fields must have the same length: {x.Items.Length} vs {y.Items.Length}.");
        }

        return VariableData.List(x.Items.Zip(y.Items, AddScalars));
    }

    /// <summary>
    /// Sum: numbers are summed; strings are each wrapped in <c>&lt;ITEM&gt;…&lt;/ITEM&gt;</c> and
    /// concatenated; lists are summed position by position.
    /// </summary>
    public static VariableData Sum(IReadOnlyList<VariableData> values)
    {
        if (values.Count == 0)
        {
            throw AfnioException.Invalid("invalid_operands", "Sum needs at least one variable.", "x");
        }

        if (values.Any(v => v.IsList) && !values.All(v => v.IsList))
        {
            throw AfnioException.Invalid("invalid_operands", "Cannot sum scalar .data fields with list .data fields.", "x");
        }

        if (!values[0].IsList)
        {
            return VariableData.Of(SumScalars([.. values.Select(v => v.Scalar)]));
        }

        var length = values[0].Items.Length;
        if (values.FirstOrDefault(v => v.Items.Length != length) is { } other)
        {
            throw AfnioException.Invalid("length_mismatch",
                $"List .data fields must have the same length: {length} vs {other.Items.Length}.", "x");
        }

        return VariableData.List(Enumerable.Range(0, length).Select(i => SumScalars([.. values.Select(v => v.Items[i])])));
    }

    /// <summary>
    /// Split: Python's <c>str.split(sep, maxsplit)</c> on a string gives one output per part; on a list
    /// of strings, each item is split and shorter results are padded with <c>""</c>, so output i holds
    /// part i of every item.
    /// </summary>
    public static IReadOnlyList<VariableData> Split(VariableData x, string? sep, int maxsplit)
    {
        if (!x.IsList)
        {
            return x.Scalar.Kind == ScalarKind.Str
                ? [.. PythonSplit(x.Scalar.AsStr, sep, maxsplit).Select(VariableData.Of)]
                : throw NotAString(x.PythonTypeName);
        }

        if (x.Items.Length > 0 && x.ElementKind != ScalarKind.Str)
        {
            throw NotAString("a list of numbers");
        }

        var parts = x.Items.Select(item => PythonSplit(item.AsStr, sep, maxsplit)).ToList();
        var count = parts.Count == 0 ? 0 : parts.Max(p => p.Count);
        return [.. Enumerable.Range(0, count).Select(i =>
            VariableData.List(parts.Select(p => Scalar.FromStr(i < p.Count ? p[i] : string.Empty))))];
    }

    /// <summary>Python's <c>str.split</c>: <paramref name="sep"/> null splits on runs of whitespace; maxsplit -1 is unlimited.</summary>
    public static List<string> PythonSplit(string s, string? sep, int maxsplit)
    {
        if (sep is null)
        {
            var result = new List<string>();
            var i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i]))
                {
                    i++;
                }

                if (i >= s.Length)
                {
                    return result;
                }

                if (maxsplit >= 0 && result.Count == maxsplit)
                {
                    // The rest, leading whitespace skipped and trailing whitespace kept, as CPython does.
                    result.Add(s[i..]);
                    return result;
                }

                var j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j]))
                {
                    j++;
                }

                result.Add(s[i..j]);
                i = j;
            }
        }

        if (sep.Length == 0)
        {
            throw AfnioException.Invalid("invalid_separator", "empty separator", "sep");
        }

        return maxsplit < 0
            ? [.. s.Split(sep)]
            : [.. s.Split(sep, maxsplit + 1)];
    }

    private static Scalar AddScalars(Scalar a, Scalar b)
    {
        if (IsNumeric(a) && IsNumeric(b))
        {
            return a.Kind == ScalarKind.Float || b.Kind == ScalarKind.Float
                ? FiniteFloat(a.AsFloat + b.AsFloat)
                : Scalar.FromInt(CheckedSum(a.AsInt, b.AsInt));
        }

        if (a.Kind == ScalarKind.Str && (b.Kind == ScalarKind.Str || IsNumeric(b))
            || b.Kind == ScalarKind.Str && IsNumeric(a))
        {
            return Scalar.FromStr(a.ToPythonString() + b.ToPythonString());
        }

        throw AfnioException.Invalid("invalid_operands",
            $"unsupported operand type(s) for +: '{a.PythonTypeName}' and '{b.PythonTypeName}'");
    }

    private static Scalar SumScalars(IReadOnlyList<Scalar> items)
    {
        if (items.All(i => i.Kind == ScalarKind.Str))
        {
            return Scalar.FromStr(Feedback.Items(items.Select(i => i.AsStr)));
        }

        if (!items.All(IsNumeric))
        {
            throw AfnioException.Invalid("invalid_operands",
                $"Sum needs all numbers or all strings; got {string.Join(", ", items.Select(i => i.PythonTypeName).Distinct())}.", "x");
        }

        return items.Any(i => i.Kind == ScalarKind.Float)
            ? FiniteFloat(items.Sum(i => i.AsFloat))
            : Scalar.FromInt(items.Aggregate(0L, (sum, i) => CheckedSum(sum, i.AsInt)));
    }

    private static bool IsNumeric(Scalar s) => s.Kind is ScalarKind.Int or ScalarKind.Float or ScalarKind.Bool;

    private static long CheckedSum(long a, long b)
    {
        try
        {
            return checked(a + b);
        }
        catch (OverflowException)
        {
            throw AfnioException.Invalid("overflow", $"{a} + {b} does not fit in 64 bits.");
        }
    }

    private static Scalar FiniteFloat(double value) =>
        double.IsFinite(value) ? Scalar.FromFloat(value) : throw AfnioException.Invalid("overflow", "The sum overflows a float.");

    private static AfnioException NotAString(string type) =>
        AfnioException.Invalid("invalid_operands", $"Split needs string data (a string or a list of strings); got {type}.", "x");
}
