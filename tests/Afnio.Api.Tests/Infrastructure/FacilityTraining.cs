using System.Text.Json;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Optimizers;

namespace Afnio.Api.Tests.Infrastructure;

/// <summary>
/// The Facility Support sentiment task against the fake provider, with scripted, deterministic
/// models: the classifier answers "positive" or "negative" by the parity of the prompt's length
/// until its system prompt holds <see cref="Hint"/>, then "neutral"; the feedback model always
/// asks for the hint; the optimizer appends it. So training provably changes behaviour, and every
/// expected figure can be computed from the data alone.
/// </summary>
public static class FacilityTraining
{
    public const string Hint = "Default to neutral.";
    public const string InitialPrompt = "Read the provided message and determine the sentiment.";

    public static JsonElement Items { get; } =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "data", "facility-support", "dataset.json"))).RootElement;

    public static JsonElement Program { get; } =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "data", "facility-support", "program.json"))).RootElement;

    /// <summary>The scripted models' reply to any request of a training run.</summary>
    public static FakeReply Reply(JsonElement request)
    {
        var system = FakeOpenAiServer.MessageText(request, "system");
        var user = FakeOpenAiServer.MessageText(request, "user");
        if (system == TgdPrompts.SystemPrompt)
        {
            var value = Between(user, "<VARIABLE>", "</VARIABLE>");
            return FakeReply.Text($"{TgdPrompts.OpenTag}{value.TrimEnd()} {Hint}{TgdPrompts.CloseTag}");
        }

        if (system is FeedbackPrompts.GradientEngineSystemPrompt || system == EvaluatorFeedback.SystemPrompt)
        {
            return FakeReply.Text($"Neutral messages were labelled positive or negative. {Hint}");
        }

        return FakeReply.Text(JsonSerializer.Serialize(new { sentiment = Classify(system, user) }));
    }

    /// <summary>What the scripted classifier answers for a system prompt and a rendered user prompt.</summary>
    public static string Classify(string system, string user) =>
        system.Contains(Hint, StringComparison.Ordinal) ? "neutral" : user.Length % 2 == 0 ? "positive" : "negative";

    /// <summary>The user prompt the program renders for an item.</summary>
    public static string UserPrompt(JsonElement item) => $"**Message:**\n\n{item.GetProperty("fields").GetProperty("input").GetString()}\n\n";

    public static string Gold(JsonElement item) =>
        JsonDocument.Parse(item.GetProperty("answer").GetString()!).RootElement.GetProperty("sentiment").GetString()!;

    /// <summary>Uploads the dataset, creates the program and one model client on the fake server; returns their ids.</summary>
    public static async Task<(string Dataset, string Program, string Model)> SetUpAsync(TestProject project, Func<TestProject, Task<string>> registerModel)
    {
        var dataset = (await project.Client.PostJsonAsync("/v1/datasets", new { name = "facility support", items = Items })).GetProperty("id").GetString()!;
        var program = (await project.Client.PostJsonAsync("/v1/programs", new { name = "facility support analyzer", definition = Program })).GetProperty("id").GetString()!;
        return (dataset, program, await registerModel(project));
    }

    /// <summary>The body of a run over the afnio split (66/66/68, seed 0).</summary>
    public static Dictionary<string, object?> RunBody(string program, string dataset, string model, int epochs = 2, int batchSize = 33) => new()
    {
        ["program_id"] = program,
        ["dataset"] = new { id = dataset, split = new { method = "sizes", sizes = new[] { 66, 66, 68 }, seed = 0 } },
        ["models"] = new { forward = model, backward = model, optimizer = model },
        ["optimizer"] = new { momentum = 3, constraints = new[] { "The prompt must not contain curly braces." } },
        ["epochs"] = epochs,
        ["batch_size"] = batchSize,
        ["promote"] = true,
        ["test"] = true,
    };

    private static string Between(string text, string open, string close)
    {
        var start = text.IndexOf(open, StringComparison.Ordinal) + open.Length;
        return text[start..text.IndexOf(close, start, StringComparison.Ordinal)];
    }
}
