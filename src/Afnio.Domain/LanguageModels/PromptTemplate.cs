using System.Text;
using Afnio.Domain.Common;

namespace Afnio.Domain.LanguageModels;

/// <summary>
/// Fills <c>{name}</c> placeholders in prompt text, in the spirit of Python's <c>str.format</c> but
/// forgiving about braces that are not placeholders, so prompts may quote JSON. The rules:
/// <list type="bullet">
/// <item><description><c>{name}</c>, where <c>name</c> matches <c>[A-Za-z_][A-Za-z0-9_]*</c>, is a
/// placeholder: it is replaced by the value of <c>name</c>; a placeholder without a value is a
/// 400-kind error with code <c>missing_input</c> and param <c>inputs</c>.</description></item>
/// <item><description><c>{{</c> always becomes <c>{</c> and <c>}}</c> always becomes <c>}</c> (escapes,
/// read left to right), so <c>{{name}}</c> is the literal text <c>{name}</c>.</description></item>
/// <item><description>Any other brace is kept exactly as written: <c>{"a": 1}</c>, <c>{ }</c>,
/// <c>{}</c>, <c>{0}</c>, <c>{x:>3}</c>, a lone <c>}</c>.</description></item>
/// </list>
/// Note that a JSON example with nested objects ends in <c>}}</c>, which the escape rule turns into
/// <c>}</c>; write <c>} }</c> or escape every brace (<c>{{ … }}}}</c>) in that case.
/// Values are inserted as they are: braces inside a value are never read as placeholders.
/// </summary>
public static class PromptTemplate
{
    /// <summary>Fills the placeholders of <paramref name="text"/> from <paramref name="values"/> (see the rules above).</summary>
    /// <exception cref="AfnioException">A placeholder names no value (code <c>missing_input</c>).</exception>
    public static string Fill(string text, IReadOnlyDictionary<string, string> values)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(values);
        if (text.AsSpan().IndexOfAny('{', '}') < 0)
        {
            return text;
        }

        var sb = new StringBuilder(text.Length + 64);
        Scan(text, (start, length) => sb.Append(text, start, length), name => sb.Append(ValueOf(values, name)));
        return sb.ToString();
    }

    /// <summary>
    /// What <see cref="Fill"/> would make, without making it: the UTF-8 byte count of the filled text
    /// and the number of placeholders filled. <paramref name="valueBytes"/> gives each value's byte count.
    /// </summary>
    public static (long Bytes, int Placeholders) Measure(string text, IReadOnlyDictionary<string, string> values, Func<string, long> valueBytes)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(valueBytes);
        long bytes = 0;
        var placeholders = 0;
        Scan(text, (start, length) => bytes += Encoding.UTF8.GetByteCount(text.AsSpan(start, length)), name =>
        {
            placeholders++;
            bytes += valueBytes(ValueOf(values, name));
        });
        return (bytes, placeholders);
    }

    /// <summary>The placeholder names used in <paramref name="text"/>, each once, in order of first use.</summary>
    public static IReadOnlyList<string> Placeholders(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var names = new List<string>();
        Scan(text, (_, _) => { }, name =>
        {
            if (!names.Contains(name, StringComparer.Ordinal))
            {
                names.Add(name);
            }
        });
        return names;
    }

    private static string ValueOf(IReadOnlyDictionary<string, string> values, string name) =>
        values.TryGetValue(name, out var value)
            ? value
            : throw AfnioException.Invalid("missing_input",
                $"The prompt has a placeholder '{{{name}}}' but no input named '{name}' was given. " +
                $"Pass it in 'inputs', or write '{{{{{name}}}}}' for literal braces.", "inputs");

    /// <summary>One pass over the text: literal runs (start, length) and placeholder names, in order.</summary>
    private static void Scan(string text, Action<int, int> literal, Action<string> placeholder)
    {
        var i = 0;
        while (i < text.Length)
        {
            var next = text.AsSpan(i).IndexOfAny('{', '}');
            if (next < 0)
            {
                literal(i, text.Length - i);
                return;
            }

            if (next > 0)
            {
                literal(i, next);
            }

            i += next;
            var c = text[i];
            if (i + 1 < text.Length && text[i + 1] == c)
            {
                // An escape: the doubled brace stands for one.
                literal(i, 1);
                i += 2;
                continue;
            }

            if (c == '{' && NameLength(text, i + 1) is > 0 and var length && i + 1 + length < text.Length && text[i + 1 + length] == '}')
            {
                placeholder(text.Substring(i + 1, length));
                i += length + 2;
                continue;
            }

            literal(i, 1);
            i++;
        }
    }

    private static int NameLength(string text, int start)
    {
        if (start >= text.Length || !(char.IsAsciiLetter(text[start]) || text[start] == '_'))
        {
            return 0;
        }

        var end = start + 1;
        while (end < text.Length && (char.IsAsciiLetterOrDigit(text[end]) || text[end] == '_'))
        {
            end++;
        }

        return end - start;
    }
}
