using System.IO.Compression;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace Afnio.Api.Tests.Limits;

/// <summary>
/// Imports inflate the manifest first, then only the files it lists, and stop at the caps of
/// Afnio:Imports (small here): per file, in total, and the compression ratio. A refused import stores nothing.
/// </summary>
public sealed class ArchiveLimitTests(ArchiveLimitTests.SmallImportsApp app) : IClassFixture<ArchiveLimitTests.SmallImportsApp>
{
    public const long EntryCap = 4L << 20;
    public const long TotalCap = 6L << 20;
    public const long ManifestCap = 4096;

    public sealed class SmallImportsApp : AfnioApiFactory
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio:Imports:MaxManifestBytes"] = ManifestCap.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio:Imports:MaxEntryBytes"] = EntryCap.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio:Imports:MaxTotalBytes"] = TotalCap.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio:Imports:MaxCompressionRatio"] = "100",
            ["Afnio:Imports:MaxConcurrent"] = "1",
        };
    }

    [Fact]
    public async Task AProgramVersion_RoundTrips_UnderTheCaps()
    {
        var (source, program, good) = await ExportAsync();
        var target = await app.CreateProjectAsync();

        var created = await (await ImportAsync(target, good)).ReadJsonAsync();

        var copy = await target.Client.GetJsonAsync($"/v1/programs/{created.GetProperty("program_id").GetString()}");
        var original = await source.Client.GetJsonAsync($"/v1/programs/{program}");
        Assert.Equal(original.GetProperty("definition").GetRawText(), copy.GetProperty("definition").GetRawText());
        Assert.Equal(original.GetProperty("parameters").GetRawText(), copy.GetProperty("parameters").GetRawText());
    }

    [Fact]
    public async Task AZipBomb_ListedInTheManifest_IsRefusedByTheRatioCap_AndStoresNothing()
    {
        var bomb = new byte[3 << 20]; // 3 MiB of zeros: under the size caps, about a thousand to one
        var archive = Archive(Manifest(("data.json", bomb)), ("data.json", bomb));
        Assert.True(archive.Length < 64 * 1024);
        var target = await app.CreateProjectAsync();

        var problem = await (await ImportAsync(target, archive)).AssertProblemAsync(400, "archive_compression_ratio");

        Assert.Contains("100:1", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await AssertNothingImportedAsync(target);
    }

    [Fact]
    public async Task AListedFileOverTheEntryCap_Is413_WithTheLimit()
    {
        var big = Incompressible(EntryCap + 1024);
        var target = await app.CreateProjectAsync();

        var problem = await (await ImportAsync(target, Archive(Manifest(("data.json", big)), ("data.json", big)))).AssertProblemAsync(413, "archive_too_large");

        Assert.Contains(EntryCap.ToString(System.Globalization.CultureInfo.InvariantCulture), problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await AssertNothingImportedAsync(target);
    }

    [Fact]
    public async Task ListedFilesOverTheTotalCapTogether_Are413_WithTheLimit()
    {
        var part = Incompressible(EntryCap - 1024); // each under the entry cap, together over the total cap
        var archive = Archive(Manifest(("data.json", part), ("extra.json", part)), ("data.json", part), ("extra.json", part));
        var target = await app.CreateProjectAsync();

        var problem = await (await ImportAsync(target, archive)).AssertProblemAsync(413, "archive_too_large");

        Assert.Contains(TotalCap.ToString(System.Globalization.CultureInfo.InvariantCulture), problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await AssertNothingImportedAsync(target);
    }

    [Fact]
    public async Task AManifestOverItsOwnCap_Is413_BeforeAnythingElseIsRead()
    {
        var (_, _, good) = await ExportAsync();
        var padded = Rewrite(good, (name, content) => name == "manifest.json"
            ? [.. content, .. Encoding.UTF8.GetBytes(new string(' ', (int)ManifestCap))]
            : content);
        var target = await app.CreateProjectAsync();

        var problem = await (await ImportAsync(target, padded)).AssertProblemAsync(413, "archive_too_large");

        Assert.Contains(ManifestCap.ToString(System.Globalization.CultureInfo.InvariantCulture), problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await AssertNothingImportedAsync(target);
    }

    [Fact]
    public async Task ABigUnlistedEntry_BeforeTheManifest_IsNeverInflated_AndTheImportWorks()
    {
        var (_, _, good) = await ExportAsync();
        // 64 MiB of zeros, sixteen times the entry cap and a thousand times over the ratio cap: inflating
        // it at all would refuse the import. The manifest comes last in the zip.
        var junk = new byte[64 << 20];
        using var input = new ZipArchive(new MemoryStream(good));
        var archive = Archive(null, ("junk.bin", junk), ("data.json", ReadEntry(input, "data.json")), ("manifest.json", ReadEntry(input, "manifest.json")));
        var target = await app.CreateProjectAsync();

        using var response = await ImportAsync(target, archive);

        var created = await HttpJson.EnsureSuccessAsync(response);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("program_version", created.GetProperty("kind").GetString());
        Assert.Single((await target.Client.GetJsonAsync("/v1/programs")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task AnArchiveWithoutAManifest_IsRefused()
    {
        var data = Encoding.UTF8.GetBytes("{}");
        var target = await app.CreateProjectAsync();

        var problem = await (await ImportAsync(target, Archive(null, ("data.json", data)))).AssertProblemAsync(400, "invalid_archive");

        Assert.Contains("manifest.json", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await AssertNothingImportedAsync(target);
    }

    [Fact]
    public async Task AnArchiveOfManyEmptyFiles_IsRefusedBeforeItsDirectoryIsParsed()
    {
        var (_, _, good) = await ExportAsync();
        using var input = new ZipArchive(new MemoryStream(good));
        var files = new List<(string, byte[])> { ("data.json", ReadEntry(input, "data.json")), ("manifest.json", ReadEntry(input, "manifest.json")) };
        files.AddRange(Enumerable.Range(0, 40).Select(i => ($"empty-{i}", Array.Empty<byte>())));
        var target = await app.CreateProjectAsync();

        await (await ImportAsync(target, Archive(null, [.. files]))).AssertProblemAsync(400, "invalid_archive");

        await AssertNothingImportedAsync(target);
    }

    [Fact]
    public async Task ImportsInParallel_TakeTurns_AndARefusedOneGivesItsTurnBack()
    {
        var (_, _, good) = await ExportAsync();
        var bomb = new byte[3 << 20];
        var bad = Archive(Manifest(("data.json", bomb)), ("data.json", bomb));
        var target = await app.CreateProjectAsync();

        var responses = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => ImportAsync(target, i % 2 == 0 ? bad : good)));

        for (var i = 0; i < responses.Length; i++)
        {
            if (i % 2 == 0)
            {
                await responses[i].AssertProblemAsync(400, "archive_compression_ratio");
            }
            else
            {
                Assert.Equal(HttpStatusCode.Created, responses[i].StatusCode);
            }
        }

        Assert.Equal(3, (await target.Client.GetJsonAsync("/v1/programs")).GetProperty("data").GetArrayLength());
    }

    private async Task<(TestProject Source, string Program, byte[] Archive)> ExportAsync()
    {
        var source = await app.CreateProjectAsync();
        var program = (await source.Client.PostJsonAsync("/v1/programs", new { name = "facility", definition = FacilityTraining.Program })).GetProperty("id").GetString()!;
        using var export = await source.Client.GetAsync($"/v1/programs/{program}/export");
        Assert.Equal(HttpStatusCode.OK, export.StatusCode);
        return (source, program, await export.Content.ReadAsByteArrayAsync());
    }

    private static async Task AssertNothingImportedAsync(TestProject target) =>
        Assert.Empty((await target.Client.GetJsonAsync("/v1/programs")).GetProperty("data").EnumerateArray());

    private static Task<HttpResponseMessage> ImportAsync(TestProject project, byte[] archive)
    {
        var content = new ByteArrayContent(archive);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        return project.Client.PostAsync("/v1/imports", content);
    }

    /// <summary>A manifest that lists the files with their true checksums, as someone crafting an archive would write it.</summary>
    private static byte[] Manifest(params (string Name, byte[] Content)[] files) => JsonSerializer.SerializeToUtf8Bytes(new
    {
        format = "afnio.archive",
        format_version = 1,
        kind = "program_version",
        created_at = 0,
        files = files.ToDictionary(f => f.Name, f => Convert.ToHexStringLower(SHA256.HashData(f.Content))),
    });

    /// <summary>A zip of the files in order, after the manifest when one is given.</summary>
    private static byte[] Archive(byte[]? manifest, params (string Name, byte[] Content)[] files)
    {
        using var output = new MemoryStream();
        using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in manifest is null ? files : files.Prepend(("manifest.json", manifest)))
            {
                using var entry = zip.CreateEntry(name, CompressionLevel.Optimal).Open();
                entry.Write(content);
            }
        }

        return output.ToArray();
    }

    private static byte[] Rewrite(byte[] archive, Func<string, byte[], byte[]> change)
    {
        using var input = new ZipArchive(new MemoryStream(archive));
        return Archive(null, [.. input.Entries.Select(e => (e.FullName, change(e.FullName, ReadEntry(input, e.FullName))))]);
    }

    private static byte[] ReadEntry(ZipArchive zip, string name)
    {
        using var content = new MemoryStream();
        using (var stream = zip.GetEntry(name)!.Open())
        {
            stream.CopyTo(content);
        }

        return content.ToArray();
    }

    /// <summary>Random hex text: it compresses about two to one, far under the ratio cap.</summary>
    private static byte[] Incompressible(long bytes) =>
        Encoding.ASCII.GetBytes(Convert.ToHexString(RandomNumberGenerator.GetBytes((int)(bytes / 2) + 1)))[..(int)bytes];
}
