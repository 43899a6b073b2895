using System.Text.Json.Nodes;
using Afnio.Domain.Common;

namespace Afnio.Data.LanguageModels;

/// <summary>The completion arguments we refuse; everything else passes through to the provider.</summary>
public static class CompletionArgs
{
    /// <summary>Refuses <c>n &gt; 1</c> (afnio's wording), streaming, and a <c>messages</c> field.</summary>
    public static void Check(JsonObject args, string param = "completion_args")
    {
        if (args["n"] is JsonValue n && n.TryGetValue<double>(out var count) && count > 1)
        {
            throw AfnioException.Invalid("unsupported_argument", "n > 1 is not supported for chat completions.", $"{param}.n");
        }

        if (args.ContainsKey("stream"))
        {
            throw AfnioException.Invalid("unsupported_argument", "Streaming is not supported: completions are stored whole.", $"{param}.stream");
        }

        if (args.ContainsKey("messages"))
        {
            throw AfnioException.Invalid("unsupported_argument", "'messages' comes from the operation, not from completion_args.", $"{param}.messages");
        }
    }
}
