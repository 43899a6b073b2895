using System.Text.Json;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests;

internal static class Json
{
    /// <summary>User JSON through the same validation the API applies.</summary>
    public static VariableData Data(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return VariableData.FromJson(doc.RootElement);
    }
}
