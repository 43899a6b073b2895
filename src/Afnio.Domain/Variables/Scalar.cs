using System.Globalization;

namespace Afnio.Domain.Variables;

/// <summary>The type of one value inside a variable's data.</summary>
public enum ScalarKind
{
    /// <summary>JSON null (Python <c>None</c>).</summary>
    Null,

    /// <summary>A boolean.</summary>
    Bool,

    /// <summary>A 64-bit integer.</summary>
    Int,

    /// <summary>A finite double.</summary>
    Float,

    /// <summary>A string.</summary>
    Str,
}

/// <summary>
/// One value of a variable's data. Integers and floats stay distinct, as in Python:
/// <c>1</c> and <c>1.0</c> are different values of different types.
/// </summary>
public readonly struct Scalar : IEquatable<Scalar>
{
    private readonly long _int;
    private readonly double _float;
    private readonly string? _str;

    private Scalar(ScalarKind kind, long i = 0, double f = 0, string? s = null)
    {
        Kind = kind;
        _int = i;
        _float = f;
        _str = s;
    }

    /// <summary>The value's type.</summary>
    public ScalarKind Kind { get; }

    /// <summary>The null value.</summary>
    public static Scalar Null => new(ScalarKind.Null);

    /// <summary>A boolean value.</summary>
    public static Scalar FromBool(bool value) => new(ScalarKind.Bool, i: value ? 1 : 0);

    /// <summary>An integer value.</summary>
    public static Scalar FromInt(long value) => new(ScalarKind.Int, i: value);

    /// <summary>A float value; must be finite, because JSON cannot carry NaN or infinities.</summary>
    public static Scalar FromFloat(double value) =>
        double.IsFinite(value)
            ? new(ScalarKind.Float, f: value)
            : throw new ArgumentOutOfRangeException(nameof(value), "Floats must be finite.");

    /// <summary>A string value.</summary>
    public static Scalar FromStr(string value) => new(ScalarKind.Str, s: value);

    /// <summary>True for integers and floats (not booleans).</summary>
    public bool IsNumber => Kind is ScalarKind.Int or ScalarKind.Float;

    /// <summary>The boolean value.</summary>
    public bool AsBool => Kind == ScalarKind.Bool ? _int != 0 : throw WrongKind(ScalarKind.Bool);

    /// <summary>The integer value (booleans count as 0 and 1, as in Python).</summary>
    public long AsInt => Kind is ScalarKind.Int or ScalarKind.Bool ? _int : throw WrongKind(ScalarKind.Int);

    /// <summary>The value as a double (integers and booleans widen).</summary>
    public double AsFloat => Kind switch
    {
        ScalarKind.Float => _float,
        ScalarKind.Int or ScalarKind.Bool => _int,
        _ => throw WrongKind(ScalarKind.Float),
    };

    /// <summary>The string value.</summary>
    public string AsStr => Kind == ScalarKind.Str ? _str! : throw WrongKind(ScalarKind.Str);

    /// <summary>Python's type name: <c>str</c>, <c>int</c>, <c>float</c>, <c>bool</c> or <c>NoneType</c>.</summary>
    public string PythonTypeName => PythonTypeNameOf(Kind);

    /// <summary>Python's type name of a kind.</summary>
    public static string PythonTypeNameOf(ScalarKind kind) => kind switch
    {
        ScalarKind.Null => "NoneType",
        ScalarKind.Bool => "bool",
        ScalarKind.Int => "int",
        ScalarKind.Float => "float",
        _ => "str",
    };

    /// <summary>Python's <c>str(x)</c>: <c>True</c>, <c>None</c>, <c>1.0</c>, <c>1e+16</c>, …</summary>
    public string ToPythonString() => Kind switch
    {
        ScalarKind.Null => "None",
        ScalarKind.Bool => _int != 0 ? "True" : "False",
        ScalarKind.Int => _int.ToString(CultureInfo.InvariantCulture),
        ScalarKind.Float => PythonFloat.Repr(_float),
        _ => _str!,
    };

    /// <inheritdoc />
    public bool Equals(Scalar other) => Kind == other.Kind && Kind switch
    {
        ScalarKind.Float => _float.Equals(other._float),
        ScalarKind.Str => string.Equals(_str, other._str, StringComparison.Ordinal),
        _ => _int == other._int,
    };

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is Scalar other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Kind, _int, _float, _str);

    /// <inheritdoc />
    public override string ToString() => ToPythonString();

    /// <summary>Value equality.</summary>
    public static bool operator ==(Scalar left, Scalar right) => left.Equals(right);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(Scalar left, Scalar right) => !left.Equals(right);

    private InvalidOperationException WrongKind(ScalarKind wanted) =>
        new($"Expected a {PythonTypeNameOf(wanted)} value, but this value is a {PythonTypeName}.");
}
