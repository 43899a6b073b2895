using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Afnio.Api.Tests;

/// <summary>Datasets over REST: JSON and JSON Lines uploads, versions that only grow, items in order.</summary>
public sealed class DatasetsApiTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task TheFacilityDataset_UploadsAsJson_AndReadsBackInOrder()
    {
        var project = await app.CreateProjectAsync();
        var items = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, "data", "facility-support", "dataset.json"))).RootElement;

        var dataset = await project.Client.PostJsonAsync("/v1/datasets", new { name = "facility support", description = "MIT, llama-prompt-ops", items });

        Assert.Equal("dataset", dataset.GetProperty("object").GetString());
        Assert.Equal(1, dataset.GetProperty("version").GetInt32());
        Assert.Equal(200, dataset.GetProperty("item_count").GetInt32());
        var id = dataset.GetProperty("id").GetString()!;
        var read = new List<JsonElement>();
        string? after = null;
        do
        {
            var page = await project.Client.GetJsonAsync($"/v1/datasets/{id}/items?limit=70" + (after is null ? string.Empty : $"&after={after}"));
            read.AddRange(page.GetProperty("data").EnumerateArray());
            after = page.GetProperty("has_more").GetBoolean() ? page.GetProperty("last_id").GetString() : null;
        }
        while (after is not null);

        Assert.Equal(200, read.Count);
        Assert.Equal(Enumerable.Range(0, 200), read.Select(i => i.GetProperty("position").GetInt32()));
        Assert.Equal(items[137].GetProperty("answer").GetString(), read[137].GetProperty("data").GetProperty("answer").GetString());
        Assert.Equal(items[0].GetProperty("fields").GetProperty("input").GetString(), read[0].GetProperty("data").GetProperty("fields").GetProperty("input").GetString());
    }

    [Fact]
    public async Task TheFacilitySplit_IsReproduced_BySizesOrRatiosWithSeedZero()
    {
        var project = await app.CreateProjectAsync();
        var items = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, "data", "facility-support", "dataset.json"))).RootElement;
        var id = (await project.Client.PostJsonAsync("/v1/datasets", new { name = "facility", items })).GetProperty("id").GetString()!;
        var sentiments = (await project.Client.GetJsonAsync($"/v1/datasets/{id}/items?limit=1000")).GetProperty("data").EnumerateArray()
            .ToDictionary(i => i.GetProperty("id").GetString()!,
                i => JsonDocument.Parse(i.GetProperty("data").GetProperty("answer").GetString()!).RootElement.GetProperty("sentiment").GetString()!);

        var bySizes = await project.Client.PostJsonAsync($"/v1/datasets/{id}/split", new { method = "sizes", sizes = new[] { 66, 66, 68 }, seed = 0 });
        var byRatios = await project.Client.PostJsonAsync($"/v1/datasets/{id}/split", new { method = "ratios", ratios = new[] { 0.33, 0.33, 0.34 } });

        Assert.Equal(bySizes.GetProperty("splits").GetRawText(), byRatios.GetProperty("splits").GetRawText());
        var splits = bySizes.GetProperty("splits").EnumerateArray().ToList();
        Assert.Equal(["train", "validation", "test"], splits.Select(s => s.GetProperty("name").GetString()));
        // The dataset's README: train 36 neutral / 20 positive / 10 negative; validation 39/17/10; test 38/24/6.
        Assert.Equal([(36, 20, 10), (39, 17, 10), (38, 24, 6)], splits.Select(s =>
        {
            var labels = s.GetProperty("item_ids").EnumerateArray().Select(i => sentiments[i.GetString()!]).ToList();
            return (labels.Count(l => l == "neutral"), labels.Count(l => l == "positive"), labels.Count(l => l == "negative"));
        }));
    }

    [Fact]
    public async Task Splits_ByField_AndTheirErrors()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/datasets", new
        {
            name = "fielded",
            items = new object[] { new { split = "train", x = 1 }, new { split = "test", x = 2 }, new { split = "train", x = 3 }, new { x = 4 } },
        })).GetProperty("id").GetString()!;

        var split = await project.Client.PostJsonAsync($"/v1/datasets/{id}/split", new { method = "field", field = "split", names = new[] { "train", "test" } });

        Assert.Equal([2, 1], split.GetProperty("splits").EnumerateArray().Select(s => s.GetProperty("count").GetInt32()));
        foreach (var (body, code) in new (object, string)[]
        {
            (new { }, "missing_field"),
            (new { method = "random" }, "invalid_method"),
            (new { method = "ratios", ratios = new[] { 0.5, 0.6 } }, "invalid_split"),
            (new { method = "sizes", sizes = new[] { 1, 1 } }, "invalid_split"),
            (new { method = "sizes", sizes = new[] { 2, 2 }, names = new[] { "a" } }, "invalid_names"),
            (new { method = "field", names = new[] { "train" } }, "missing_field"),
            (new { method = "ratios", ratios = new[] { 0.5, 0.5 }, version = 3 }, "unknown_version"),
        })
        {
            using var response = await project.Client.PostAsJsonAsync($"/v1/datasets/{id}/split", body);
            await response.AssertProblemAsync(400, code);
        }
    }

    [Fact]
    public async Task Appends_MakeNewVersions_AndOldVersionsStayAsTheyWere()
    {
        var project = await app.CreateProjectAsync();
        var id = (await UploadLinesAsync(project, "/v1/datasets?name=tickets", "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n"))
            .GetProperty("id").GetString()!;

        var appended = await project.Client.PostJsonAsync($"/v1/datasets/{id}/items", new { items = new[] { new { text = "c" } } });
        var bare = await project.Client.PostJsonAsync($"/v1/datasets/{id}/items", new[] { new { text = "d" }, new { text = "e" } });

        Assert.Equal(2, appended.GetProperty("version").GetInt32());
        Assert.Equal(3, bare.GetProperty("version").GetInt32());
        Assert.Equal(5, bare.GetProperty("item_count").GetInt32());
        Assert.Equal(["a", "b"], await TextsAsync(project, id, "?version=1"));
        Assert.Equal(["a", "b", "c"], await TextsAsync(project, id, "?version=2"));
        Assert.Equal(["a", "b", "c", "d", "e"], await TextsAsync(project, id, string.Empty));
        var versions = (await project.Client.GetJsonAsync($"/v1/datasets/{id}/versions")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([2, 3, 5], versions.Select(v => v.GetProperty("item_count").GetInt32()));
        var items = (await project.Client.GetJsonAsync($"/v1/datasets/{id}/items")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([1, 1, 2, 3, 3], items.Select(i => i.GetProperty("version").GetInt32()));
    }

    [Fact]
    public async Task ConcurrentAppends_GetDistinctVersionsAndPositions()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/datasets", new { name = "busy", items = Array.Empty<object>() })).GetProperty("id").GetString()!;

        await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            project.Client.PostJsonAsync($"/v1/datasets/{id}/items", new { items = new[] { new { n = i }, new { n = i } } })));

        var dataset = await project.Client.GetJsonAsync($"/v1/datasets/{id}");
        Assert.Equal(9, dataset.GetProperty("version").GetInt32());
        Assert.Equal(16, dataset.GetProperty("item_count").GetInt32());
        var items = (await project.Client.GetJsonAsync($"/v1/datasets/{id}/items?limit=100")).GetProperty("data").EnumerateArray().ToList();
        // Each upload's two items sit next to each other, and came with the same version.
        Assert.All(items.Chunk(2), pair => Assert.Equal(pair[0].GetProperty("data").GetProperty("n").GetInt32(), pair[1].GetProperty("data").GetProperty("n").GetInt32()));
        Assert.Equal(Enumerable.Range(2, 8), items.Chunk(2).Select(p => p[0].GetProperty("version").GetInt32()));
    }

    [Fact]
    public async Task Uploads_MayExceedTheOrdinaryBodyLimit_UpToTheUploadLimit()
    {
        var project = await app.CreateProjectAsync();
        var line = JsonSerializer.Serialize(new { text = new string('x', 1000) });
        var body = string.Join('\n', Enumerable.Repeat(line, 2500)); // ~2.5 MB, over the 1 MB limit of other calls

        var dataset = await UploadLinesAsync(project, "/v1/datasets?name=large", body);

        Assert.Equal(2500, dataset.GetProperty("item_count").GetInt32());
        using var variable = await project.Client.PostAsJsonAsync("/v1/variables", new { data = new string('x', 2_000_000) });
        await variable.AssertProblemAsync(413, "payload_too_large");
    }

    [Theory]
    [InlineData("application/json", "{\"name\": \"x\", \"items\": [1]}", 400, "invalid_item", "items[0]")]
    [InlineData("application/json", "{\"name\": \"x\", \"items\": [{\"a\": \"\\u0000\"}]}", 400, "invalid_item", "items[0].a")]
    [InlineData("application/json", "{\"name\": \"x\", \"items\": {}}", 400, "invalid_type", "items")]
    [InlineData("application/json", "{\"name\": \"x\", \"rows\": []}", 400, "unknown_field", "rows")]
    [InlineData("application/json", "{\"name\": \"\", \"items\": []}", 400, "invalid_name", "name")]
    [InlineData("application/json", "{\"name\": 5, \"items\": []}", 400, "invalid_type", "name")]
    [InlineData("application/json", "{\"name\": \"x\", \"items\": [", 400, "invalid_json", null)]
    [InlineData("application/json", "\"text\"", 400, "invalid_type", null)]
    [InlineData("application/x-ndjson", "{\"a\": 1}\n{\"a\": ", 400, "invalid_json", "line 2")]
    [InlineData("application/x-ndjson", "{\"a\": 1}\n[1, 2]", 400, "invalid_item", "line 2")]
    [InlineData("text/csv", "a,b\n1,2", 415, "unsupported_media_type", null)]
    public async Task BadUploads_Get4xx_AndStoreNothing(string contentType, string body, int status, string code, string? param)
    {
        var project = await app.CreateProjectAsync();

        using var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/datasets?name=x", body, contentType);

        var problem = await response.AssertProblemAsync(status, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        Assert.Empty((await project.Client.GetJsonAsync("/v1/datasets")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task BadAppends_AndBadQueries_Get4xx_AndChangeNothing()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/datasets", new { name = "d", items = new[] { new { a = 1 } } })).GetProperty("id").GetString()!;

        using var unnamed = await project.Client.PostAsJsonAsync("/v1/datasets", new[] { new { a = 1 } });
        await unnamed.AssertProblemAsync(400, "missing_field");
        using var empty = await project.Client.PostAsJsonAsync($"/v1/datasets/{id}/items", new { items = Array.Empty<object>() });
        await empty.AssertProblemAsync(400, "empty_upload");
        using var named = await project.Client.PostAsJsonAsync($"/v1/datasets/{id}/items", new { name = "rename", items = new[] { new { a = 2 } } });
        await named.AssertProblemAsync(400, "unknown_field");
        using var version = await project.Client.GetAsync($"/v1/datasets/{id}/items?version=7");
        await version.AssertProblemAsync(400, "unknown_version");
        using var cursor = await project.Client.GetAsync($"/v1/datasets/{id}/items?after=var_0000000000007000800000000000000a");
        await cursor.AssertProblemAsync(400, "invalid_cursor");
        using var limit = await project.Client.GetAsync($"/v1/datasets/{id}/items?limit=0");
        await limit.AssertProblemAsync(400, "invalid_limit");

        var dataset = await project.Client.GetJsonAsync($"/v1/datasets/{id}");
        Assert.Equal(1, dataset.GetProperty("version").GetInt32());
        Assert.Equal(1, dataset.GetProperty("item_count").GetInt32());
        Assert.Single((await project.Client.GetJsonAsync("/v1/datasets")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task AnotherProjectsDataset_IsNotFound_OnEveryEndpoint()
    {
        var owner = await app.CreateProjectAsync();
        var other = await app.CreateProjectAsync();
        var id = (await owner.Client.PostJsonAsync("/v1/datasets", new { name = "private", items = new[] { new { secret = "s" } } })).GetProperty("id").GetString()!;

        foreach (var (method, path) in new[]
        {
            ("GET", $"/v1/datasets/{id}"), ("GET", $"/v1/datasets/{id}/items"), ("GET", $"/v1/datasets/{id}/versions"),
            ("DELETE", $"/v1/datasets/{id}"), ("GET", "/v1/datasets/ds_nope"), ("GET", "/v1/datasets/ds_0000000000007000800000000000000a"),
        })
        {
            using var response = await other.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
            await response.AssertProblemAsync(404, "dataset_not_found");
        }

        using var append = await other.Client.PostAsJsonAsync($"/v1/datasets/{id}/items", new { items = new[] { new { a = 1 } } });
        await append.AssertProblemAsync(404, "dataset_not_found");
        Assert.Equal(1, (await owner.Client.GetJsonAsync($"/v1/datasets/{id}")).GetProperty("item_count").GetInt32());
    }

    [Fact]
    public async Task Delete_RemovesTheDatasetAndItsItems()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/datasets", new { name = "gone", items = new[] { new { a = 1 } } })).GetProperty("id").GetString()!;

        using var deleted = await project.Client.DeleteAsync($"/v1/datasets/{id}");

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        using var read = await project.Client.GetAsync($"/v1/datasets/{id}/items");
        await read.AssertProblemAsync(404, "dataset_not_found");
    }

    private static async Task<JsonElement> UploadLinesAsync(TestProject project, string path, string lines)
    {
        using var content = new StringContent(lines, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-ndjson");
        using var response = await project.Client.PostAsync(path, content);
        return await HttpJson.EnsureSuccessAsync(response);
    }

    private static async Task<IReadOnlyList<string>> TextsAsync(TestProject project, string id, string query) =>
        [.. (await project.Client.GetJsonAsync($"/v1/datasets/{id}/items{query}")).GetProperty("data").EnumerateArray()
            .Select(i => i.GetProperty("data").GetProperty("text").GetString()!)];
}
