using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Models;
using Afnio.Api.Sdk.Rpc;
using Afnio.Data.LanguageModels;
using Afnio.Domain.Common;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Sdk.Methods;

/// <summary>
/// Model clients over the afnio protocol: <c>create_model</c> stores the uploaded key encrypted, with
/// the address rules of <c>POST /v1/models</c>; <c>set_model_singleton</c> is <c>PUT /v1/backward_model</c>;
/// usage is pushed as <c>update_model</c> after every paid call and zeroed by <c>clear_model_usage</c>.
/// </summary>
public static class ModelMethods
{
    private static readonly string[] ClassTypes = ["OpenAI", "AsyncOpenAI"];

    // What afnio's OpenAI client classes accept in their config; those the service has no use for are ignored.
    private static readonly HashSet<string> ConfigKeys = new(StringComparer.Ordinal)
    {
        "api_key", "organization", "project", "base_url", "websocket_base_url", "timeout", "max_retries", "default_headers", "default_query",
    };

    public static async Task<JsonNode?> CreateModelAsync(SdkCall call)
    {
        var classType = call.RequiredString("class_type");
        if (!ClassTypes.Contains(classType))
        {
            throw RpcException.InvalidParams($"Unsupported model class '{classType}': use one of {string.Join(", ", ClassTypes)}.", "class_type", "unsupported_model_class");
        }

        var provider = call.Optional("provider") is JsonValue p ? p.ToString() : "openai";
        if (provider != "openai")
        {
            throw RpcException.InvalidParams($"Unsupported provider: {provider}.", "provider", "unsupported_provider");
        }

        var config = call.Optional("config") switch
        {
            null => [],
            JsonObject c => c,
            _ => throw RpcException.InvalidParams("'config' must be an object of the client's settings.", "config", "invalid_type"),
        };
        if (config.Select(kv => kv.Key).FirstOrDefault(k => !ConfigKeys.Contains(k)) is { } unknown)
        {
            throw RpcException.InvalidParams($"Unknown model client setting '{unknown}'. Known: {string.Join(", ", ConfigKeys)}.", $"config.{unknown}", "unknown_field");
        }

        var request = new CreateModelRequest
        {
            Provider = "openai",
            Name = classType,
            BaseUrl = OptionalText(config, "base_url"),
            ApiKey = OptionalText(config, "api_key"),
            Organization = OptionalText(config, "organization"),
        };
        var created = (await ModelsApi.CreateModel(request, call.Db, call.Project, call.Get<ModelKeyProtector>(),
            call.Get<IOptions<ModelOptions>>(), call.Get<TimeProvider>(), call.Cancellation)).Value!;
        call.Session.KnownModels.Add(SdkRefs.GuidOf(PrefixedId.Model, created.Id));
        return new JsonObject { ["model_id"] = created.Id };
    }

    /// <summary>The backward model (<c>set_backward_model_client("openai/gpt-4o", …)</c>): its model name joins the completion args.</summary>
    public static async Task<JsonNode?> SetModelSingletonAsync(SdkCall call)
    {
        var idNode = call.Required("model_id");
        var model = SdkRefs.ModelId(idNode, "model_id");
        await call.EnsureModelAsync(model, "model_id");
        var completionArgs = call.Optional("completion_args") switch
        {
            null => [],
            JsonObject args => args,
            _ => throw RpcException.InvalidParams("'completion_args' must be an object.", "completion_args", "invalid_type"),
        };
        var stored = (JsonObject)completionArgs.DeepClone();
        if (call.Optional("model_name") is JsonValue name && name.GetValueKind() == JsonValueKind.String)
        {
            stored["model"] = name.GetValue<string>();
        }

        await ModelsApi.SetBackwardModel(new SetBackwardModelRequest
        {
            ModelId = PrefixedId.Format(PrefixedId.Model, model),
            CompletionArgs = JsonSerializer.SerializeToElement(stored),
        }, call.Db, call.Project, call.Cancellation);
        // The client checks that both come back as it sent them.
        return new JsonObject { ["model_id"] = idNode?.DeepClone(), ["completion_args"] = completionArgs.DeepClone() };
    }

    public static async Task<JsonNode?> ClearModelUsageAsync(SdkCall call)
    {
        var idNode = call.Required("model_id");
        var model = SdkRefs.ModelId(idNode, "model_id");
        await call.EnsureModelAsync(model, "model_id");
        var id = PrefixedId.Format(PrefixedId.Model, model);
        await ModelsApi.ClearModelUsage(id, call.Db, call.Project, call.Get<TimeProvider>(), call.Cancellation);
        await PushUsageAsync(call, model, UsageResponse.Zero);
        return new JsonObject { ["model_id"] = idNode?.DeepClone() };
    }

    /// <summary>Pushes the model client's usage since it was last cleared, in afnio's usage shape, when the client holds that model.</summary>
    public static async Task PushUsageAsync(SdkCall call, Guid model, UsageResponse? usage = null, Data.AfnioDbContext? db = null)
    {
        if (!call.Session.KnownModels.Contains(model))
        {
            return;
        }

        var id = PrefixedId.Format(PrefixedId.Model, model);
        usage ??= (await ModelsApi.GetModelUsage(id, db ?? call.Db, call.Project, call.Cancellation)).Value!.Usage;
        await call.PushAsync("update_model", new JsonObject { ["model_id"] = id, ["field"] = "_usage", ["value"] = Usage(usage) });
    }

    /// <summary>afnio's usage record: token counts, their details and the cost in USD.</summary>
    public static JsonObject Usage(UsageResponse usage) => new()
    {
        ["completion_tokens"] = usage.CompletionTokens,
        ["prompt_tokens"] = usage.PromptTokens,
        ["total_tokens"] = usage.TotalTokens,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = usage.PromptTokensDetails.CachedTokens, ["audio_tokens"] = 0 },
        ["completion_tokens_details"] = new JsonObject
        {
            ["reasoning_tokens"] = usage.CompletionTokensDetails.ReasoningTokens,
            ["audio_tokens"] = 0,
            ["accepted_prediction_tokens"] = 0,
            ["rejected_prediction_tokens"] = 0,
        },
        ["cost"] = new JsonObject { ["amount"] = (double)usage.Cost.Amount, ["currency"] = usage.Cost.Currency },
    };

    private static string? OptionalText(JsonObject config, string key) => config[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => throw RpcException.InvalidParams($"'config.{key}' must be a string.", $"config.{key}", "invalid_type"),
    };
}
