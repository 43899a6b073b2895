using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Afnio.Demo;

/// <summary>
/// A SIMULATED OpenAI-compatible chat model for the demo when no OpenAI key is given. It is a
/// handful of keyword rules, not a language model: its accuracy figures say nothing about TGD or
/// about any real model. It only lets the whole loop run offline, deterministically:
/// <list type="bullet">
/// <item><description>as the classifier, it reads problem words as negative unless its system prompt tells it calm reports are neutral;</description></item>
/// <item><description>as the feedback model, it says so;</description></item>
/// <item><description>as the optimizer, it adds that guidance to the prompt.</description></item>
/// </list>
/// </summary>
public static partial class SimulatedModel
{
    public const string Guidance = "A calm request or a factual report of a problem is neutral; answer negative only when the writer shows frustration or anger, and positive only for explicit praise or thanks.";

    private static readonly string[] Praise = ["thank you so much", "great job", "excellent", "appreciate", "wonderful", "fantastic", "impressed", "grateful"];
    private static readonly string[] Anger = ["frustrat", "unacceptable", "disappoint", "angry", "furious", "fed up", "terrible", "worst"];
    private static readonly string[] Problems = ["issue", "problem", "broken", "not working", "leak", "fault", "urgent", "damage", "malfunction"];

    /// <summary>Answers one chat-completions request body.</summary>
    public static JsonObject Complete(JsonElement request)
    {
        var messages = request.GetProperty("messages").EnumerateArray().ToList();
        string Text(string role) => messages.LastOrDefault(m => m.GetProperty("role").GetString() == role) is { ValueKind: JsonValueKind.Object } m
            ? m.GetProperty("content").GetString() ?? string.Empty : string.Empty;
        var system = Text("system");
        var user = Text("user");
        string content;
        if (user.Contains("<IMPROVED_VARIABLE>", StringComparison.Ordinal))
        {
            var value = Variable().Match(user).Groups[1].Value.Trim();
            content = $"<IMPROVED_VARIABLE>{(value.Contains(Guidance, StringComparison.Ordinal) ? value : $"{value} {Guidance}")}</IMPROVED_VARIABLE>";
        }
        else if (request.TryGetProperty("response_format", out _))
        {
            content = JsonSerializer.Serialize(new { sentiment = Classify(system, user) });
        }
        else
        {
            content = "Several messages that calmly report a problem were labelled negative while their gold label is neutral. " +
                "Tell the classifier that a factual request or report is neutral unless the writer shows frustration, and that positive needs explicit praise.";
        }

        return new JsonObject
        {
            ["id"] = $"chatcmpl-sim-{Guid.NewGuid():N}",
            ["object"] = "chat.completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = request.TryGetProperty("model", out var model) ? model.GetString() : "simulated",
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content },
                ["finish_reason"] = "stop",
            }),
            ["usage"] = new JsonObject
            {
                ["prompt_tokens"] = (system.Length + user.Length) / 4,
                ["completion_tokens"] = content.Length / 4,
                ["total_tokens"] = ((system.Length + user.Length) / 4) + (content.Length / 4),
            },
        };
    }

    private static string Classify(string system, string user)
    {
        var text = user.ToLowerInvariant();
        if (Anger.Any(text.Contains))
        {
            return "negative";
        }

        if (Praise.Any(text.Contains))
        {
            return "positive";
        }

        var guided = system.Contains("neutral", StringComparison.OrdinalIgnoreCase);
        return !guided && Problems.Any(text.Contains) ? "negative" : guided ? "neutral" : text.Contains("thank", StringComparison.Ordinal) ? "positive" : "neutral";
    }

    [GeneratedRegex("<VARIABLE>(.*?)</VARIABLE>", RegexOptions.Singleline)]
    private static partial Regex Variable();
}
