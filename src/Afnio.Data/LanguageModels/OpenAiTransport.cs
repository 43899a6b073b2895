using System.ClientModel;
using System.ClientModel.Primitives;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Pricing;
using Microsoft.Extensions.Options;
using OpenAI;
using OpenAI.Chat;

namespace Afnio.Data.LanguageModels;

/// <summary>A model client as a call needs it: endpoint, decrypted key, defaults and limits.</summary>
public sealed record ResolvedModel(
    Guid Id, string? BaseUrl, string? ApiKey, string? Organization, JsonObject DefaultCompletionArgs, int MaxConcurrency, int? RequestsPerMinute);

/// <summary>The outcome of one attempt.</summary>
public abstract record AttemptResult
{
    /// <summary>The provider answered with a usable completion.</summary>
    public sealed record Success(string Content, string Model, TokenUsage Usage, string Body) : AttemptResult;

    /// <summary>Worth another attempt (429, 5xx, timeout, connection failure, unreadable reply), after <paramref name="RetryAfter"/> when the provider said.</summary>
    public sealed record Transient(string Error, TimeSpan? RetryAfter) : AttemptResult;

    /// <summary>Another attempt would fail the same way (400, 401, 404, …).</summary>
    public sealed record Permanent(string Error) : AttemptResult;
}

/// <summary>
/// Sends chat completions with the official OpenAI SDK, through its protocol method so every
/// completion argument passes through unchanged and any OpenAI-compatible server (vLLM, Ollama, LM
/// Studio, Azure OpenAI, LiteLLM) can be reached by <c>base_url</c>. The SDK's own retries are off:
/// <see cref="ModelGateway"/> retries, honouring Retry-After on every status.
/// </summary>
public sealed class OpenAiTransport(IOptions<ModelOptions> options)
{
    private readonly ConcurrentDictionary<Guid, ChatClient> _clients = new();

    /// <summary>One attempt.</summary>
    public async Task<AttemptResult> SendAsync(ResolvedModel model, JsonObject body, CancellationToken cancellationToken)
    {
        var client = _clients.GetOrAdd(model.Id, _ => CreateClient(model));
        PipelineResponse response;
        try
        {
            var result = await client.CompleteChatAsync(
                BinaryContent.Create(BinaryData.FromString(body.ToJsonString())),
                new RequestOptions { CancellationToken = cancellationToken, ErrorOptions = ClientErrorBehaviors.NoThrow });
            response = result.GetRawResponse();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new AttemptResult.Transient($"The provider did not answer within {options.Value.NetworkTimeoutSeconds} s.", null);
        }
        catch (Exception e) when (e is ClientResultException or HttpRequestException)
        {
            return BlockedAddressException.Find(e) is { } blocked
                ? new AttemptResult.Permanent(blocked.Message)
                : new AttemptResult.Transient($"The provider could not be reached: {e.Message}", null);
        }

        using (response)
        {
            var text = response.Content.ToString();
            if (response.Status is >= 200 and < 300)
            {
                return Parse(text, body["model"]?.GetValue<string>() ?? string.Empty);
            }

            var error = $"The provider answered {response.Status}: {ProviderMessage(text)}";
            return IsTransient(response.Status)
                ? new AttemptResult.Transient(error, RetryAfter(response))
                : new AttemptResult.Permanent(error);
        }
    }

