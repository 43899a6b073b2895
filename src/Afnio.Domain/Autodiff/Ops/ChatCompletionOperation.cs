using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff.Ops;

/// <summary>
/// <c>chat_completion(model_id, messages, inputs?, completion_args?)</c>: one chat completion, or one per
/// batch item run concurrently. Each message's content variables are joined with <c>"\n"</c>, then
/// <c>{name}</c> placeholders are filled from <c>inputs</c> (see <see cref="PromptTemplate"/>). The output
/// (role <c>response from the language model</c>) is the reply text, or the list of reply texts for a
/// batch. Backward asks the project's backward model for feedback once per variable that takes a
/// gradient, covering the whole batch in that one call.
/// </summary>
/// <param name="models">The models the calls go to.</param>
/// <param name="limits">The sizes a call may reach, checked before any model call.</param>
public sealed class ChatCompletionOperation(ILanguageModels models, OperationLimits limits) : IOperation
{
    /// <summary>The role of the output.</summary>
    public const string OutputRole = "response from the language model";

    /// <inheritdoc />
    public string Name => "chat_completion";

    /// <inheritdoc />
    public string BackwardName => "ChatCompletionBackward0";

    /// <inheritdoc />
    public OpCall Bind(JsonElement arguments) => Parse(arguments);

    /// <summary>
    /// Validates the arguments: edges are every content variable in message order, then the input
    /// variables in <c>inputs</c> order (a variable used twice has two edges).
    /// </summary>
    public static OpCall Parse(JsonElement arguments)
    {
        Arguments.EnsureObject(arguments, "model_id", "messages", "inputs", "completion_args");
        var template = ChatTemplate.Bind(arguments, []);
        return new OpCall([.. template.Edges.Select(e => e.Id)], template);
    }

    /// <inheritdoc />
    public async ValueTask<ForwardResult> ForwardAsync(
        OpCall bound, IReadOnlyDictionary<Guid, VariableSnapshot> variables, CancellationToken cancellationToken)
    {
        var template = (ChatTemplate)bound.Arguments;
        var size = ChatTemplate.BatchSize(template.BatchLengths(variables));
        var render = template.Prepare(variables, size, _ => ChatTemplate.NoExtraValues, limits);
        var items = new IReadOnlyList<ChatMessage>[size ?? 1];
        var replies = await Concurrent.AllAsync(items.Length, (i, ct) => models.ChatAsync(
            new ChatRequest(template.ModelId, items[i] = render(i), template.CompletionArgsCopy(), $"forward/{i}"), ct), cancellationToken);

        var data = size is null
            ? VariableData.Of(replies[0].Content)
            : VariableData.List(replies.Select(r => Scalar.FromStr(r.Content)));
        var saved = new JsonObject
        {
            ["batched"] = size is not null,
            ["items"] = ChatTemplate.SaveItems(items, [.. replies.Select(r => r.Content)]),
            ["edges"] = ChatTemplate.SaveEdges(template.Edges, variables),
        };
        return new ForwardResult([new OutputValue(data, OutputRole)], saved);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<GradientValue?>> BackwardAsync(BackwardContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var saved = context.SavedContext;
        var batched = saved["batched"]!.GetValue<bool>();
        var conversations = ChatTemplate.LoadConversations(saved["items"]!.AsArray());
        var feedback = context.OutputGradients[0].Text;
        return await ChatTemplate.FeedbackPerVariableAsync(models, context, _ => true,
            edge => FeedbackPrompts.ChatBackward(edge.Role, edge.Text, conversations, batched, OutputRole, feedback),
            cancellationToken);
    }
}

/// <summary>A message of a prompt template: a chat role and the variables whose texts make its content.</summary>
internal sealed record MessageTemplate(string Role, IReadOnlyList<Guid> Content);

/// <summary>A value of <c>inputs</c>.</summary>
internal abstract record PromptInput(string Name)
{
    public sealed record Text(string Name, string Value) : PromptInput(Name);

