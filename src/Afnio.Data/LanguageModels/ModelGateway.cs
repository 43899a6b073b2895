using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Pricing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Afnio.Data.LanguageModels;

/// <summary>
/// Every provider call goes through here: the model client is resolved in the caller's project, the
/// call waits for the model's concurrency slot and per-minute permit, transient faults are retried
/// with backoff (honouring Retry-After), and the outcome is journaled with its usage and cost. Inside
/// a job, a (step, request) already journaled as succeeded is answered from the journal, so a resumed
/// step never pays twice.
/// </summary>
public sealed partial class ModelGateway(
    IDbContextFactory<AfnioDbContext> contexts,
    ModelKeyProtector keys,
    OpenAiTransport transport,
    ModelLimits limits,
    ModelCallJournal journal,
    PriceTable prices,
    IOptions<ModelOptions> options,
    IOptions<OperationLimits> operationLimits,
    TimeProvider clock,
    ILogger<ModelGateway> log)
{
    /// <summary>The refusal afnio's client gives when no backward model is set.</summary>
    public const string NoBackwardModel =
        "No global model client set for backward pass. Call `set_backward_model_client` to define one.";

    /// <summary>The models of one project, for calls made outside a job (forward passes in the API).</summary>
    public ILanguageModels ForProject(Guid projectId) => new Scope(this, projectId, null);

    /// <summary>The models of one project inside a job: calls are journaled under the job and replayed on resume.</summary>
    public ILanguageModels ForJob(Guid projectId, Guid jobId) => new Scope(this, projectId, jobId);

    private async Task<ChatReply> ChatAsync(Scope scope, ChatRequest request, CancellationToken ct)
    {
        // Every call, forward, backward or optimizer, is bounded before anything is sent or journaled.
        operationLimits.Value.CheckCallBytes(request.Messages.Sum(m => (long)Encoding.UTF8.GetByteCount(m.Content)), "messages");
        var (model, baseArgs) = await scope.ModelAsync(request.ModelId, ct);
        var body = RequestBody(request.Messages, model.DefaultCompletionArgs, Merge(baseArgs, request.CompletionArgs));
        var hash = Hash(model.Id, body);
        if (await scope.JournaledAsync(request.StepKey, hash, ct) is { } replay)
        {
            return replay;
        }

        var watch = Stopwatch.StartNew();
        var settings = options.Value;
        var attempts = 0;
        var error = string.Empty;
        var retryable = true;
        while (retryable && attempts < Math.Max(1, settings.MaxAttempts))
        {
            attempts++;
            AttemptResult result;
            using (await limits.AcquireAsync(model, ct))
            {
                result = await transport.SendAsync(model, body, ct);
            }

            switch (result)
            {
                case AttemptResult.Success success:
                    var cost = prices.Cost(success.Model, success.Usage);
                    await JournalAsync(scope, request.StepKey, model.Id, hash, body, success.Model, success, null, attempts, cost, watch.Elapsed, ct);
                    return new ChatReply(success.Content, success.Model, success.Usage);
                case AttemptResult.Permanent permanent:
                    error = permanent.Error;
                    retryable = false;
                    break;
                case AttemptResult.Transient transient:
                    error = transient.Error;
                    if (attempts < settings.MaxAttempts)
                    {
                        var delay = Backoff(attempts, transient.RetryAfter, settings);
                        LogRetry(log, model.Id, attempts, delay.TotalMilliseconds, transient.Error);
                        await Task.Delay(delay, clock, ct);
                    }

                    break;
            }
        }

        await JournalAsync(scope, request.StepKey, model.Id, hash, body, body["model"]!.GetValue<string>(), null, error, attempts, 0m,
            watch.Elapsed, CancellationToken.None);
        var tries = retryable ? $" after {attempts} attempts" : string.Empty;
        throw AfnioException.Upstream("model_call_failed", $"The call to model {PrefixedId.Format(PrefixedId.Model, model.Id)} failed{tries}: {error}");
    }

    /// <summary>A model client of the project, or (for null) the backward model with the project's backward completion args.</summary>
    private async Task<(ResolvedModel Model, JsonObject? Args)> ResolveAsync(Guid projectId, Guid? modelId, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        JsonObject? args = null;
        if (modelId is null)
        {
            var project = await db.Projects.AsNoTracking().Where(p => p.Id == projectId)
                .Select(p => new { p.BackwardModelId, p.BackwardCompletionArgs }).SingleAsync(ct);
            modelId = project.BackwardModelId ?? throw AfnioException.Conflict("backward_model_not_set", NoBackwardModel);
            args = project.BackwardCompletionArgs is { } stored ? JsonNode.Parse(stored)!.AsObject() : null;
        }

        var row = await db.Models.AsNoTracking().SingleOrDefaultAsync(m => m.Id == modelId && m.ProjectId == projectId, ct)
            ?? throw AfnioException.NotFound("model_not_found",
                $"Unknown model_id: '{PrefixedId.Format(PrefixedId.Model, modelId.Value)}'", "model_id");
        return (new ResolvedModel(row.Id, row.BaseUrl, row.ProtectedApiKey is { } protectedKey ? keys.Unprotect(protectedKey) : null,
            row.Organization, JsonNode.Parse(row.DefaultCompletionArgs)!.AsObject(), row.MaxConcurrency, row.RequestsPerMinute), args);
    }

    /// <summary>The request body: defaults, then the call's arguments, then the messages.</summary>
    public static JsonObject RequestBody(IReadOnlyList<ChatMessage> messages, JsonObject defaults, JsonObject? args)
    {
        var body = Merge(defaults, args);
        body.Remove("messages");
        if (body["model"] is not JsonValue model || !model.TryGetValue<string>(out var name) || name.Length == 0)
        {
            throw AfnioException.Invalid("missing_model_name",
                "completion_args must name the provider's 'model' (on the call, or in the model client's default_completion_args).",
                "completion_args.model");
        }

        CompletionArgs.Check(body);
        body["messages"] = new JsonArray([.. messages.Select(m => new JsonObject { ["role"] = m.Role, ["content"] = m.Content })]);
        return body;
    }

    private static JsonObject Merge(JsonObject? under, JsonObject? over)
    {
        var merged = under?.DeepClone().AsObject() ?? [];
        foreach (var (name, value) in over ?? [])
        {
            merged[name] = value?.DeepClone();
        }

        return merged;
    }

    private static string Hash(Guid modelId, JsonObject body) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{modelId:N}\n{body.ToJsonString()}")));

    private static TimeSpan Backoff(int attempt, TimeSpan? retryAfter, ModelOptions settings)
    {
        var cap = TimeSpan.FromSeconds(Math.Max(0, settings.MaxRetryDelaySeconds));
        if (retryAfter is { } asked)
        {
            return asked < cap ? asked : cap;
        }

        var exponential = settings.RetryBaseDelayMs * Math.Pow(2, attempt - 1) * (0.8 + (Random.Shared.NextDouble() * 0.4));
        var delay = TimeSpan.FromMilliseconds(exponential);
        return delay < cap ? delay : cap;
    }

    /// <summary>The replies a job already paid for, by step key and request hash (read once per job run).</summary>
    private async Task<Dictionary<(string StepKey, string Hash), ChatReply>> JournalOfAsync(Guid jobId, CancellationToken ct)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var rows = await db.ModelCalls.AsNoTracking()
            .Where(c => c.JobId == jobId && c.Status == ModelCallStatus.Succeeded)
            .OrderBy(c => c.CreatedAt)
            .Select(c => new { c.StepKey, c.RequestHash, c.Response, c.Model, c.PromptTokens, c.CachedTokens, c.CompletionTokens, c.ReasoningTokens })
            .ToListAsync(ct);
        var journal = new Dictionary<(string, string), ChatReply>();
        foreach (var c in rows)
        {
            journal.TryAdd((c.StepKey, c.RequestHash), new ChatReply(c.Response!, c.Model,
                new TokenUsage(c.PromptTokens, c.CachedTokens, c.CompletionTokens, c.ReasoningTokens)));
        }

        return journal;
    }

    private Task JournalAsync(
        Scope scope, string stepKey, Guid modelId, string hash, JsonObject body, string modelName,
        AttemptResult.Success? success, string? error, int attempts, decimal cost, TimeSpan latency, CancellationToken ct)
    {
        // An insert only, no shared row to update, and group-committed with the other calls finishing now:
        // concurrent calls of a batch never queue on each other. Model, job and project usage are sums over rows.
        var usage = success?.Usage ?? new TokenUsage(0, 0, 0);
        return journal.WriteAsync(new ModelCall
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = scope.ProjectId,
            ModelId = modelId,
            JobId = scope.JobId,
            StepKey = stepKey,
            RequestHash = hash,
            Model = Storable(modelName, 200),
            Request = JournaledRequest(body, hash),
            Response = success?.Content,
            Status = success is null ? ModelCallStatus.Failed : ModelCallStatus.Succeeded,
            Error = error is null ? null : Storable(error, 4000),
            Attempts = attempts,
            PromptTokens = usage.Input,
            CachedTokens = usage.CachedInput,
            CompletionTokens = usage.Output,
            ReasoningTokens = usage.Reasoning,
            CostUsd = cost,
            LatencyMs = (int)Math.Min(int.MaxValue, latency.TotalMilliseconds),
            CreatedAt = clock.GetUtcNow(),
        }, ct);
    }

    /// <summary>
    /// The request as journaled: whole up to <see cref="ModelOptions.MaxJournaledRequestBytes"/>; beyond
    /// that its hash, its size and a bounded excerpt of its JSON, so one oversized call cannot grow the table.
    /// </summary>
    private string JournaledRequest(JsonObject body, string hash)
    {
        var json = body.ToJsonString();
        var max = Math.Max(1024, options.Value.MaxJournaledRequestBytes);
        var bytes = Encoding.UTF8.GetByteCount(json);
        if (bytes <= max)
        {
            return json;
        }

        var excerpt = json[..(int)Math.Min(json.Length, max / 2)];
        // An excerpt never ends inside a surrogate pair, so it stays storable text.
        excerpt = char.IsHighSurrogate(excerpt[^1]) ? excerpt[..^1] : excerpt;
        return new JsonObject
        {
            ["truncated"] = true,
            ["sha256"] = hash,
            ["bytes"] = bytes,
            ["excerpt"] = excerpt,
        }.ToJsonString();
    }

    // Provider-controlled text (model names, error messages) goes into the journal: no NUL, bounded.
    private static string Storable(string text, int max)
    {
        var clean = text.Replace('\0', '\uFFFD');
        return clean.Length > max ? clean[..max] : clean;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {ModelId}: attempt {Attempt} failed, retrying in {DelayMs:F0} ms: {Error}")]
    private static partial void LogRetry(ILogger logger, Guid modelId, int attempt, double delayMs, string error);

    /// <summary>
    /// One project's models for one request or one job run. Model clients are resolved (and their keys
    /// decrypted) once per scope; inside a job the journal is read once, at the first call.
    /// </summary>
    private sealed class Scope(ModelGateway gateway, Guid projectId, Guid? jobId) : ILanguageModels
    {
        private readonly ConcurrentDictionary<Guid, Lazy<Task<(ResolvedModel, JsonObject?)>>> _models = new();
        private readonly Lazy<Task<Dictionary<(string StepKey, string Hash), ChatReply>>>? _journal =
            jobId is { } job ? new(() => gateway.JournalOfAsync(job, CancellationToken.None)) : null;

        public Guid ProjectId => projectId;

        public Guid? JobId => jobId;

        public Task<ChatReply> ChatAsync(ChatRequest request, CancellationToken cancellationToken) =>
            gateway.ChatAsync(this, request, cancellationToken);

        public Task<(ResolvedModel Model, JsonObject? Args)> ModelAsync(Guid? modelId, CancellationToken ct) =>
            _models.GetOrAdd(modelId ?? Guid.Empty, _ => new(() => gateway.ResolveAsync(projectId, modelId, CancellationToken.None))).Value
                .WaitAsync(ct);

        public async Task<ChatReply?> JournaledAsync(string stepKey, string hash, CancellationToken ct) =>
            _journal is null ? null : (await _journal.Value.WaitAsync(ct)).GetValueOrDefault((stepKey, hash));
    }
}
