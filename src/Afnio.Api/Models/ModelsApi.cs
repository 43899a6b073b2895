using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.LanguageModels;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Models;

/// <summary>Model clients, their usage, and the project's backward model.</summary>
public static class ModelsApi
{
    private const int MaxArgsBytes = 64 * 1024;

    public static RouteGroupBuilder MapModels(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/models").WithTags("Models");
        group.MapPost("/", CreateModel).WithName("createModel")
            .WithDescription("Registers an OpenAI or OpenAI-compatible endpoint. The key is encrypted at rest and never returned.");
        group.MapGet("/", ListModels).WithName("listModels");
        group.MapGet("/{id}", GetModel).WithName("retrieveModel");
        group.MapDelete("/{id}", DeleteModel).WithName("deleteModel");
        group.MapGet("/{id}/usage", GetModelUsage).WithName("retrieveModelUsage");
        group.MapDelete("/{id}/usage", ClearModelUsage).WithName("clearModelUsage")
            .WithDescription("Resets the model client's usage counters (the call journal keeps every call).");
        v1.MapPut("/backward_model", SetBackwardModel).WithTags("Models").WithName("setBackwardModel")
            .WithDescription("Sets the model every backward pass of the project asks for feedback, as afnio's set_backward_model_client.");
        v1.MapGet("/backward_model", GetBackwardModel).WithTags("Models").WithName("retrieveBackwardModel");
        return v1;
    }

