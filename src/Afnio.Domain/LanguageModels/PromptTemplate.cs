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
        Scan(text, sb, name => values.TryGetValue(name, out var value)
            ? value
            : throw AfnioException.Invalid("missing_input",
                $"The prompt has a placeholder '{{{name}}}' but no input named '{name}' was given. " +
                $"Pass it in 'inputs', or write '{{{{{name}}}}}' for literal braces.", "inputs"));
        return sb.ToString();
    }

    /// <summary>The placeholder names used in <paramref name="text"/>, each once, in order of first use.</summary>
    public static IReadOnlyList<string> Placeholders(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var names = new List<string>();
        Scan(text, null, name =>
        {
            if (!names.Contains(name, StringComparer.Ordinal))
            {
                names.Add(name);
            }

            return null;
        });
        return names;
    }

    /// <summary>One pass over the text; appends the result to <paramref name="output"/> when given.</summary>
    private static void Scan(string text, StringBuilder? output, Func<string, string?> placeholder)
    {
        var i = 0;
        while (i < text.Length)
        {
            var next = text.AsSpan(i).IndexOfAny('{', '}');
            if (next < 0)
            {
                output?.Append(text, i, text.Length - i);
                return;
            }

            output?.Append(text, i, next);
            i += next;
            var c = text[i];
            if (i + 1 < text.Length && text[i + 1] == c)
            {
                output?.Append(c);
                i += 2;
                continue;
            }

            if (c == '{' && NameLength(text, i + 1) is > 0 and var length && i + 1 + length < text.Length && text[i + 1 + length] == '}')
            {
                // Called even without output: Placeholders() collects names through it.
                var value = placeholder(text.Substring(i + 1, length));
                output?.Append(value);
                i += length + 2;
                continue;
            }

            output?.Append(c);
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
