namespace Afnio.Domain.Common;

/// <summary>Text PostgreSQL can store: anything but the NUL character.</summary>
public static class StorableText
{
    /// <summary>Returns <paramref name="text"/>, or throws a 400-kind error naming <paramref name="param"/>.</summary>
    public static string Check(string text, string code, string param) =>
        text.Contains('\0', StringComparison.Ordinal)
            ? throw AfnioException.Invalid(code, $"'{param}' contains the NUL character (\\u0000), which cannot be stored.", param)
            : text;
}
