using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Idempotency;
using Afnio.Domain.Variables;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Afnio.Api.Infrastructure;

public static class OpenApiSetup
{
    public static readonly Action<JsonSerializerOptions> ConfigureJson = o =>
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        o.DictionaryKeyPolicy = JsonNamingPolicy.SnakeCaseLower;
        // A number is a JSON number: "3" is a string, and a wrong type is a 400 like any other.
        o.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict;
        // Unknown fields are refused, so a typo never silently does nothing.
        o.UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow;
        o.RespectNullableAnnotations = true;
        o.RespectRequiredConstructorParameters = true;
        o.AllowTrailingCommas = false;
        // A key given twice is refused (400 duplicate_field): free-form objects are read as JsonObject, which cannot hold one.
        o.AllowDuplicateProperties = false;
        // Responses are application/json, never embedded in HTML: keep "+", quotes and non-ASCII text readable.
        o.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
    };

    public static IServiceCollection AddAfnioOpenApi(this IServiceCollection services)
    {
        services.ConfigureHttpJsonOptions(o => ConfigureJson(o.SerializerOptions));
        services.Configure<Microsoft.AspNetCore.Mvc.JsonOptions>(o => ConfigureJson(o.JsonSerializerOptions));
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(o =>
        {
            o.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "Afnio API",
                Version = "v1",
                Description = "Optimize LLM programs with textual gradients: variables, operations, backward passes and "
                    + "TGD optimizer steps as a REST service. Authenticate with 'Authorization: Bearer <key>'. "
                    + "Errors are RFC 9457 problem documents with a stable 'code'. POST requests accept an "
                    + "'Idempotency-Key' header; stored responses are replayed for 24 hours.",
            });
            o.SupportNonNullableReferenceTypes();
            o.NonNullableReferenceTypesAsRequired();
            o.AddSecurityDefinition("bearer", new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "A project API key (afn_…), or the admin key for /v1/projects and /v1/admin.",
            });
            o.AddSecurityRequirement(document => new OpenApiSecurityRequirement
            {
                [new OpenApiSecuritySchemeReference("bearer", document)] = [],
            });
            o.MapType<VariableData>(() => new OpenApiSchema
            {
                Description = "A string, integer, float, boolean or null, or a list of only strings or only numbers.",
                Examples = [JsonValue.Create("You are a helpful assistant.")!],
            });
            o.MapType<JsonElement>(() => new OpenApiSchema { Description = "Any JSON value." });
            // Completion args and optimizer inputs are free-form objects, not System.Text.Json's node classes.
            o.MapType<JsonObject>(() => new OpenApiSchema { Type = JsonSchemaType.Object, AdditionalPropertiesAllowed = true, Description = "A JSON object." });
            o.MapType<JsonNode>(() => new OpenApiSchema { Description = "Any JSON value." });
            o.CustomSchemaIds(SchemaId);
            o.OperationFilter<IdempotencyKeyHeaderFilter>();
            o.OperationFilter<TextResponsesFilter>();
            o.SchemaFilter<RequestRequiredFieldsFilter>();
            o.IncludeXmlComments(typeof(OpenApiSetup).Assembly);
        });
        return services;
    }

    // ListResponse<VariableResponse> becomes "VariableList", not "VariableResponseListResponse".
    private static string SchemaId(Type type) =>
        type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ListResponse<>)
            ? type.GetGenericArguments()[0].Name.Replace("Response", string.Empty, StringComparison.Ordinal) + "List"
            : type.Name;

    /// <summary>
    /// In requests only what the caller must send is required: C# <c>required</c> members and record
    /// parameters without a default. (Non-nullable value types would otherwise be marked required.)
    /// </summary>
    private sealed class RequestRequiredFieldsFilter : ISchemaFilter
    {
        public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
        {
            if (!context.Type.Name.EndsWith("Request", StringComparison.Ordinal) || schema is not OpenApiSchema concrete
                || concrete.Properties is null)
            {
                return;
            }

            var naming = JsonNamingPolicy.SnakeCaseLower;
            var mandatory = context.Type.GetConstructors().SelectMany(c => c.GetParameters())
                .Where(p => !p.HasDefaultValue && !p.IsOptional).Select(p => naming.ConvertName(p.Name!))
                .Concat(context.Type.GetProperties()
                    .Where(p => p.GetCustomAttributes(typeof(System.Runtime.CompilerServices.RequiredMemberAttribute), true).Length > 0)
                    .Select(p => naming.ConvertName(p.Name)))
                .ToHashSet();
            concrete.Required = new HashSet<string>(concrete.Properties.Keys.Where(mandatory.Contains));
        }
    }

    private sealed class IdempotencyKeyHeaderFilter : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            if (!string.Equals(context.ApiDescription.HttpMethod, "POST", StringComparison.OrdinalIgnoreCase))
            {
                return;
            }

            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = IdempotencyMiddleware.HeaderName,
                In = ParameterLocation.Header,
                Required = false,
                Description = "Makes a retry safe: the same key with the same request replays the stored response "
                    + "for 24 hours; the same key with a different request answers 422.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 255 },
            });
        }
    }

    /// <summary>Text alternatives of a response (a Mermaid diagram, an event stream) are strings, whatever the JSON schema says.</summary>
    private sealed class TextResponsesFilter : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            if (operation.Responses is null)
            {
                return;
            }

            foreach (var response in operation.Responses.Values)
            {
                if (response.Content is null)
                {
                    continue;
                }

                foreach (var entry in response.Content)
                {
                    if (entry.Key.StartsWith("text/", StringComparison.Ordinal) && entry.Value is OpenApiMediaType concrete)
                    {
                        concrete.Schema = new OpenApiSchema { Type = JsonSchemaType.String };
                    }
                }
            }
        }
    }
}
