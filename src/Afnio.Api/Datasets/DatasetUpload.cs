using System.Text;
using System.Text.Json;
using Afnio.Api.Infrastructure;
using Afnio.Domain.Common;

namespace Afnio.Api.Datasets;

/// <summary>What an upload carries: optional name and description (JSON object bodies), and the items as JSON text.</summary>
public sealed record DatasetUploadContent(string? Name, string? Description, IReadOnlyList<string> Items);

/// <summary>
/// Reads dataset uploads: a JSON object <c>{name, description, items: [...]}</c>, a bare JSON array of
/// items, or JSON Lines (<c>application/x-ndjson</c>, <c>application/jsonl</c>): one object per line,
/// blank lines skipped. Every item must be a JSON object PostgreSQL can store.
/// </summary>
public static class DatasetUpload
{
    public const int MaxItems = 100_000;

    private static readonly string[] JsonLinesTypes = ["application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonlines"];

    /// <summary>Reads the body of <paramref name="request"/>; <paramref name="allowMeta"/> permits name and description.</summary>
    public static async Task<DatasetUploadContent> ReadAsync(HttpRequest request, bool allowMeta, CancellationToken ct)
    {
        var mediaType = request.ContentType?.Split(';')[0].Trim().ToLowerInvariant();
        if (mediaType is null)
        {
            throw ApiException.BadRequest("invalid_request", "The request has no body; send JSON (application/json) or JSON Lines (application/x-ndjson).");
        }

        if (JsonLinesTypes.Contains(mediaType))
        {
            return new DatasetUploadContent(null, null, await ReadLinesAsync(request.Body, ct));
        }

        if (mediaType != "application/json")
        {
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                "Send the items as application/json (an object with 'items', or an array) or as JSON Lines (application/x-ndjson).");
        }

        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 64 }, ct);
        }
        catch (JsonException e)
        {
            throw ApiException.BadRequest("invalid_json", $"The request body is not valid JSON: {e.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Array)
            {
                return new DatasetUploadContent(null, null, Items(root, "items"));
            }

            if (root.ValueKind != JsonValueKind.Object)
            {
                throw ApiException.BadRequest("invalid_type", "The body must be an object with 'items', or an array of items.");
            }

            string? name = null, description = null;
            IReadOnlyList<string>? items = null;
            foreach (var property in root.EnumerateObject())
            {
                switch (property.Name)
                {
                    case "name" when allowMeta:
                        name = Text(property.Value, "name", 200);
                        break;
                    case "description" when allowMeta:
                        description = property.Value.ValueKind == JsonValueKind.Null ? null : Text(property.Value, "description", 2000);
                        break;
                    case "items":
                        items = property.Value.ValueKind == JsonValueKind.Array
                            ? Items(property.Value, "items")
                            : throw ApiException.BadRequest("invalid_type", "'items' must be an array of JSON objects.", "items");
                        break;
                    default:
                        throw ApiException.BadRequest("unknown_field",
                            $"Unknown field '{property.Name}'. The body takes: {(allowMeta ? "name, description, " : string.Empty)}items.", property.Name);
                }
            }

            return new DatasetUploadContent(name, description, items ?? []);
        }
    }

    private static List<string> Items(JsonElement array, string param)
    {
        if (array.GetArrayLength() > MaxItems)
        {
            throw ApiException.BadRequest("too_many_items", $"One upload holds at most {MaxItems} items; append the rest in further uploads.", param);
        }

        var items = new List<string>(array.GetArrayLength());
        foreach (var item in array.EnumerateArray())
        {
            items.Add(Item(item, $"{param}[{items.Count}]"));
        }

        return items;
    }

    private static async Task<List<string>> ReadLinesAsync(Stream body, CancellationToken ct)
    {
        using var reader = new StreamReader(body, new UTF8Encoding(false, true));
        var items = new List<string>();
        var number = 0;
        try
        {
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                number++;
                if (string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }

                if (items.Count == MaxItems)
                {
                    throw ApiException.BadRequest("too_many_items", $"One upload holds at most {MaxItems} items; append the rest in further uploads.");
                }

                JsonDocument document;
                try
                {
                    document = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 64 });
                }
                catch (JsonException e)
                {
                    throw ApiException.BadRequest("invalid_json", $"Line {number} is not valid JSON: {e.Message}", $"line {number}");
                }

                using (document)
                {
                    items.Add(Item(document.RootElement, $"line {number}"));
                }
            }
        }
        catch (DecoderFallbackException)
        {
            throw ApiException.BadRequest("invalid_json", $"Line {number + 1} is not valid UTF-8.", $"line {number + 1}");
        }

        return items;
    }

    private static string Item(JsonElement item, string param)
    {
        if (item.ValueKind != JsonValueKind.Object)
        {
            throw ApiException.BadRequest("invalid_item", $"{param} must be a JSON object (an item's fields by name).", param);
        }

        StorableJson.Check(item, "invalid_item", param);
        return item.GetRawText();
    }

    private static string Text(JsonElement value, string param, int max)
    {
        if (value.ValueKind != JsonValueKind.String)
        {
            throw ApiException.BadRequest("invalid_type", $"'{param}' must be a string.", param);
        }

        StorableJson.Check(value, "invalid_" + param, param);
        var text = value.GetString()!;
        return text.Length is > 0 and var n && n <= max
            ? text
            : throw ApiException.BadRequest("invalid_" + param, $"'{param}' must be 1 to {max} characters.", param);
    }
}
