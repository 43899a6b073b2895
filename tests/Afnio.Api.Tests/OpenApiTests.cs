using System.Text.Json.Nodes;

namespace Afnio.Api.Tests;

public sealed class OpenApiTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    private static readonly string[] Methods = ["get", "post", "put", "patch", "delete"];

    private async Task<JsonNode> GetDocumentAsync()
    {
        using var client = app.CreateClient();
        return JsonNode.Parse(await client.GetStringAsync("/swagger/v1/swagger.json"))!;
    }

    [Fact]
    public async Task EveryOperation_HasAUniqueOperationId()
    {
        var document = await GetDocumentAsync();
        var operations = document["paths"]!.AsObject()
            .SelectMany(path => path.Value!.AsObject()
                .Where(op => Methods.Contains(op.Key))
                .Select(op => (Where: $"{op.Key.ToUpperInvariant()} {path.Key}", Id: op.Value!["operationId"]?.GetValue<string>())))
            .ToList();

        Assert.True(operations.Count >= 20, $"only {operations.Count} operations");
        Assert.Empty(operations.Where(o => string.IsNullOrEmpty(o.Id)).Select(o => o.Where));
        Assert.Empty(operations.GroupBy(o => o.Id).Where(g => g.Count() > 1).Select(g => g.Key));
    }

    [Fact]
    public async Task Enums_AreStrings_AndPostsDescribeIdempotencyKey()
    {
        var document = await GetDocumentAsync();
        var schemas = document["components"]!["schemas"]!;

        Assert.Equal(["int", "float", "str"], schemas["CastType"]!["enum"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal("string", schemas["JobStatus"]!["type"]!.GetValue<string>());
        var createVariable = document["paths"]!["/v1/variables"]!["post"]!;
        Assert.Contains(createVariable["parameters"]!.AsArray(), p => p!["name"]!.GetValue<string>() == "Idempotency-Key");
        Assert.Equal("bearer", document["components"]!["securitySchemes"]!["bearer"]!["scheme"]!.GetValue<string>());
        Assert.NotNull(createVariable["responses"]!["400"]);
    }

    [Fact]
    public async Task CommittedDocument_MatchesTheLiveOne()
    {
        // docs/openapi.json feeds the generated clients (scripts/generate-clients.sh). Run with
        // AFNIO_UPDATE_OPENAPI=1 to refresh it after changing the API, then regenerate the clients.
        var live = (await GetDocumentAsync()).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
        var path = Path.Combine(RepoPaths.Root, "docs", "openapi.json");
        if (Environment.GetEnvironmentVariable("AFNIO_UPDATE_OPENAPI") == "1")
        {
            await File.WriteAllTextAsync(path, live);
        }

        Assert.True(File.Exists(path), "docs/openapi.json is missing: run the tests once with AFNIO_UPDATE_OPENAPI=1.");
        Assert.True(live == await File.ReadAllTextAsync(path),
            "docs/openapi.json is stale: run the tests with AFNIO_UPDATE_OPENAPI=1 and scripts/generate-clients.sh.");
    }
}
