using System.Text.Json;
using System.Text.Json.Serialization;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.Datasets;
using Afnio.Domain.Common;
using Afnio.Domain.Datasets;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Datasets;

/// <summary>A dataset and its latest version.</summary>
public sealed record DatasetResponse(
    [property: JsonPropertyOrder(-2)] string Id, string Name, string? Description, int Version, int ItemCount, long CreatedAt, long UpdatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "dataset";
}

/// <summary>One version of a dataset: the items added up to it.</summary>
public sealed record DatasetVersionResponse(string DatasetId, int Version, int ItemCount, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "dataset.version";
}

/// <summary>An item: its fields, its place in the dataset and the version that added it.</summary>
public sealed record DatasetItemResponse([property: JsonPropertyOrder(-2)] string Id, int Position, int Version, JsonElement Data)
{
    [JsonPropertyOrder(-1)]
    public string Object => "dataset.item";
}

/// <summary>The body of <c>POST /v1/datasets</c> as JSON (a bare array of items, or JSON Lines, work too).</summary>
public sealed record CreateDatasetRequest(string? Name, string? Description, IReadOnlyList<JsonElement>? Items);

/// <summary>The body of <c>POST /v1/datasets/{id}/items</c> as JSON (a bare array of items, or JSON Lines, work too).</summary>
public sealed record AppendItemsRequest(IReadOnlyList<JsonElement>? Items);

/// <summary>
/// How to split a dataset version: <c>ratios</c> or <c>sizes</c> after a shuffle with Python's
/// <c>random.Random(seed)</c> (so afnio's and DSPy's splits are reproduced exactly), or by the value of
/// a string <c>field</c> of each item.
/// </summary>
public sealed record SplitRequest
{
    /// <summary>The version to split; the latest by default.</summary>
    public int? Version { get; init; }

    /// <summary><c>ratios</c>, <c>sizes</c> or <c>field</c>.</summary>
    public string? Method { get; init; }

    /// <summary>For <c>ratios</c>: one ratio per split, summing to 1 (e.g. <c>[0.33, 0.33, 0.34]</c>).</summary>
    public IReadOnlyList<double>? Ratios { get; init; }

    /// <summary>For <c>sizes</c>: one item count per split, summing to the version's item count.</summary>
    public IReadOnlyList<int>? Sizes { get; init; }

    /// <summary>The shuffle's seed for <c>ratios</c> and <c>sizes</c> (default 0).</summary>
    public int? Seed { get; init; }

    /// <summary>For <c>field</c>: the top-level field holding each item's split name.</summary>
    public string? Field { get; init; }

    /// <summary>Split names. For <c>field</c>, the values to collect; otherwise labels (default train, validation, test).</summary>
    public IReadOnlyList<string>? Names { get; init; }
}

/// <summary>One split: its name and its items, in split order.</summary>
public sealed record DatasetSplitResponse(string Name, int Count, IReadOnlyList<string> ItemIds);

/// <summary>A dataset version split.</summary>
public sealed record SplitResponse(string DatasetId, int Version, IReadOnlyList<DatasetSplitResponse> Splits)
{
    [JsonPropertyOrder(-1)]
    public string Object => "dataset.split";
}

/// <summary>Marks endpoints whose bodies may reach <see cref="AfnioOptions.MaxUploadBytes"/>.</summary>
public sealed record LargeBody;

/// <summary>
/// Datasets: uploads of JSON objects (JSON or JSON Lines) that only grow, each upload a new
/// immutable version, with items read back in order and by version.
/// </summary>
public static class DatasetsApi
{
    private static readonly string[] UploadTypes = ["application/json", "application/x-ndjson"];