    /// <summary>
    /// The HTTP handler of a model client: no redirects, the address check on every connection, and no
    /// proxy unless <see cref="ModelOptions.UseProxy"/> (a proxy would hide the provider's address from the check).
    /// </summary>
    public static SocketsHttpHandler CreateHandler(ModelOptions settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var allowPrivate = settings.AllowPrivateAddresses;
        return new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = settings.UseProxy,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectCallback = NetworkAddresses.GuardedConnect(allowPrivate, host =>
                $"The model's base_url host '{host}' is not a public address, and private addresses are not allowed " +
                "(set Afnio__Models__AllowPrivateAddresses=true to reach a model server on your own network)."),
        };
    }

    private ChatClient CreateClient(ResolvedModel model)
    {
        var handler = CreateHandler(options.Value);
        var clientOptions = new OpenAIClientOptions
        {
            NetworkTimeout = TimeSpan.FromSeconds(Math.Max(1, options.Value.NetworkTimeoutSeconds)),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            OrganizationId = model.Organization,
            Transport = new HttpClientPipelineTransport(new HttpClient(handler) { Timeout = System.Threading.Timeout.InfiniteTimeSpan }),
        };
        if ((model.BaseUrl is { Length: > 0 } ? model.BaseUrl : options.Value.OpenAiBaseUrl) is { Length: > 0 } baseUrl)
        {
            clientOptions.Endpoint = new Uri(baseUrl);
        }

        // The model named here is only the SDK's default: the protocol call sends our body as it is.
        return new ChatClient("unused", new ApiKeyCredential(model.ApiKey is { Length: > 0 } key ? key : "none"), clientOptions);
    }

    private static bool IsTransient(int status) =>
        status is (int)HttpStatusCode.TooManyRequests or (int)HttpStatusCode.RequestTimeout or (int)HttpStatusCode.Conflict or >= 500;

    // Retry-After (seconds or an HTTP date) or retry-after-ms; anything odd (negative, NaN, huge) is ignored
    // or capped, since any server a user points base_url at can send it.
    private static TimeSpan? RetryAfter(PipelineResponse response)
    {
        const double MaxSeconds = 24 * 3600;
        if (response.Headers.TryGetValue("retry-after-ms", out var ms) &&
            double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out var milliseconds) && double.IsFinite(milliseconds))
        {
            return TimeSpan.FromSeconds(Math.Clamp(milliseconds / 1000, 0, MaxSeconds));
        }

        if (response.Headers.TryGetValue("Retry-After", out var value) && value is not null)
        {
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
            {
                return double.IsFinite(seconds) ? TimeSpan.FromSeconds(Math.Clamp(seconds, 0, MaxSeconds)) : null;
            }

            if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            {
                var wait = (at - DateTimeOffset.UtcNow).TotalSeconds;
                return TimeSpan.FromSeconds(Math.Clamp(wait, 0, MaxSeconds));
            }
        }

        return null;
    }

    private static string ProviderMessage(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind == JsonValueKind.Object &&
                json.RootElement.TryGetProperty("error", out var error))
            {
                return error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var message)
                    ? message.ToString()
                    : error.ToString();
            }
        }
        catch (JsonException)
        {
            // Not JSON: quote the start of it.
        }

        return body.Length > 300 ? body[..300] + "…" : body;
    }

    private static AttemptResult Parse(string body, string requestedModel)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            var message = root.GetProperty("choices")[0].GetProperty("message");
            var content = message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : null;
            if (content is null)
            {
                var refusal = message.TryGetProperty("refusal", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
                return new AttemptResult.Permanent(refusal is null
                    ? "The provider's reply has no message content."
                    : $"The model refused: {refusal}");
            }

            if (content.Contains('\0', StringComparison.Ordinal))
            {
                return new AttemptResult.Permanent("The provider's reply contains a NUL character, which cannot be stored as text.");
            }

            var model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : requestedModel;
            return new AttemptResult.Success(content, model, Usage(root), body);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            return new AttemptResult.Transient("The provider's reply was not a readable chat completion.", null);
        }
    }

    private static TokenUsage Usage(JsonElement root)
    {
        if (!root.TryGetProperty("usage", out var usage) || usage.ValueKind != JsonValueKind.Object)
        {
            return new TokenUsage(0, 0, 0);
        }

        return new TokenUsage(
            Count(usage, "prompt_tokens"),
            usage.TryGetProperty("prompt_tokens_details", out var prompt) ? Count(prompt, "cached_tokens") : 0,
            Count(usage, "completion_tokens"),
            usage.TryGetProperty("completion_tokens_details", out var completion) ? Count(completion, "reasoning_tokens") : 0);
    }

    // Token counts as the provider reports them; anything that is not a non-negative integer counts as 0.
    private static long Count(JsonElement parent, string name) =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var value) &&
        value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) && n >= 0 ? n : 0;
}