    public sealed record Texts(string Name, IReadOnlyList<string> Values) : PromptInput(Name);

    public sealed record Var(string Name, Guid Id) : PromptInput(Name);

    public sealed record Vars(string Name, IReadOnlyList<Guid> Ids) : PromptInput(Name);
}

/// <summary>An edge of a chat-based operation: the variable, where it was used, and its kind.</summary>
internal sealed record ChatEdge(Guid Id, string Param, string Kind);

/// <summary>An edge as saved for backward.</summary>
internal sealed record SavedEdge(int Index, string Id, string Role, string Text, string Kind);

/// <summary>
/// The arguments shared by chat_completion and lm_judge_evaluator (<c>model_id</c>, <c>messages</c>,
/// <c>inputs</c>, <c>completion_args</c>), prompt rendering, batching and the per-variable backward calls.
/// </summary>
internal sealed record ChatTemplate(
    Guid ModelId, IReadOnlyList<MessageTemplate> Messages, IReadOnlyList<PromptInput> Inputs, JsonObject? CompletionArgs)
{
    /// <summary>Content variables in message order, then input variables in inputs order.</summary>
    public IReadOnlyList<ChatEdge> Edges { get; } = [.. MessageEdges(Messages), .. InputEdges(Inputs)];

    public static ChatTemplate Bind(JsonElement arguments, IReadOnlyCollection<string> reservedInputs) => new(
        ModelIdOf(arguments), BindMessages(arguments), BindInputs(arguments, reservedInputs), BindCompletionArgs(arguments));

    /// <summary>A fresh copy per call: the model layer may lay defaults over it.</summary>
    public JsonObject? CompletionArgsCopy() => CompletionArgs?.DeepClone().AsObject();

    /// <summary>The length of every batched value (lists in inputs, variables holding lists), named for errors.</summary>
    public IEnumerable<(string What, int Length)> BatchLengths(IReadOnlyDictionary<Guid, VariableSnapshot> variables)
    {
        foreach (var edge in Edges.Where(e => variables[e.Id].Data.IsList))
        {
            if (edge.Kind == "input_list")
            {
                throw AfnioException.Invalid("invalid_input",
                    $"'{edge.Param}' is a variable holding a list; each variable of a list in 'inputs' must hold a single value. "
                    + "Pass the list variable itself instead of a list of variables.", "inputs");
            }

            yield return (edge.Param, variables[edge.Id].Data.Items.Length);
        }

        foreach (var input in Inputs)
        {
            switch (input)
            {
                case PromptInput.Texts t:
                    yield return ($"inputs.{t.Name}", t.Values.Count);
                    break;
                case PromptInput.Vars v:
                    yield return ($"inputs.{v.Name}", v.Ids.Count);
                    break;
            }
        }
    }

    /// <summary>The batch size, or null when nothing is batched; every batched value must have the same length.</summary>
    public static int? BatchSize(IEnumerable<(string What, int Length)> lengths)
    {
        var list = lengths.ToList();
        if (list.Count == 0)
        {
            return null;
        }

        if (list.Any(l => l.Length != list[0].Length))
        {
            throw AfnioException.Invalid("batch_length_mismatch",
                "All batched values must have the same length, but got: "
                + string.Join(", ", list.Select(l => $"{l.What} has {l.Length}")) + ".");
        }

        return list[0].Length == 0
            ? throw AfnioException.Invalid("empty_batch", $"The batch is empty: {list[0].What} has no items.")
            : list[0].Length;
    }

    /// <summary>No values beyond <see cref="Inputs"/>.</summary>
    public static IReadOnlyDictionary<string, string> NoExtraValues { get; } = new Dictionary<string, string>();

    /// <summary>
    /// Checks a call against <paramref name="limits"/> before anything is rendered or sent: the batch
    /// size, the placeholders of every message, and the bytes every item's prompt would hold (counted,
    /// not built), alone and all items together. Returns the renderer of item i: an item's messages
    /// are made only when its call is made.
    /// </summary>
    public Func<int, IReadOnlyList<ChatMessage>> Prepare(
        IReadOnlyDictionary<Guid, VariableSnapshot> variables, int? size,
        Func<int?, IReadOnlyDictionary<string, string>> extraValues, OperationLimits limits)
    {
        var count = size ?? 1;
        limits.CheckBatchSize(count, null);
        var byteCounts = new Dictionary<string, long>(ReferenceEqualityComparer.Instance);
        long ValueBytes(string value) => byteCounts.TryGetValue(value, out var known)
            ? known
            : byteCounts[value] = System.Text.Encoding.UTF8.GetByteCount(value);

        long total = 0;
        for (var i = 0; i < count; i++)
        {
            var item = size is null ? (int?)null : i;
            var values = Values(variables, item, extraValues(item));
            long bytes = 0;
            foreach (var message in Messages)
            {
                var (messageBytes, placeholders) = PromptTemplate.Measure(ContentTemplate(message, variables, item), values, ValueBytes);
                limits.CheckPlaceholders(placeholders, "messages");
                bytes += messageBytes;
            }

            limits.CheckCallBytes(bytes, "messages");
            total += bytes;
            limits.CheckRequestBytes(total, "messages");
        }

        return i => Render(variables, size is null ? null : i, extraValues(size is null ? null : i));
    }

    /// <summary>The messages of one call: content texts joined with a newline, placeholders filled.</summary>
    public IReadOnlyList<ChatMessage> Render(
        IReadOnlyDictionary<Guid, VariableSnapshot> variables, int? item, IReadOnlyDictionary<string, string> extraValues)
    {
        var values = Values(variables, item, extraValues);
        return [.. Messages.Select(m => new ChatMessage(m.Role, PromptTemplate.Fill(ContentTemplate(m, variables, item), values)))];
    }

    /// <summary>A message's content variables joined with a newline: the text whose placeholders are filled.</summary>
    private static string ContentTemplate(MessageTemplate message, IReadOnlyDictionary<Guid, VariableSnapshot> variables, int? item) =>
        string.Join("\n", message.Content.Select(id => TextAt(variables[id].Data, item)));

    /// <summary>The placeholder values of one item: the extra values, then <see cref="Inputs"/>.</summary>
    private Dictionary<string, string> Values(
        IReadOnlyDictionary<Guid, VariableSnapshot> variables, int? item, IReadOnlyDictionary<string, string> extraValues)
    {
        var values = new Dictionary<string, string>(extraValues, StringComparer.Ordinal);
        foreach (var input in Inputs)
        {
            values[input.Name] = input switch
            {
                PromptInput.Text t => t.Value,
                PromptInput.Texts t => t.Values[item!.Value],
                PromptInput.Var v => TextAt(variables[v.Id].Data, item),
                PromptInput.Vars v => TextAt(variables[v.Ids[item!.Value]].Data, null),
                _ => throw new InvalidOperationException("Unknown input kind."),
            };
        }

        return values;
    }

    /// <summary>The text of a value, or of item <paramref name="item"/> of a list; non-strings as Python prints them.</summary>
    public static string TextAt(VariableData data, int? item) =>
        Text(data.IsList ? data.Items[item ?? throw new InvalidOperationException("A list value outside a batch.")] : data.Scalar);

    /// <summary>A string as it is; anything else as Python's <c>str()</c>.</summary>
    public static string Text(Scalar scalar) => scalar.Kind == ScalarKind.Str ? scalar.AsStr : scalar.ToPythonString();

    /// <summary>A variable's value for a backward prompt: the text, or each list item in <c>&lt;ITEM&gt;</c> tags.</summary>
    public static string VariableText(JsonNode? value) => value switch
    {
        JsonArray items => Feedback.Items(items.Select(i => i!.GetValue<string>())),
        _ => value?.GetValue<string>() ?? string.Empty,
    };

    public static JsonArray SaveItems(IReadOnlyList<IReadOnlyList<ChatMessage>> items, IReadOnlyList<string> replies) =>
        [.. items.Select((messages, i) => (JsonNode)new JsonObject
        {
            ["messages"] = new JsonArray([.. messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content })]),
            ["reply"] = replies[i],
        })];

    public static JsonArray SaveEdges(IEnumerable<ChatEdge> edges, IReadOnlyDictionary<Guid, VariableSnapshot> variables) =>
        [.. edges.Select(e => (JsonNode)new JsonObject
        {
            ["id"] = PrefixedId.Format(PrefixedId.Variable, e.Id),
            ["role"] = variables[e.Id].Role,
            ["value"] = SaveValue(variables[e.Id].Data),
            ["kind"] = e.Kind,
        })];

    public static JsonNode SaveValue(VariableData data) =>
        data.IsList ? new JsonArray([.. data.Items.Select(i => (JsonNode)JsonValue.Create(Text(i)))]) : JsonValue.Create(Text(data.Scalar));

    public static IReadOnlyList<Conversation> LoadConversations(JsonArray items) =>
        [.. items.Select(item => new Conversation(
            [.. item!["messages"]!.AsArray().Select(m => new ChatMessage(m!["role"]!.GetValue<string>(), m["content"]!.GetValue<string>()))],
            item["reply"]!.GetValue<string>()))];

    public static IReadOnlyList<SavedEdge> LoadEdges(JsonObject saved) =>
        [.. saved["edges"]!.AsArray().Select((e, i) => new SavedEdge(i, e!["id"]!.GetValue<string>(), e["role"]!.GetValue<string>(),
            VariableText(e["value"]), e["kind"]!.GetValue<string>()))];

    /// <summary>
    /// One backward-model call per variable that takes a gradient (the first of its edges that
    /// <paramref name="eligible"/> accepts; its other edges get null), all concurrently.
    /// </summary>
    public static async Task<IReadOnlyList<GradientValue?>> FeedbackPerVariableAsync(
        ILanguageModels models, BackwardContext context, Func<SavedEdge, bool> eligible, Func<SavedEdge, string> prompt,
        CancellationToken cancellationToken)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var edges = LoadEdges(context.SavedContext).Select(edge => (Edge: edge, Asks: eligible(edge) && context.EdgeNeedsGradient[edge.Index] && seen.Add(edge.Id)))
            .ToList();
        return await Concurrent.AllAsync(edges.Count, (i, ct) => edges[i].Asks
            ? AskFeedbackAsync(models, prompt(edges[i].Edge), edges[i].Edge.Role, $"{context.NodeId:N}/grad/{edges[i].Edge.Index}", ct)
            : Task.FromResult<GradientValue?>(null), cancellationToken);
    }

    /// <summary>An empty gradient (<c>""</c>) for every eligible edge that takes one, as when an evaluation already succeeded.</summary>
    public static IReadOnlyList<GradientValue?> EmptyPerVariable(BackwardContext context, Func<SavedEdge, bool> eligible)
    {
        var gradients = new GradientValue?[context.EdgeNeedsGradient.Count];
        foreach (var edge in LoadEdges(context.SavedContext).Where(e => eligible(e) && context.EdgeNeedsGradient[e.Index]))
        {
            gradients[edge.Index] = GradientValue.Empty(Feedback.RoleFor(edge.Role));
        }

        return gradients;
    }

    /// <summary>One call to the backward model; the reply is the gradient of a variable with <paramref name="variableRole"/>.</summary>
    public static async Task<GradientValue?> AskFeedbackAsync(
        ILanguageModels models, string userPrompt, string variableRole, string stepKey, CancellationToken cancellationToken)
    {
        var reply = await models.ChatAsync(new ChatRequest(null,
            [new ChatMessage("system", FeedbackPrompts.GradientEngineSystemPrompt), new ChatMessage("user", userPrompt)],
            null, stepKey), cancellationToken);
        return new GradientValue(VariableData.Of(reply.Content), Feedback.RoleFor(variableRole));
    }

    private static IEnumerable<ChatEdge> MessageEdges(IReadOnlyList<MessageTemplate> messages) =>
        messages.SelectMany((m, i) => m.Content.Select((id, j) => new ChatEdge(id, $"messages[{i}].content[{j}]", "message")));

    private static IEnumerable<ChatEdge> InputEdges(IReadOnlyList<PromptInput> inputs) => inputs.SelectMany(input => input switch
    {
        PromptInput.Var v => [new ChatEdge(v.Id, $"inputs.{v.Name}", "input")],
        PromptInput.Vars v => v.Ids.Select((id, j) => new ChatEdge(id, $"inputs.{v.Name}[{j}]", "input_list")),
        _ => [],
    });

    private static Guid ModelIdOf(JsonElement arguments)
    {
        if (!arguments.TryGetProperty("model_id", out var value))
        {
            throw AfnioException.Invalid("missing_field", "'model_id' is required: a model id (mdl_…).", "model_id");
        }

        return value.ValueKind == JsonValueKind.String && PrefixedId.TryParse(PrefixedId.Model, value.GetString(), out var id)
            ? id
            : throw AfnioException.Invalid("invalid_id", "'model_id' must be a model id (mdl_…).", "model_id");
    }

    private static List<MessageTemplate> BindMessages(JsonElement arguments)
    {
        const string Shape = "a non-empty list of messages, each {\"role\": \"system\" | \"user\" | …, \"content\": [variable ids (var_…)]}";
        if (!arguments.TryGetProperty("messages", out var messages))
        {
            throw AfnioException.Invalid("missing_field", $"'messages' is required: {Shape}.", "messages");
        }

        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw AfnioException.Invalid("invalid_type", $"'messages' must be {Shape}.", "messages");
        }

        if (messages.GetArrayLength() == 0)
        {
            throw AfnioException.Invalid("invalid_value", $"'messages' is empty; it must be {Shape}.", "messages");
        }

        var result = new List<MessageTemplate>();
        foreach (var message in messages.EnumerateArray())
        {
            var param = $"messages[{result.Count}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                throw AfnioException.Invalid("invalid_type", $"'{param}' must be an object with 'role' and 'content'.", param);
            }

            foreach (var property in message.EnumerateObject().Where(p => p.Name is not ("role" or "content")))
            {
                throw AfnioException.Invalid("unknown_field",
                    $"Unknown field '{property.Name}' in '{param}'. A message takes: role, content.", $"{param}.{property.Name}");
            }

            if (!message.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String || role.GetString()!.Length == 0)
            {
                throw AfnioException.Invalid(role.ValueKind == JsonValueKind.Undefined ? "missing_field" : "invalid_type",
                    $"'{param}.role' must be a non-empty string, e.g. \"system\" or \"user\".", $"{param}.role");
            }

            if (!message.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.Array)
            {
                throw AfnioException.Invalid(content.ValueKind == JsonValueKind.Undefined ? "missing_field" : "invalid_type",
                    $"'{param}.content' must be a non-empty list of variable ids (var_…).", $"{param}.content");
            }

            if (content.GetArrayLength() == 0)
            {
                throw AfnioException.Invalid("invalid_value",
                    $"'{param}.content' is empty; it must be a non-empty list of variable ids (var_…).", $"{param}.content");
            }

            var ids = content.EnumerateArray().Select((item, j) => VariableIdOf(item, $"{param}.content[{j}]")).ToList();
            result.Add(new MessageTemplate(role.GetString()!, ids));
        }

        return result;
    }

    private static Guid VariableIdOf(JsonElement value, string param) =>
        value.ValueKind == JsonValueKind.String && PrefixedId.TryParse(PrefixedId.Variable, value.GetString(), out var id)
            ? id
            : throw AfnioException.Invalid("invalid_id", $"'{param}' must be a variable id (var_…).", param);

    private static List<PromptInput> BindInputs(JsonElement arguments, IReadOnlyCollection<string> reserved)
    {
        const string Shape = "a string, a variable id (var_…), a list of strings or a list of variable ids";
        var result = new List<PromptInput>();
        if (!arguments.TryGetProperty("inputs", out var inputs) || inputs.ValueKind == JsonValueKind.Null)
        {
            return result;
        }

        if (inputs.ValueKind != JsonValueKind.Object)
        {
            throw AfnioException.Invalid("invalid_type", $"'inputs' must be an object mapping placeholder names to {Shape}.", "inputs");
        }

        foreach (var property in inputs.EnumerateObject())
        {
            var (name, value, param) = (property.Name, property.Value, $"inputs.{property.Name}");
            if (reserved.Contains(name))
            {
                throw AfnioException.Invalid("reserved_input",
                    $"The input name '{name}' is reserved: '{{{name}}}' is filled from the '{name}' argument. Rename the input.", param);
            }

            if (result.Any(r => r.Name == name))
            {
                throw AfnioException.Invalid("duplicate_input", $"The input '{name}' is given twice.", param);
            }

            result.Add(value.ValueKind switch
            {
                JsonValueKind.String => PrefixedId.TryParse(PrefixedId.Variable, value.GetString(), out var id)
                    ? new PromptInput.Var(name, id)
                    : new PromptInput.Text(name, StorableText.Check(value.GetString()!, "invalid_input", param)),
                JsonValueKind.Array => ListInput(name, value, param, Shape),
                _ => throw AfnioException.Invalid("invalid_type", $"'{param}' must be {Shape}.", param),
            });
        }

        return result;
    }

    private static PromptInput ListInput(string name, JsonElement value, string param, string shape)
    {
        var items = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw AfnioException.Invalid("invalid_type", $"'{param}[{items.Count}]' must be a string or a variable id; '{param}' must be {shape}.", param);
            }

            items.Add(StorableText.Check(item.GetString()!, "invalid_input", $"{param}[{items.Count}]"));
        }

        var ids = items.Select(s => PrefixedId.TryParse(PrefixedId.Variable, s, out var id) ? id : (Guid?)null).ToList();
        if (items.Count > 0 && ids.All(id => id is not null))
        {
            return new PromptInput.Vars(name, [.. ids.Select(id => id!.Value)]);
        }

        return ids.Any(id => id is not null)
            ? throw AfnioException.Invalid("invalid_input",
                $"'{param}' mixes variable ids and plain strings; it must be {shape}.", param)
            : new PromptInput.Texts(name, items);
    }

    private static JsonObject? BindCompletionArgs(JsonElement arguments)
    {
        if (!arguments.TryGetProperty("completion_args", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw AfnioException.Invalid("invalid_type",
                "'completion_args' must be an object of provider arguments, e.g. {\"temperature\": 0}.", "completion_args");
        }

        if (value.TryGetProperty("n", out var n) && n.ValueKind == JsonValueKind.Number && n.GetDouble() > 1)
        {
            throw AfnioException.Invalid("unsupported_argument", "n > 1 is not supported for chat completions.", "completion_args.n");
        }

        if (value.TryGetProperty("messages", out _))
        {
            throw AfnioException.Invalid("unsupported_argument",
                "'completion_args.messages' is not allowed: the conversation comes from 'messages' (and 'inputs').", "completion_args.messages");
        }

        if (value.TryGetProperty("stream", out _))
        {
            throw AfnioException.Invalid("unsupported_argument",
                "'completion_args.stream' is not supported: replies are always returned whole.", "completion_args.stream");
        }

        return JsonObject.Create(value.Clone());
    }
}