    public static RouteGroupBuilder MapDatasets(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/datasets").WithTags("Datasets");
        group.MapPost("/", CreateDataset).WithName("createDataset").WithMetadata(new LargeBody())
            .Accepts<CreateDatasetRequest>(UploadTypes[0], UploadTypes[1..])
            .WithDescription("Creates a dataset from a JSON object {name, description, items}, a JSON array of items (name in ?name=), " +
                "or JSON Lines (application/x-ndjson, one object per line). Version 1 holds these items.");
        group.MapGet("/", ListDatasets).WithName("listDatasets");
        group.MapGet("/{id}", GetDataset).WithName("retrieveDataset");
        group.MapDelete("/{id}", DeleteDataset).WithName("deleteDataset");
        group.MapPost("/{id}/items", AppendItems).WithName("appendDatasetItems").WithMetadata(new LargeBody())
            .Accepts<AppendItemsRequest>(UploadTypes[0], UploadTypes[1..])
            .WithDescription("Appends items (same formats as creation); the dataset gets a new version holding every item so far.");
        group.MapGet("/{id}/items", ListItems).WithName("listDatasetItems")
            .WithDescription("Items in dataset order, of the latest version or of ?version=. after is an item id.");
        group.MapGet("/{id}/versions", ListVersions).WithName("listDatasetVersions");
        group.MapPost("/{id}/split", Split).WithName("splitDataset")
            .WithDescription("Splits a version by ratios or sizes after a seeded shuffle (Python's random.Random(seed).shuffle), or by a field. " +
                "Changes nothing; the same request always gives the same split.");
        return v1;
    }

