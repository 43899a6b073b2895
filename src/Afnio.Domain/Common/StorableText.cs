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

/// <summary>JSON PostgreSQL can store and .NET can read: no NUL and no lone surrogate in any string or property name.</summary>
public static class StorableJson
{
    /// <summary>Checks every string and property name in <paramref name="json"/>; a bad one is a 400-kind error naming its path.</summary>
    public static void Check(System.Text.Json.JsonElement json, string code, string param)
    {
        switch (json.ValueKind)
        {
            case System.Text.Json.JsonValueKind.String:
                CheckString(json, code, param);
                break;
            case System.Text.Json.JsonValueKind.Array:
                var i = 0;
                foreach (var item in json.EnumerateArray())
                {
                    Check(item, code, $"{param}[{i++}]");
                }

                break;
            case System.Text.Json.JsonValueKind.Object:
                foreach (var property in json.EnumerateObject())
                {
                    var path = $"{param}.{property.Name}";
                    StorableText.Check(property.Name, code, path);
                    Check(property.Value, code, path);
                }

                break;
        }
    }

    private static void CheckString(System.Text.Json.JsonElement json, string code, string param)
    {
        string text;
        try
        {
            text = json.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw AfnioException.Invalid(code, $"'{param}' is not valid Unicode text (it holds a lone surrogate).", param);
        }

        StorableText.Check(text, code, param);
    }
}
