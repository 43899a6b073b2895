using System.Text.Json.Nodes;
using Afnio.Domain.Pricing;

namespace Afnio.Domain.LanguageModels;

/// <summary>One chat message sent to a model.</summary>
/// <param name="Role">The chat role: <c>system</c>, <c>user</c>, <c>assistant</c>, …</param>
/// <param name="Content">The message text.</param>
public sealed record ChatMessage(string Role, string Content);

/// <summary>A chat-completion request as an operation sees it.</summary>
/// <param name="ModelId">A registered model client of the project; null means the project's backward model.</param>
/// <param name="Messages">The conversation.</param>
/// <param name="CompletionArgs">
/// Provider arguments (<c>model</c>, <c>temperature</c>, <c>response_format</c>, …), laid over the model
/// client's defaults (and, for the backward model, over the project's backward completion args).
/// </param>
/// <param name="StepKey">
/// Names the piece of work the call belongs to (e.g. a backward node and the edge it serves). Inside a
/// job, a call repeated with the same step key and request reuses the journaled reply instead of paying again.
/// </param>
public sealed record ChatRequest(Guid? ModelId, IReadOnlyList<ChatMessage> Messages, JsonObject? CompletionArgs, string StepKey);

/// <summary>A model's reply.</summary>
/// <param name="Content">The assistant message text, exactly as returned.</param>
/// <param name="Model">The model name the provider reported (or was asked for).</param>
/// <param name="Usage">The tokens it used.</param>
public sealed record ChatReply(string Content, string Model, TokenUsage Usage);

/// <summary>
/// The language models an operation may call, already scoped to one project (and, in the worker, one
/// job). Implementations resolve model clients, bound concurrency, retry transient faults, journal
/// every call and account usage and cost; operations never see a provider SDK.
/// </summary>
public interface ILanguageModels
{
    /// <summary>Sends one chat completion and returns the first choice's text.</summary>
    /// <exception cref="Common.AfnioException">Unknown model (404 kind), no backward model set, or a call that failed after its retries.</exception>
    Task<ChatReply> ChatAsync(ChatRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// The models of code that must call none: validating a program, or running operations that
/// need no model. A call is a bug, and fails loudly.
/// </summary>
public sealed class NoLanguageModels : ILanguageModels
{
    /// <summary>The one instance.</summary>
    public static readonly NoLanguageModels Instance = new();

    private NoLanguageModels()
    {
    }

    /// <inheritdoc />
    public Task<ChatReply> ChatAsync(ChatRequest request, CancellationToken cancellationToken) =>
        throw new InvalidOperationException($"No language model may be called here (step {request?.StepKey}).");
}