    public static async Task<Created<DatasetResponse>> CreateDataset(
        HttpRequest request, [FromQuery(Name = "name")] string? name, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var upload = await DatasetUpload.ReadAsync(request, allowMeta: true, ct);
        var datasetName = upload.Name ?? name
            ?? throw ApiException.BadRequest("missing_field", "'name' is required (in the JSON object, or ?name= for an array or JSON Lines).", "name");
        if (datasetName.Length is 0 or > 200 || datasetName.Contains('\0', StringComparison.Ordinal))
        {
            throw ApiException.BadRequest("invalid_name", "'name' must be 1 to 200 characters.", "name");
        }

        var now = clock.GetUtcNow();
        var dataset = new Dataset
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = project.ProjectId,
            Name = datasetName,
            Description = upload.Description,
            Version = 1,
            ItemCount = upload.Items.Count,
            CreatedAt = now,
            UpdatedAt = now,
        };
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        db.Datasets.Add(dataset);
        db.DatasetVersions.Add(new DatasetVersion { DatasetId = dataset.Id, Version = 1, ItemCount = dataset.ItemCount, CreatedAt = now });
        await db.SaveChangesAsync(ct);
        await InsertItemsAsync(db, dataset.Id, 0, 1, upload.Items, ct);
        await tx.CommitAsync(ct);
        var response = ToResponse(dataset);
        return TypedResults.Created($"/v1/datasets/{response.Id}", response);
    }

    public static async Task<Ok<ListResponse<DatasetResponse>>> ListDatasets(
        [AsParameters] PageQuery page, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var (rows, limit) = await db.Datasets.AsNoTracking().Where(d => d.ProjectId == project.ProjectId)
            .FetchPageAsync(PrefixedId.Dataset, page, ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(ToResponse)], limit, d => d.Id));
    }

    public static async Task<Ok<DatasetResponse>> GetDataset(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct) =>
        TypedResults.Ok(ToResponse(await FindAsync(db, project, id, ct)));

    public static async Task<NoContent> DeleteDataset(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var dataset = await FindAsync(db, project, id, ct);
        await db.Datasets.Where(d => d.Id == dataset.Id).ExecuteDeleteAsync(ct);
        return TypedResults.NoContent();
    }

    public static async Task<Ok<DatasetResponse>> AppendItems(
        string id, HttpRequest request, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var found = await FindAsync(db, project, id, ct);
        var upload = await DatasetUpload.ReadAsync(request, allowMeta: false, ct);
        if (upload.Items.Count == 0)
        {
            throw ApiException.BadRequest("empty_upload", "There are no items to append.", "items");
        }

        var now = clock.GetUtcNow();
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        // Appends to one dataset take turns: positions and version numbers follow one another.
        var dataset = (await db.Datasets.FromSql($"SELECT * FROM datasets WHERE id = {found.Id} FOR UPDATE").ToListAsync(ct)).Single();
        var start = dataset.ItemCount;
        dataset.Version++;
        dataset.ItemCount += upload.Items.Count;
        dataset.UpdatedAt = now;
        db.DatasetVersions.Add(new DatasetVersion { DatasetId = dataset.Id, Version = dataset.Version, ItemCount = dataset.ItemCount, CreatedAt = now });
        await db.SaveChangesAsync(ct);
        await InsertItemsAsync(db, dataset.Id, start, dataset.Version, upload.Items, ct);
        await tx.CommitAsync(ct);
        return TypedResults.Ok(ToResponse(dataset));
    }

    public static async Task<Ok<ListResponse<DatasetItemResponse>>> ListItems(
        string id, [FromQuery(Name = "version")] int? version, [FromQuery(Name = "after")] string? after,
        [FromQuery(Name = "limit")] int? limit, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var dataset = await FindAsync(db, project, id, ct);
        var count = await ItemCountAsync(db, dataset, version, ct);
        var size = limit switch
        {
            null => Paging.DefaultLimit,
            < 1 or > 1000 => throw ApiException.BadRequest("invalid_limit", $"limit must be between 1 and 1000; got {limit}.", "limit"),
            { } n => n,
        };
        var from = 0;
        if (after is not null)
        {
            if (!PrefixedId.TryParse(PrefixedId.DatasetItem, after, out var cursor))
            {
                throw ApiException.BadRequest("invalid_cursor", "after must be an item id (item_…) from an earlier page.", "after");
            }

            from = await db.DatasetItems.Where(i => i.Id == cursor && i.DatasetId == dataset.Id).Select(i => (int?)i.Position + 1).SingleOrDefaultAsync(ct)
                ?? throw ApiException.BadRequest("invalid_cursor", "after is not an item of this dataset.", "after");
        }

        var rows = await db.DatasetItems.AsNoTracking()
            .Where(i => i.DatasetId == dataset.Id && i.Position >= from && i.Position < count)
            .OrderBy(i => i.Position).Take(size + 1).ToListAsync(ct);
        return TypedResults.Ok(Paging.ToList([.. rows.Select(ToItemResponse)], size, i => i.Id));
    }

    public static async Task<Ok<ListResponse<DatasetVersionResponse>>> ListVersions(string id, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var dataset = await FindAsync(db, project, id, ct);
        var versions = await db.DatasetVersions.AsNoTracking().Where(v => v.DatasetId == dataset.Id).OrderBy(v => v.Version).ToListAsync(ct);
        return TypedResults.Ok(new ListResponse<DatasetVersionResponse>(
            [.. versions.Select(v => new DatasetVersionResponse(id, v.Version, v.ItemCount, UnixTime.Of(v.CreatedAt)))], null, null, false));
    }

    public static async Task<Ok<SplitResponse>> Split(string id, SplitRequest request, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var dataset = await FindAsync(db, project, id, ct);
        var (version, splits) = await ComputeSplitAsync(db, dataset, request, string.Empty, ct);
        return TypedResults.Ok(new SplitResponse(id, version, [.. splits.Select(split => new DatasetSplitResponse(
            split.Name, split.Items.Count, [.. split.Items.Select(item => PrefixedId.Format(PrefixedId.DatasetItem, item))]))]));
    }

    /// <summary>The split a request describes: the version split, and per split its name and item ids in split order.</summary>
    /// <param name="db">The context.</param>
    /// <param name="dataset">The dataset.</param>
    /// <param name="request">How to split.</param>
    /// <param name="path">Prefix for error params (e.g. <c>dataset.split.</c>).</param>
    /// <param name="ct">Cancels the queries.</param>
    public static async Task<(int Version, IReadOnlyList<(string Name, IReadOnlyList<Guid> Items)> Splits)> ComputeSplitAsync(
        AfnioDbContext db, Dataset dataset, SplitRequest request, string path, CancellationToken ct)
    {
        var count = await ItemCountAsync(db, dataset, request.Version, ct);
        var items = await db.DatasetItems.AsNoTracking().Where(i => i.DatasetId == dataset.Id && i.Position < count)
            .OrderBy(i => i.Position).Select(i => new { i.Id, Value = request.Field == null ? null : i.Data }).ToListAsync(ct);
        var seed = request.Seed ?? 0;
        var (names, indices) = request.Method switch
        {
            "ratios" => (request.Names, DatasetSplits.ByRatios(count,
                request.Ratios ?? throw ApiException.BadRequest("missing_field", "'ratios' is required for method 'ratios'.", path + "ratios"), seed)),
            "sizes" => (request.Names, DatasetSplits.BySizes(count,
                request.Sizes ?? throw ApiException.BadRequest("missing_field", "'sizes' is required for method 'sizes'.", path + "sizes"), seed)),
            "field" => (request.Names ?? throw ApiException.BadRequest("missing_field", "'names' (the split values to collect) is required for method 'field'.", path + "names"),
                DatasetSplits.ByField([.. items.Select(i => FieldText(i.Value, request.Field ?? throw ApiException.BadRequest("missing_field", "'field' is required for method 'field'.", path + "field")))],
                    request.Names)),
            null => throw ApiException.BadRequest("missing_field", "'method' is required: ratios, sizes or field.", path + "method"),
            var other => throw ApiException.BadRequest("invalid_method", $"Unknown split method '{other}'; use ratios, sizes or field.", path + "method"),
        };
        if (names is not null && names.Count != indices.Count)
        {
            throw ApiException.BadRequest("invalid_names", $"'names' has {names.Count} names for {indices.Count} splits.", path + "names");
        }

        string[] defaults = indices.Count == 3 ? ["train", "validation", "test"] : [.. Enumerable.Range(0, indices.Count).Select(i => $"split_{i}")];
        return (request.Version ?? dataset.Version, [.. indices.Select((split, i) =>
            ((names ?? defaults)[i], (IReadOnlyList<Guid>)[.. split.Select(index => items[index].Id)]))]);
    }

    private static string? FieldText(string? json, string field)
    {
        using var document = JsonDocument.Parse(json!);
        return document.RootElement.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
    }

    /// <summary>How many items <paramref name="version"/> (default: the latest) holds.</summary>
    public static async Task<int> ItemCountAsync(AfnioDbContext db, Dataset dataset, int? version, CancellationToken ct) =>
        version is null
            ? dataset.ItemCount
            : await db.DatasetVersions.Where(v => v.DatasetId == dataset.Id && v.Version == version).Select(v => (int?)v.ItemCount).SingleOrDefaultAsync(ct)
                ?? throw ApiException.BadRequest("unknown_version", $"The dataset has versions 1 to {dataset.Version}; got {version}.", "version");

    public static async Task<Dataset> FindAsync(AfnioDbContext db, ProjectContext project, string id, CancellationToken ct, string param = "id") =>
        PrefixedId.TryParse(PrefixedId.Dataset, id, out var guid)
            ? await db.Datasets.AsNoTracking().SingleOrDefaultAsync(d => d.Id == guid && d.ProjectId == project.ProjectId, ct)
                ?? throw ApiException.NotFound("dataset", param)
            : throw ApiException.NotFound("dataset", param);

    private static Task InsertItemsAsync(AfnioDbContext db, Guid datasetId, int start, int version, IReadOnlyList<string> items, CancellationToken ct) =>
        items.Count == 0
            ? Task.CompletedTask
            : db.Database.ExecuteSqlAsync($"""
                INSERT INTO dataset_items (id, dataset_id, position, version, data)
                SELECT t.id, {datasetId}, {start} + t.n - 1, {version}, t.data::jsonb
                FROM unnest({items.Select(_ => PrefixedId.NewGuid()).ToArray()}::uuid[], {items.ToArray()}::text[]) WITH ORDINALITY AS t(id, data, n)
                """, ct);

    private static DatasetResponse ToResponse(Dataset d) => new(
        PrefixedId.Format(PrefixedId.Dataset, d.Id), d.Name, d.Description, d.Version, d.ItemCount, UnixTime.Of(d.CreatedAt), UnixTime.Of(d.UpdatedAt));

    private static DatasetItemResponse ToItemResponse(DatasetItem i) =>
        new(PrefixedId.Format(PrefixedId.DatasetItem, i.Id), i.Position, i.Version, JsonDocument.Parse(i.Data).RootElement.Clone());
}
