using System.Globalization;
using System.Text;

namespace Afnio.Domain.Variables;

/// <summary>
/// Python's <c>repr(float)</c>: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in [-4, 16) and in scientific notation otherwise (<c>1e+16</c>, <c>1.5e-05</c>).
/// Always recognisable as a float: <c>1.0</c>, never <c>1</c>.
/// </summary>
public static class PythonFloat
{
    /// <summary>Formats a finite double as Python does.</summary>
    public static string Repr(double value)
    {
        if (!double.IsFinite(value))
        {
            return double.IsNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
        }

        if (value == 0)
        {
            return double.IsNegative(value) ? "-0.0" : "0.0";
        }

        // "E16" is not shortest; "R" gives the shortest round-trip digits, in either notation.
        var (negative, digits, exponent) = Decompose(value.ToString("R", CultureInfo.InvariantCulture));
        var sb = new StringBuilder();
        if (negative)
        {
            sb.Append('-');
        }

        if (exponent is >= -4 and < 16)
        {
            if (exponent < 0)
            {
                sb.Append("0.").Append('0', -exponent - 1).Append(digits);
            }
            else if (digits.Length <= exponent + 1)
            {
                sb.Append(digits).Append('0', exponent + 1 - digits.Length).Append(".0");
            }
            else
            {
                sb.Append(digits, 0, exponent + 1).Append('.').Append(digits, exponent + 1, digits.Length - exponent - 1);
            }
        }
        else
        {
            sb.Append(digits[0]);
            if (digits.Length > 1)
            {
                sb.Append('.').Append(digits, 1, digits.Length - 1);
            }

            sb.Append('e').Append(exponent < 0 ? '-' : '+')
              .Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    // Splits .NET's round-trip text into sign, significant digits (no leading/trailing zeros)
    // and the decimal exponent of the first digit.
    private static (bool Negative, string Digits, int Exponent) Decompose(string text)
    {
        var negative = text.StartsWith('-');
        if (negative)
        {
            text = text[1..];
        }

        var exponent = 0;
        var e = text.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text[..e];
        }

        var dot = text.IndexOf('.', StringComparison.Ordinal);
        var intPart = dot >= 0 ? text[..dot] : text;
        var fracPart = dot >= 0 ? text[(dot + 1)..] : string.Empty;
        var all = intPart + fracPart;
        var leadingZeros = all.Length - all.TrimStart('0').Length;
        var digits = all.Trim('0');
        exponent += intPart.Length - 1 - leadingZeros;
        return (negative, digits, exponent);
    }
}