    public static async Task<Created<ModelResponse>> CreateModel(
        CreateModelRequest request, AfnioDbContext db, ProjectContext project, ModelKeyProtector keys,
        IOptions<ModelOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var provider = request.Provider ?? throw ApiException.BadRequest("missing_field", "'provider' is required: \"openai\".", "provider");
        if (provider != "openai")
        {
            throw ApiException.BadRequest("unsupported_provider", $"Unsupported provider: {provider}.", "provider");
        }

        var baseUrl = request.BaseUrl is { } url ? CheckBaseUrl(url, options.Value.AllowPrivateAddresses) : null;
        var apiKey = request.ApiKey;
        if (apiKey is not null && (apiKey.Length is 0 or > 4096 || !IsHeaderSafe(apiKey)))
        {
            throw ApiException.BadRequest("invalid_api_key", "api_key must be 1 to 4096 printable ASCII characters.", "api_key");
        }

        if (request.Organization is { } organization && (organization.Length is 0 or > 256 || !IsHeaderSafe(organization)))
        {
            throw ApiException.BadRequest("invalid_organization", "organization must be 1 to 256 printable ASCII characters.", "organization");
        }

        if (apiKey is null && baseUrl is null)
        {
            throw ApiException.BadRequest("missing_field", "'api_key' is required for OpenAI's own endpoint (give base_url for a server that needs no key).", "api_key");
        }

        var model = new ModelClient
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = project.ProjectId,
            Provider = provider,
            Name = request.Name is { } name ? StorableText.Check(Limit(name, 200, "name"), "invalid_name", "name") : null,
            BaseUrl = baseUrl,
            ProtectedApiKey = apiKey is null ? null : keys.Protect(apiKey),
            ApiKeyHint = apiKey is { Length: >= 12 } ? apiKey[^4..] : null,
            Organization = request.Organization,
            DefaultCompletionArgs = ReadArgs(request.DefaultCompletionArgs, "default_completion_args").ToJsonString(),
            MaxConcurrency = request.MaxConcurrency switch
            {
                null => options.Value.DefaultMaxConcurrency,
                < 1 or > 1024 => throw ApiException.BadRequest("invalid_max_concurrency", "max_concurrency must be between 1 and 1024.", "max_concurrency"),
                { } n => n,
            },
            RequestsPerMinute = request.RequestsPerMinute switch
            {
                null => null,
                < 1 or > 1_000_000 => throw ApiException.BadRequest("invalid_requests_per_minute",
                    "requests_per_minute must be between 1 and 1000000.", "requests_per_minute"),
                { } n => n,
            },
            CreatedAt = clock.GetUtcNow(),
        };
        db.Models.Add(model);
        await db.SaveChangesAsync(ct);
        var response = ToResponse(model, UsageResponse.Zero);
        return TypedResults.Created($"/v1/models/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<ModelResponse>>> ListModels(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var (rows, limit) = await db.Models.AsNoTracking().Where(m => m.ProjectId == project.ProjectId)
            .FetchPageAsync(PrefixedId.Model, page, ct);
        var usage = await UsageAsync(db, rows, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(m => ToResponse(m, usage[m.Id]))], limit, m => m.Id));
    }

    public static async Task<Ok<ModelResponse>> GetModel(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var model = await FindAsync(db, project, id, "id", ct);
        return TypedResults.Ok(ToResponse(model, (await UsageAsync(db, [model], ct))[model.Id]));
    }

    public static async Task<NoContent> DeleteModel(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var guid = ParseId(id, "id");
        // The journal keeps its rows (model_id becomes null); a project whose backward model it was has none.
        if (await db.Models.Where(m => m.Id == guid && m.ProjectId == project.ProjectId).ExecuteDeleteAsync(ct) == 0)
        {
            throw ApiException.NotFound("model", "id");
        }

        return TypedResults.NoContent();
    }

    public static async Task<Ok<ModelUsageResponse>> GetModelUsage(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var model = await FindAsync(db, project, id, "id", ct);
        return TypedResults.Ok(new ModelUsageResponse(PrefixedId.Format(PrefixedId.Model, model.Id), (await UsageAsync(db, [model], ct))[model.Id]));
    }

    public static async Task<Ok<ModelUsageResponse>> ClearModelUsage(
        string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var guid = ParseId(id, "id");
        var now = clock.GetUtcNow();
        var cleared = await db.Models.Where(m => m.Id == guid && m.ProjectId == project.ProjectId)
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.UsageClearedAt, now), ct);
        return cleared == 0
            ? throw ApiException.NotFound("model", "id")
            : TypedResults.Ok(new ModelUsageResponse(id, UsageResponse.Zero));
    }

    public static async Task<Ok<BackwardModelResponse>> SetBackwardModel(
        SetBackwardModelRequest request, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var id = request.ModelId ?? throw ApiException.BadRequest("missing_field", "'model_id' is required: a model client (mdl_…).", "model_id");
        var model = await FindAsync(db, project, id, "model_id", ct);
        var args = ReadArgs(request.CompletionArgs, "completion_args");
        var updated = await db.Projects.Where(p => p.Id == project.ProjectId).ExecuteUpdateAsync(s => s
            .SetProperty(p => p.BackwardModelId, model.Id).SetProperty(p => p.BackwardCompletionArgs, args.ToJsonString()), ct);
        return updated == 0
            ? throw ApiException.NotFound("model", "model_id")
            : TypedResults.Ok(new BackwardModelResponse(PrefixedId.Format(PrefixedId.Model, model.Id), args));
    }

    public static async Task<Ok<BackwardModelResponse>> GetBackwardModel(AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var current = await db.Projects.AsNoTracking().Where(p => p.Id == project.ProjectId)
            .Select(p => new { p.BackwardModelId, p.BackwardCompletionArgs }).SingleAsync(ct);
        return current.BackwardModelId is { } modelId
            ? TypedResults.Ok(new BackwardModelResponse(PrefixedId.Format(PrefixedId.Model, modelId),
                JsonNode.Parse(current.BackwardCompletionArgs ?? "{}")!.AsObject()))
            : throw new ApiException(StatusCodes.Status404NotFound, "backward_model_not_set", ModelGateway.NoBackwardModel);
    }

    public static ModelResponse ToResponse(ModelClient m, UsageResponse usage) => new(
        PrefixedId.Format(PrefixedId.Model, m.Id), m.Provider, m.Name, m.BaseUrl, m.ProtectedApiKey is not null,
        m.ApiKeyHint is { } hint ? $"…{hint}" : null, m.Organization, JsonNode.Parse(m.DefaultCompletionArgs)!.AsObject(),
        m.MaxConcurrency, m.RequestsPerMinute, usage, m.CreatedAt.ToUnixTimeSeconds());

    /// <summary>Each model's usage since it was last cleared, summed from the call journal in one query.</summary>
    private static async Task<Dictionary<Guid, UsageResponse>> UsageAsync(AfnioDbContext db, IReadOnlyList<ModelClient> models, CancellationToken ct)
    {
        var ids = models.Select(m => m.Id).ToList();
        var sums = await db.ModelCalls.AsNoTracking()
            .Where(c => c.ModelId != null && ids.Contains(c.ModelId.Value))
            .Join(db.Models, c => c.ModelId, m => m.Id, (c, m) => new { Call = c, m.UsageClearedAt })
            .Where(x => x.UsageClearedAt == null || x.Call.CreatedAt > x.UsageClearedAt)
            .GroupBy(x => x.Call.ModelId!.Value)
            .Select(g => new
            {
                g.Key,
                Calls = g.LongCount(x => x.Call.Status == ModelCallStatus.Succeeded),
                Prompt = g.Sum(x => x.Call.PromptTokens),
                Cached = g.Sum(x => x.Call.CachedTokens),
                Completion = g.Sum(x => x.Call.CompletionTokens),
                Reasoning = g.Sum(x => x.Call.ReasoningTokens),
                Cost = g.Sum(x => x.Call.CostUsd),
            }).ToDictionaryAsync(r => r.Key, ct);
        return ids.ToDictionary(id => id, id => sums.TryGetValue(id, out var r)
            ? UsageResponse.From(r.Calls, r.Prompt, r.Cached, r.Completion, r.Reasoning, r.Cost)
            : UsageResponse.Zero);
    }

    private static async Task<ModelClient> FindAsync(AfnioDbContext db, ProjectContext project, string id, string param, CancellationToken ct)
    {
        var guid = ParseId(id, param);
        return await db.Models.AsNoTracking().SingleOrDefaultAsync(m => m.Id == guid && m.ProjectId == project.ProjectId, ct)
            ?? throw ApiException.NotFound("model", param);
    }

    private static Guid ParseId(string id, string param) =>
        PrefixedId.TryParse(PrefixedId.Model, id, out var guid)
            ? guid
            : param == "id"
                ? throw ApiException.NotFound("model", param)
                : throw ApiException.BadRequest("invalid_id", $"{param} must be a model id (mdl_…); got '{id}'.", param);

    private static string CheckBaseUrl(string url, bool allowPrivate)
    {
        if (url.Length > 2048 || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")
            || !string.IsNullOrEmpty(uri.UserInfo) || url.Any(char.IsControl))
        {
            throw ApiException.BadRequest("invalid_base_url",
                "base_url must be an absolute http(s) URL without credentials, at most 2048 characters (e.g. http://localhost:8000/v1).", "base_url");
        }

        // An address written as such is refused now; a host name is checked each time a connection is made.
        if (!allowPrivate && System.Net.IPAddress.TryParse(NetworkAddresses.HostForCheck(uri.IdnHost), out var address) && !NetworkAddresses.IsPublic(address))
        {
            throw ApiException.BadRequest("base_url_not_allowed",
                $"base_url points at a non-public address ({address}); this server does not allow model clients on private networks " +
                "(Afnio__Models__AllowPrivateAddresses).", "base_url");
        }

        return url;
    }

    // Keys and organization ids travel as HTTP header values: nothing that could end or split a header.
    private static bool IsHeaderSafe(string value) => value.All(c => c is >= '!' and <= '~');

    private static string Limit(string value, int max, string param) => value.Length <= max
        ? value
        : throw ApiException.BadRequest("invalid_" + param, $"{param} is at most {max} characters.", param);

    /// <summary>Reads completion args: an object, storable, at most 64 KiB, without arguments the service controls.</summary>
    public static JsonObject ReadArgs(JsonElement value, string param)
    {
        if (value.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw ApiException.BadRequest("invalid_type", $"{param} must be a JSON object of completion arguments.", param);
        }

        StorableJson.Check(value, "invalid_" + param, param);
        var raw = value.GetRawText();
        if (raw.Length > MaxArgsBytes)
        {
            throw ApiException.BadRequest("invalid_" + param, $"{param} is at most {MaxArgsBytes} bytes of JSON.", param);
        }

        var args = JsonNode.Parse(raw)!.AsObject();
        CompletionArgs.Check(args, param);
        return args;
    }
}
