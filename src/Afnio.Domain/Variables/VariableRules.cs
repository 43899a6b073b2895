using System.Globalization;
using System.Text.Json.Serialization;
using Afnio.Domain.Common;

namespace Afnio.Domain.Variables;

/// <summary>How a caller touches a variable's gradient list; each has its own reference wording.</summary>
public enum GradAccess
{
    /// <summary>Reading <c>.grad</c>.</summary>
    Read,

    /// <summary>Appending one gradient.</summary>
    Append,

    /// <summary>Replacing the list (clearing it).</summary>
    Set,
}

/// <summary>The dtypes a variable can be cast to with <c>to(dtype)</c>.</summary>
[JsonConverter(typeof(SnakeCaseEnumConverter<CastType>))]
public enum CastType
{
    /// <summary>Python <c>int</c>.</summary>
    Int,

    /// <summary>Python <c>float</c>.</summary>
    Float,

    /// <summary>Python <c>str</c>.</summary>
    Str,
}

/// <summary>The reference's rules for variables: leaves, gradient access, copy and cast.</summary>
public static class VariableRules
{
    /// <summary><c>is_leaf = (not requires_grad) or (grad_fn is None)</c>.</summary>
    public static bool IsLeaf(bool requiresGrad, bool hasGradFn) => !requiresGrad || !hasGradFn;

    /// <summary>
    /// A gradient list can be read or changed only on a leaf or on a non-leaf that retains its
    /// gradients; otherwise this throws with the reference's message.
    /// </summary>
    public static void EnsureGradAccessible(bool isLeaf, bool retainGrad, GradAccess access)
    {
        if (isLeaf || retainGrad)
        {
            return;
        }

        var verb = access switch
        {
            GradAccess.Read => "access .grad",
            GradAccess.Append => "append to .grad",
            _ => "set .grad",
        };
        throw AfnioException.Conflict("grad_not_retained",
            $"Attempted to {verb} for a non-leaf Variable without retain_grad enabled. Non-leaf Variables do not " +
            "have their gradients retained by default in autodiff. To retain gradients for this Variable, call " +
            "``.retain_grad()`` before performing the backward pass.");
    }

    /// <summary><c>retain_grad()</c> is allowed only on non-leaves.</summary>
    public static void EnsureCanRetainGrad(bool isLeaf)
    {
        if (isLeaf)
        {
            throw AfnioException.Conflict("retain_grad_on_leaf", "Cannot call retain_grad on a leaf variable");
        }
    }

    /// <summary>
    /// <c>copy_(src)</c>'s data rule: list to list needs equal lengths, scalar to scalar is free,
    /// and a scalar never replaces a list or the other way round. Returns the copied data.
    /// </summary>
    public static VariableData CopyData(VariableData destination, VariableData source)
    {
        if (destination.IsList && source.IsList)
        {
            if (destination.Items.Length != source.Items.Length)
            {
                throw AfnioException.Invalid("copy_length_mismatch",
                    $"Cannot copy list `.data` fields of different lengths: {destination.Items.Length} vs {source.Items.Length}.",
                    "source_id");
            }

            return source;
        }

        if (destination.IsList != source.IsList)
        {
            throw AfnioException.Invalid("copy_type_mismatch",
                $"Cannot copy data from {source.PythonTypeName} to {destination.PythonTypeName}.", "source_id");
        }

        return source;
    }

    /// <summary><c>to(dtype)</c>: casts every value with Python's <c>int()</c>, <c>float()</c> or <c>str()</c>; no dtype keeps the data.</summary>
    public static VariableData Cast(VariableData data, CastType? type) =>
        type is not { } dtype ? data : data.IsList
            ? VariableData.List(data.Items.Select(i => CastScalar(i, dtype)))
            : VariableData.Of(CastScalar(data.Scalar, dtype));

    private static Scalar CastScalar(Scalar value, CastType type) => type switch
    {
        CastType.Str => Scalar.FromStr(value.ToPythonString()),
        CastType.Int => Scalar.FromInt(ToInt(value)),
        _ => Scalar.FromFloat(ToFloat(value)),
    };

    private static long ToInt(Scalar value)
    {
        switch (value.Kind)
        {
            case ScalarKind.Int:
            case ScalarKind.Bool:
                return value.AsInt;
            case ScalarKind.Float:
                var truncated = Math.Truncate(value.AsFloat);
                return truncated is >= long.MinValue and < 9.2233720368547758e18
                    ? (long)truncated
                    : throw CastFailed($"int({value}) does not fit in 64 bits.");
            case ScalarKind.Str:
                return WithoutDigitSeparators(value.AsStr.Trim()) is { } text
                    && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed)
                    ? parsed
                    : throw CastFailed($"invalid literal for int() with base 10: '{value.AsStr}'");
            default:
                throw CastFailed("int() argument must be a string, a bytes-like object or a real number, not 'NoneType'");
        }
    }

    private static double ToFloat(Scalar value)
    {
        switch (value.Kind)
        {
            case ScalarKind.Int:
            case ScalarKind.Bool:
            case ScalarKind.Float:
                return value.AsFloat;
            case ScalarKind.Str:
                var text = value.AsStr.Trim();
                if (text.TrimStart('+', '-').ToLowerInvariant() is "inf" or "infinity" or "nan")
                {
                    throw CastFailed($"float('{value.AsStr}') is not finite; JSON cannot hold it.");
                }

                if (WithoutDigitSeparators(text) is { } digits
                    && double.TryParse(digits, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed))
                {
                    return double.IsFinite(parsed)
                        ? parsed
                        : throw CastFailed($"float('{value.AsStr}') is not finite; JSON cannot hold it.");
                }

                throw CastFailed($"could not convert string to float: '{value.AsStr}'");
            default:
                throw CastFailed("float() argument must be a string or a real number, not 'NoneType'");
        }
    }

    // Python accepts '_' only between two digits ("1_000"); anything else is not a number.
    private static string? WithoutDigitSeparators(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '_' && (i == 0 || i == text.Length - 1 || !char.IsAsciiDigit(text[i - 1]) || !char.IsAsciiDigit(text[i + 1])))
            {
                return null;
            }
        }

        return text.Replace("_", string.Empty, StringComparison.Ordinal);
    }

    private static AfnioException CastFailed(string message) => AfnioException.Invalid("cast_failed", message, "dtype");
}
