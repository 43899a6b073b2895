using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Afnio.Domain.Optimizers;

namespace Afnio.Api.Tests;

/// <summary>Export and import (afnio's save/load as portable JSON archives), into another project, then training on from there.</summary>
[Collection(WorkerHosts.Name)]
public sealed class ArchiveTests : IClassFixture<ModelWorkerApp>
{
    private readonly ModelWorkerApp _app;

    public ArchiveTests(ModelWorkerApp app)
    {
        _app = app;
        app.Fake.Reset();
        app.Fake.Default = FacilityTraining.Reply;
    }

    [Fact]
    public async Task ACheckpoint_ExportedAndImportedIntoAnotherProject_KeepsGradientsAndMomentum_AndTrainsOnThere()
    {
        var source = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(source, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var run = await source.Client.PostJsonAsync("/v1/runs", FacilityTraining.RunBody(program, dataset, model, epochs: 1));
        await source.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 120);
        var checkpoints = (await source.Client.GetJsonAsync($"/v1/runs/{run.GetProperty("id").GetString()}/checkpoints")).GetProperty("data");
        var last = checkpoints.EnumerateArray().Last(c => c.GetProperty("kind").GetString() == "batch").GetProperty("id").GetString()!;
        var original = (await source.Client.GetJsonAsync($"/v1/checkpoints/{last}")).GetProperty("state");

        var archive = await source.Client.GetAsync($"/v1/checkpoints/{last}/export");
        Assert.Equal(HttpStatusCode.OK, archive.StatusCode);
        Assert.Equal("application/zip", archive.Content.Headers.ContentType?.MediaType);
        var bytes = await archive.Content.ReadAsByteArrayAsync();
        using (var zip = new ZipArchive(new MemoryStream(bytes)))
        {
            var manifest = JsonDocument.Parse(zip.GetEntry("manifest.json")!.Open()).RootElement;
            Assert.Equal("afnio.archive", manifest.GetProperty("format").GetString());
            Assert.Equal(1, manifest.GetProperty("format_version").GetInt32());
            Assert.Equal("checkpoint", manifest.GetProperty("kind").GetString());
        }

        var target = await _app.CreateProjectAsync();
        var imported = await ImportAsync(target, bytes);
        Assert.Equal(HttpStatusCode.Created, imported.StatusCode);
        var created = await imported.Content.ReadFromJsonAsync<JsonElement>();
        var newCheckpoint = created.GetProperty("checkpoint_id").GetString()!;
        var newProgram = created.GetProperty("program_id").GetString()!;
        Assert.NotEqual(last, newCheckpoint);
        Assert.NotEqual(program, newProgram);
        var copy = await target.Client.GetJsonAsync($"/v1/checkpoints/{newCheckpoint}");
        Assert.Equal("imported", copy.GetProperty("kind").GetString());
        Assert.Equal(original.GetRawText(), copy.GetProperty("state").GetRawText()); // parameters, gradients and momentum intact
        Assert.Equal(original.GetProperty("parameters").GetProperty("sentiment_task").GetString(),
            (await target.Client.GetJsonAsync($"/v1/programs/{newProgram}")).GetProperty("parameters").GetProperty("sentiment_task").GetProperty("value").GetString());
        await (await source.Client.GetAsync($"/v1/checkpoints/{newCheckpoint}")).AssertProblemAsync(404, "checkpoint_not_found");

        // Train on in the second project from the imported checkpoint: its momentum reaches the optimizer's prompt.
        var (targetData, _, targetModel) = await FacilityTraining.SetUpAsync(target, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var body = FacilityTraining.RunBody(newProgram, targetData, targetModel, epochs: 1, batchSize: 66);
        body["from_checkpoint_id"] = newCheckpoint;
        body["promote"] = false;
        _app.Fake.Reset();
        _app.Fake.Default = FacilityTraining.Reply;
        var continued = await target.Client.PostJsonAsync("/v1/runs", body);
        var job = await target.WaitForJobAsync(continued.GetProperty("job_id").GetString()!, 120);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var tgd = Assert.Single(_app.Fake.Requests, r => FakeOpenAiServer.MessageText(r, "system") == TgdPrompts.SystemPrompt);
        var prompt = FakeOpenAiServer.MessageText(tgd, "user");
        var window = original.GetProperty("momentum").GetProperty("sentiment_task").EnumerateArray().ToList();
        Assert.NotEmpty(window);
        Assert.All(window, past => Assert.Contains($"<VALUE>{past.GetProperty("value").GetString()}</VALUE>", prompt, StringComparison.Ordinal));
        Assert.Contains($"<VARIABLE>{original.GetProperty("parameters").GetProperty("sentiment_task").GetString()}</VARIABLE>", prompt, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AProgramVersion_RoundTrips()
    {
        var source = await _app.CreateProjectAsync();
        var program = (await source.Client.PostJsonAsync("/v1/programs", new { name = "facility", definition = FacilityTraining.Program })).GetProperty("id").GetString()!;
        var bytes = await (await source.Client.GetAsync($"/v1/programs/{program}/export")).Content.ReadAsByteArrayAsync();
        var target = await _app.CreateProjectAsync();
        var created = await (await ImportAsync(target, bytes)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("program_version", created.GetProperty("kind").GetString());
        var copy = await target.Client.GetJsonAsync($"/v1/programs/{created.GetProperty("program_id").GetString()}");
        var original = await source.Client.GetJsonAsync($"/v1/programs/{program}");
        Assert.Equal(original.GetProperty("definition").GetRawText(), copy.GetProperty("definition").GetRawText());
        Assert.Equal(original.GetProperty("parameters").GetRawText(), copy.GetProperty("parameters").GetRawText());
        Assert.Equal("imported", (await target.Client.GetJsonAsync($"/v1/programs/{created.GetProperty("program_id").GetString()}/versions/1")).GetProperty("source").GetString());
        await (await source.Client.GetAsync($"/v1/programs/{program}/export?version=7")).AssertProblemAsync(404, "program_version_not_found");
    }

    [Fact]
    public async Task AnOptimizer_ExportedAndImported_KeepsGradientsAndMomentum_AndStepsThere()
    {
        _app.Fake.Default = r => FakeReply.Text($"{TgdPrompts.OpenTag}rewritten {_app.Fake.Requests.Count}{TgdPrompts.CloseTag}");
        var source = await _app.CreateProjectAsync();
        var model = await _app.RegisterModelAsync(source);
        var parameter = (await source.Client.PostJsonAsync("/v1/variables", new { data = "Be brief.", role = "system prompt", is_parameter = true })).GetProperty("id").GetString()!;
        foreach (var text in new[] { "Say more.", "Use examples." })
        {
            var gradient = await source.VariableAsync(text, "feedback to system prompt");
            await source.Client.PostJsonAsync($"/v1/variables/{parameter}/grad", new { variable_id = gradient });
        }

        var optimizer = (await source.Client.PostJsonAsync("/v1/optimizers", new { type = "tgd", @params = new[] { parameter }, model_id = model, momentum = 2 }))
            .GetProperty("id").GetString()!;
        var step = await source.Client.PostJsonAsync($"/v1/optimizers/{optimizer}/step", new { });
        Assert.Equal("succeeded", (await source.WaitForJobAsync(step.GetProperty("id").GetString()!)).GetProperty("status").GetString());
        var bytes = await (await source.Client.GetAsync($"/v1/optimizers/{optimizer}/export")).Content.ReadAsByteArrayAsync();

        var target = await _app.CreateProjectAsync();
        var targetModel = await _app.RegisterModelAsync(target);
        await (await ImportAsync(target, bytes)).AssertProblemAsync(400, "missing_field");
        var otherType = Resign(Rewrite(bytes, (name, text) => name == "data.json" ? text.Replace("\"type\": \"tgd\"", "\"type\": \"sgd\"", StringComparison.Ordinal) : text));
        await (await ImportAsync(target, otherType, targetModel)).AssertProblemAsync(400, "invalid_archive");
        var missingSnapshot = Resign(Rewrite(bytes, (name, text) => name == "data.json"
            ? System.Text.RegularExpressions.Regex.Replace(text, "\"snapshot_id\": \"var_[0-9a-f]+\"", "\"snapshot_id\": \"var_00000000000000000000000000000000\"") : text));
        await (await ImportAsync(target, missingSnapshot, targetModel)).AssertProblemAsync(400, "invalid_archive");
        Assert.Empty((await target.Client.GetJsonAsync("/v1/optimizers")).GetProperty("data").EnumerateArray());
        Assert.Empty((await target.Client.GetJsonAsync("/v1/variables")).GetProperty("data").EnumerateArray());
        await (await ImportAsync(target, bytes, model)).AssertProblemAsync(404, "model_not_found"); // the source project's model
        var created = await (await ImportAsync(target, bytes, targetModel)).Content.ReadFromJsonAsync<JsonElement>();
        var copy = await target.Client.GetJsonAsync($"/v1/optimizers/{created.GetProperty("optimizer_id").GetString()}");
        Assert.Equal(targetModel, copy.GetProperty("defaults").GetProperty("model_id").GetString());
        var newParameter = copy.GetProperty("param_groups")[0].GetProperty("params")[0].GetString()!;
        Assert.NotEqual(parameter, newParameter);
        Assert.Equal("rewritten 1", (await target.Client.GetJsonAsync($"/v1/variables/{newParameter}")).GetProperty("data").GetString());
        Assert.Equal(["Say more.", "Use examples."], await target.GradTextsAsync(newParameter));
        var entry = Assert.Single(Assert.Single(copy.GetProperty("state").EnumerateArray()).GetProperty("momentum_buffer").EnumerateArray());
        Assert.Equal("Be brief.", (await target.Client.GetJsonAsync($"/v1/variables/{entry.GetProperty("snapshot_id").GetString()}")).GetProperty("data").GetString());
        Assert.Equal(2, entry.GetProperty("gradient_ids").GetArrayLength());

        // A step there sees the imported history.
        var before = _app.Fake.Requests.Count;
        var again = await target.Client.PostJsonAsync($"/v1/optimizers/{created.GetProperty("optimizer_id").GetString()}/step", new { });
        Assert.Equal("succeeded", (await target.WaitForJobAsync(again.GetProperty("id").GetString()!)).GetProperty("status").GetString());
        var prompt = FakeOpenAiServer.MessageText(_app.Fake.Requests[before], "user");
        Assert.Contains("<VALUE>Be brief.</VALUE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<VARIABLE>rewritten 1</VARIABLE>", prompt, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> BadArchives => new()
    {
        { "not a zip", "invalid_archive" },
        { "no manifest", "invalid_archive" },
        { "tampered data", "archive_checksum_mismatch" },
        { "a future format version", "unsupported_archive_version" },
        { "another format", "invalid_archive" },
        { "an invalid program", "invalid_archive" },
        { "values for other parameters", "invalid_archive" },
        { "a broken central directory", "invalid_archive" },
        { "an empty data file", "invalid_archive" },
        { "a null program", "invalid_archive" },
        { "a NUL in the description", "invalid_archive" },
        { "a NUL in the program", "invalid_archive" },
    };

    [Theory]
    [MemberData(nameof(BadArchives))]
    public async Task ABadOrTamperedArchive_IsRefused_AndImportsNothing(string what, string code)
    {
        var source = await _app.CreateProjectAsync();
        var program = (await source.Client.PostJsonAsync("/v1/programs", new { name = "facility", definition = FacilityTraining.Program })).GetProperty("id").GetString()!;
        var good = await (await source.Client.GetAsync($"/v1/programs/{program}/export")).Content.ReadAsByteArrayAsync();
        var bad = what switch
        {
            "not a zip" => Encoding.UTF8.GetBytes("just text"),
            "no manifest" => Rewrite(good, (name, text) => name == "manifest.json" ? null : text),
            "tampered data" => Rewrite(good, (name, text) => name == "data.json" ? text.Replace("Read the provided", "Ignore the provided", StringComparison.Ordinal) : text),
            "a future format version" => Rewrite(good, (name, text) => name == "manifest.json" ? text.Replace("\"format_version\": 1", "\"format_version\": 99", StringComparison.Ordinal) : text),
            "another format" => Rewrite(good, (name, text) => name == "manifest.json" ? text.Replace("afnio.archive", "other.archive", StringComparison.Ordinal) : text),
            "a broken central directory" => BreakCentralDirectory(good),
            "an empty data file" => Resign(Rewrite(good, (name, text) => name == "data.json" ? "{}" : text)),
            "a null program" => Resign(Rewrite(good, (name, text) => name == "data.json" ? "{\"program\": null}" : text)),
            "a NUL in the description" => Resign(Rewrite(good, (name, text) => name == "data.json" ? text.Replace("\"description\": null", "\"description\": \"a\\u0000b\"", StringComparison.Ordinal) : text)),
            "a NUL in the program" => Resign(Rewrite(good, (name, text) => name == "data.json" ? text.Replace("input email or message", "input\\u0000email", StringComparison.Ordinal) : text)),
            "an invalid program" => Resign(Rewrite(good, (name, text) => name == "data.json" ? text.Replace("\"exact_match_evaluator\"", "\"add\"", StringComparison.Ordinal) : text)),
            _ => Resign(Rewrite(good, (name, text) => name == "data.json" ? text.Replace("\"sentiment_task\": \"", "\"other\": \"", StringComparison.Ordinal) : text)),
        };
        var target = await _app.CreateProjectAsync();
        await (await ImportAsync(target, bad)).AssertProblemAsync(400, code);
        Assert.Empty((await target.Client.GetJsonAsync("/v1/programs")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task ACheckpointArchive_WithBadState_IsRefused()
    {
        var source = await _app.CreateProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(source, p => _app.RegisterModelAsync(p, new { model = "gpt-4.1-nano" }));
        var run = await source.Client.PostJsonAsync("/v1/runs", FacilityTraining.RunBody(program, dataset, model, epochs: 1, batchSize: 66));
        await source.WaitForJobAsync(run.GetProperty("job_id").GetString()!, 120);
        var checkpoint = (await source.Client.GetJsonAsync($"/v1/runs/{run.GetProperty("id").GetString()}/checkpoints")).GetProperty("data")[1].GetProperty("id").GetString()!;
        var good = await (await source.Client.GetAsync($"/v1/checkpoints/{checkpoint}/export")).Content.ReadAsByteArrayAsync();
        var target = await _app.CreateProjectAsync();
        var noGradients = Resign(Rewrite(good, (name, text) => name == "data.json"
            ? System.Text.RegularExpressions.Regex.Replace(text, "\"gradients\": \\{[^}]*\\}", "\"gradients\": null") : text));
        var hugeCost = Resign(Rewrite(good, (name, text) => name == "data.json"
            ? System.Text.RegularExpressions.Regex.Replace(text, "\"cost_usd\": [0-9.eE+-]+", "\"cost_usd\": 1000000000000") : text));
        var foreignMomentum = Resign(Rewrite(good, (name, text) => name == "data.json"
            ? text.Replace("\"momentum\": {\n", "\"momentum\": {\n\"ghost\": [],\n", StringComparison.Ordinal) : text));
        foreach (var bad in new[] { noGradients, hugeCost, foreignMomentum })
        {
            await (await ImportAsync(target, bad)).AssertProblemAsync(400, "invalid_archive");
        }

        Assert.Empty((await target.Client.GetJsonAsync("/v1/programs")).GetProperty("data").EnumerateArray());
        await (await ImportAsync(target, good)).Content.ReadFromJsonAsync<JsonElement>(); // the untouched archive imports
        Assert.Single((await target.Client.GetJsonAsync("/v1/programs")).GetProperty("data").EnumerateArray());
    }

    /// <summary>The archive with its end-of-central-directory entry count changed.</summary>
    private static byte[] BreakCentralDirectory(byte[] archive)
    {
        var copy = (byte[])archive.Clone();
        for (var i = copy.Length - 22; i >= 0; i--)
        {
            if (copy[i] == 0x50 && copy[i + 1] == 0x4b && copy[i + 2] == 0x05 && copy[i + 3] == 0x06)
            {
                copy[i + 10] = 9; // total entries
                copy[i + 8] = 9; // entries on this disk
                return copy;
            }
        }

        throw new InvalidOperationException("No end of central directory.");
    }

    private static Task<HttpResponseMessage> ImportAsync(TestProject project, byte[] archive, string? modelId = null)
    {
        var content = new ByteArrayContent(archive);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        return project.Client.PostAsync(modelId is null ? "/v1/imports" : $"/v1/imports?model_id={modelId}", content);
    }

    /// <summary>A copy of the archive with files changed (null drops one).</summary>
    private static byte[] Rewrite(byte[] archive, Func<string, string, string?> change)
    {
        using var input = new ZipArchive(new MemoryStream(archive));
        using var output = new MemoryStream();
        using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in input.Entries)
            {
                var text = new StreamReader(entry.Open()).ReadToEnd();
                if (change(entry.FullName, text) is { } changed)
                {
                    using var writer = new StreamWriter(zip.CreateEntry(entry.FullName).Open());
                    writer.Write(changed);
                }
            }
        }

        return output.ToArray();
    }

    /// <summary>Recomputes the manifest's checksum, as someone crafting an archive would: the content checks still apply.</summary>
    private static byte[] Resign(byte[] archive)
    {
        using var input = new ZipArchive(new MemoryStream(archive));
        var data = new StreamReader(input.GetEntry("data.json")!.Open()).ReadToEnd();
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(data)));
        return Rewrite(archive, (name, text) => name == "manifest.json"
            ? System.Text.RegularExpressions.Regex.Replace(text, "\"data.json\": \"[0-9a-f]+\"", $"\"data.json\": \"{hash}\"")
            : text);
    }
}
