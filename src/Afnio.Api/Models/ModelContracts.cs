using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Afnio.Api.Models;

/// <summary>Registers a model client: an OpenAI or OpenAI-compatible endpoint.</summary>
public sealed record CreateModelRequest
{
    /// <summary>Only <c>openai</c> (which covers every OpenAI-compatible server through <c>base_url</c>).</summary>
    public string? Provider { get; init; }

    /// <summary>A label for people.</summary>
    public string? Name { get; init; }

    /// <summary>The API root, e.g. <c>http://localhost:11434/v1</c> (Ollama) or a vLLM, LM Studio, LiteLLM or Azure OpenAI endpoint. Default: OpenAI's.</summary>
    public string? BaseUrl { get; init; }

    /// <summary>The provider key. Write-only: encrypted at rest, never returned or logged. Required without <c>base_url</c>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>The OpenAI organization id, sent as a header.</summary>
    public string? Organization { get; init; }

    /// <summary>Completion arguments under every call's own (e.g. <c>{"model": "gpt-4.1-mini", "temperature": 0}</c>).</summary>
    public JsonElement DefaultCompletionArgs { get; init; }

    /// <summary>Calls in flight at once, per process, across every batch and job (default 8).</summary>
    public int? MaxConcurrency { get; init; }

    /// <summary>Requests started per minute, per process; none by default.</summary>
    public int? RequestsPerMinute { get; init; }
}

/// <summary>Token counts and cost, in the shape of afnio's usage record.</summary>
public sealed record UsageResponse(
    long Calls,
    long PromptTokens,
    long CompletionTokens,
    long TotalTokens,
    PromptTokensDetails PromptTokensDetails,
    CompletionTokensDetails CompletionTokensDetails,
    Cost Cost)
{
    public static UsageResponse From(long calls, long prompt, long cached, long completion, long reasoning, decimal cost) => new(
        calls, prompt, completion, prompt + completion, new(cached, 0), new(reasoning, 0, 0, 0), new(cost, "USD"));

    public static UsageResponse Zero { get; } = From(0, 0, 0, 0, 0, 0m);
}

public sealed record PromptTokensDetails(long CachedTokens, long AudioTokens);

public sealed record CompletionTokensDetails(long ReasoningTokens, long AudioTokens, long AcceptedPredictionTokens, long RejectedPredictionTokens);

public sealed record Cost(decimal Amount, string Currency);

/// <summary>A model client. The key is never returned: only whether there is one and its last characters.</summary>
public sealed record ModelResponse(
    [property: JsonPropertyOrder(-2)] string Id,
    string Provider,
    string? Name,
    string? BaseUrl,
    bool HasApiKey,
    string? ApiKeyHint,
    string? Organization,
    JsonObject DefaultCompletionArgs,
    int MaxConcurrency,
    int? RequestsPerMinute,
    UsageResponse Usage,
    long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "model";
}

/// <summary>The model usage of a model client since its usage was last cleared.</summary>
public sealed record ModelUsageResponse([property: JsonPropertyOrder(-2)] string ModelId, UsageResponse Usage)
{
    [JsonPropertyOrder(-1)]
    public string Object => "model.usage";
}

/// <summary>Sets the project's backward model, as afnio's <c>set_backward_model_client</c>.</summary>
public sealed record SetBackwardModelRequest
{
    /// <summary>A model client of this project (<c>mdl_…</c>).</summary>
    public string? ModelId { get; init; }

    /// <summary>Completion arguments of every backward call (e.g. <c>{"model": "gpt-4o", "temperature": 0}</c>).</summary>
    public JsonElement CompletionArgs { get; init; }
}

/// <summary>The project's backward model.</summary>
public sealed record BackwardModelResponse(string ModelId, JsonObject CompletionArgs)
{
    [JsonPropertyOrder(-1)]
    public string Object => "backward_model";
}

/// <summary>Usage over the project's calls, in total and grouped.</summary>
public sealed record UsageReportResponse(string? GroupBy, UsageResponse Total, IReadOnlyList<UsageGroup> Groups)
{
    [JsonPropertyOrder(-1)]
    public string Object => "usage";
}

/// <summary>One group of a usage report: the model client, job, model name or day it covers.</summary>
public sealed record UsageGroup(string? Key, UsageResponse Usage);
