using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Afnio.Api.Auth;
using Afnio.Api.Datasets;
using Afnio.Api.Infrastructure;
using Afnio.Api.Programs;
using Afnio.Api.Runs;
using Afnio.Data;
using Afnio.Data.Jobs;
using Afnio.Data.Programs;
using Afnio.Data.Runs;
using Afnio.Domain.Common;
using Afnio.Domain.Programs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Archives;

/// <summary>An archive's table of contents: its format, what it holds, and a SHA-256 per file.</summary>
public sealed record ArchiveManifest(string Format, int FormatVersion, string Kind, long CreatedAt, IReadOnlyDictionary<string, string> Files);

/// <summary>A program as archives carry it.</summary>
public sealed record ArchivedProgram(string Name, string? Description, JsonElement Definition);

/// <summary>A checkpoint as archives carry it: the training state (parameters, gradients, momentum) and where it stood.</summary>
public sealed record ArchivedCheckpoint(string Kind, int Epoch, int? Batch, JsonElement State, IReadOnlyDictionary<string, double>? Validation, double? Score, decimal CostUsd);

/// <summary>The content of an archive (<c>data.json</c>): the program, and a checkpoint or a version's values.</summary>
public sealed record ArchiveData(
    ArchivedProgram? Program, ArchivedCheckpoint? Checkpoint, int? Version, IReadOnlyDictionary<string, string>? Parameters, ArchivedOptimizer? Optimizer = null);

/// <summary>What an import created.</summary>
public sealed record ImportResponse(string Kind, string? ProgramId, int? ProgramVersion, string? CheckpointId, string? OptimizerId)
{
    [JsonPropertyOrder(-1)]
    public string Object => "import";
}

/// <summary>
/// Portable archives (afnio's <c>save</c>/<c>load</c>, without pickle): a zip of JSON with a manifest
/// that names the format version and the SHA-256 of every file. Export a checkpoint or a program
/// version; import it into any project, with new ids. A bad, tampered or unknown archive is a 400,
/// and an import stores everything or nothing.
/// </summary>
public static class ArchivesApi
{
    public const string Format = "afnio.archive";
    public const int FormatVersion = 1;
    public const string CheckpointKind = "checkpoint";
    public const string ProgramVersionKind = "program_version";
    public const string OptimizerKind = "optimizer";
    private const string ManifestFile = "manifest.json";
    private const string DataFile = "data.json";
    private static readonly JsonSerializerOptions Json = new(JobEventLog.Json)
    {
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        AllowDuplicateProperties = false,
    };

    public static RouteGroupBuilder MapArchives(this RouteGroupBuilder v1)
    {
        v1.MapGet("/checkpoints/{id}/export", ExportCheckpoint).WithTags("Archives").WithName("exportCheckpoint")
            .Produces<Stream>(StatusCodes.Status200OK, "application/zip")
            .WithDescription("Downloads a checkpoint with its program as a portable archive (a zip of JSON with a versioned manifest).");
        v1.MapGet("/programs/{id}/export", ExportProgram).WithTags("Archives").WithName("exportProgram")
            .Produces<Stream>(StatusCodes.Status200OK, "application/zip")
            .WithDescription("Downloads a program version (default: production) as a portable archive.");
        v1.MapGet("/optimizers/{id}/export", ExportOptimizer).WithTags("Archives").WithName("exportOptimizer")
            .Produces<Stream>(StatusCodes.Status200OK, "application/zip")
            .WithDescription("Downloads an optimizer with its parameters, their gradient lists and its momentum state as a portable archive.");
        v1.MapPost("/imports", Import).WithTags("Archives").WithName("importArchive").WithMetadata(new LargeBody())
            .Accepts<IFormFile>("application/zip")
            .WithDescription("Restores an archive into the caller's project with new ids: a program (its version 1 holds the archived values) " +
                "and, for a checkpoint, the checkpoint, ready for POST /v1/runs with from_checkpoint_id; or an optimizer with its parameters, " +
                "gradients and momentum, whose groups call ?model_id= (a model client of this project).");
        return v1;
    }

    public static async Task<FileContentHttpResult> ExportCheckpoint(string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var checkpoint = await TrainingRunsApi.FindCheckpointAsync(db, project, id, "id", ct);
        var program = await db.Programs.AsNoTracking().SingleAsync(p => p.Id == checkpoint.ProgramId, ct);
        var data = new ArchiveData(Archived(program), new ArchivedCheckpoint(checkpoint.Kind, checkpoint.Epoch, checkpoint.Batch,
            JsonDocument.Parse(checkpoint.State).RootElement.Clone(),
            checkpoint.Validation is null ? null : JsonSerializer.Deserialize<Dictionary<string, double>>(checkpoint.Validation), checkpoint.Score, checkpoint.CostUsd),
            null, null);
        return Zip(CheckpointKind, data, $"{id}.afnio.zip", clock);
    }

    public static async Task<FileContentHttpResult> ExportProgram(
        string id, int? version, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct)
    {
        var program = await ProgramsApi.FindAsync(db, project, id, ct);
        var wanted = version ?? program.CurrentVersion;
        var row = await db.ProgramVersions.AsNoTracking().SingleOrDefaultAsync(v => v.ProgramId == program.Id && v.Version == wanted, ct)
            ?? throw ApiException.NotFound("program_version", "version");
        var data = new ArchiveData(Archived(program), null, row.Version, ProgramsApi.Values(row.Parameters));
        return Zip(ProgramVersionKind, data, $"{id}-v{row.Version}.afnio.zip", clock);
    }

    public static async Task<FileContentHttpResult> ExportOptimizer(string id, AfnioDbContext db, ProjectContext project, TimeProvider clock, CancellationToken ct) =>
        Zip(OptimizerKind, new ArchiveData(null, null, null, null, await OptimizerArchives.ExportAsync(db, project, id, ct)), $"{id}.afnio.zip", clock);

    public static async Task<Created<ImportResponse>> Import(
        HttpRequest request, [FromQuery(Name = "model_id")] string? modelId, AfnioDbContext db, ProjectContext project, TimeProvider clock,
        ImportSlots slots, IOptions<AfnioOptions> options, CancellationToken ct)
    {
        // One turn per import holds the body and what it inflates; the rest wait without holding either.
        using var turn = await slots.EnterAsync(ct);
        using var buffer = new MemoryStream(request.ContentLength is > 0 and <= int.MaxValue and var length ? (int)length : 0);
        await request.Body.CopyToAsync(buffer, ct);
        var (manifest, data) = Read(buffer, options.Value.Imports);
        if (manifest.Kind == OptimizerKind)
        {
            var archived = data.Optimizer ?? throw Invalid("An optimizer archive must hold an optimizer.");
            await using var otx = await db.BeginOrJoinTransactionAsync(ct);
            var optimizerId = await OptimizerArchives.ImportAsync(db, project, archived, modelId, clock.GetUtcNow(), ct);
            await otx.CommitAsync(ct);
            var imported = new ImportResponse(OptimizerKind, null, null, null, PrefixedId.Format(PrefixedId.Optimizer, optimizerId));
            return TypedResults.Created($"/v1/optimizers/{imported.OptimizerId}", imported);
        }

        if (data.Program is null)
        {
            throw Invalid("A program or checkpoint archive must hold its program.");
        }

        // The same checks as creating the program over the API: storable text, size, then the program itself.
        Check(() => { StorableJson.Check(data.Program.Definition, "invalid_archive", "definition"); return true; }, "program");
        if (data.Program.Definition.GetRawText().Length > ProgramsApi.MaxDefinitionBytes)
        {
            throw Invalid($"The archive's program is larger than {ProgramsApi.MaxDefinitionBytes} bytes.");
        }

        var definition = Check(() => ProgramParser.Parse(data.Program.Definition), "program");
        var name = data.Program.Name is { Length: > 0 and <= 200 } n && !n.Contains('\0', StringComparison.Ordinal) ? n : throw Invalid("The program's name must be 1 to 200 characters.");
        var description = data.Program.Description is { } d && (d.Length > 2000 || d.Contains('\0', StringComparison.Ordinal))
            ? throw Invalid("The program's description must be at most 2000 characters, without NUL.")
            : data.Program.Description;
        IReadOnlyDictionary<string, string> values;
        TrainingState? state = null;
        switch (manifest.Kind)
        {
            case CheckpointKind:
                var checkpoint = data.Checkpoint ?? throw Invalid("A checkpoint archive must hold a checkpoint.");
                if (checkpoint.Epoch is < 0 or > 100_000 || checkpoint.Batch is < 0 || checkpoint.CostUsd is < 0 or >= 1_000_000_000m
                    || checkpoint.Score is { } score && !double.IsFinite(score) || checkpoint.Validation?.Values.Any(v => !double.IsFinite(v)) == true)
                {
                    throw Invalid("The checkpoint's epoch, batch, cost or scores are out of range.");
                }

                Check(() => { StorableJson.Check(checkpoint.State, "invalid_archive", "state"); return true; }, "checkpoint state");
                state = Check(() => checkpoint.State.Deserialize<TrainingState>(Json) ?? throw new JsonException("empty state"), "checkpoint state");
                CheckState(state, definition);
                values = state.Parameters;
                break;
            case ProgramVersionKind:
                values = data.Parameters ?? throw Invalid("A program version archive must hold its parameters.");
                break;
            default:
                throw Invalid($"Unknown archive kind '{manifest.Kind}': expected {CheckpointKind}, {ProgramVersionKind} or {OptimizerKind}.");
        }

        var names = definition.Parameters.Select(p => p.Name).Order(StringComparer.Ordinal).ToList();
        if (!values.Keys.Order(StringComparer.Ordinal).SequenceEqual(names) || values.Values.Any(v => v is null || v.Contains('\0', StringComparison.Ordinal)))
        {
            throw Invalid($"The archived values must name exactly the program's parameters ({string.Join(", ", names)}), each with text.");
        }

        var now = clock.GetUtcNow();
        await using var tx = await db.BeginOrJoinTransactionAsync(ct);
        var program = await ProgramsApi.CreateAsync(db, project.ProjectId, name, description, definition, ProgramVersion.Imported, now, ct, values);
        RunCheckpoint? row = null;
        if (state is not null)
        {
            var archived = data.Checkpoint!;
            row = new RunCheckpoint
            {
                Id = PrefixedId.NewGuid(),
                ProjectId = project.ProjectId,
                ProgramId = program.Id,
                Kind = RunCheckpoint.ImportedKind,
                Epoch = Math.Max(0, archived.Epoch),
                Batch = archived.Batch,
                State = JsonSerializer.Serialize(state, JobEventLog.Json),
                Progress = "{}",
                Validation = archived.Validation is null ? null : JsonSerializer.Serialize(archived.Validation),
                Score = archived.Score,
                CostUsd = archived.CostUsd,
                CreatedAt = now,
            };
            db.RunCheckpoints.Add(row);
            await db.SaveChangesAsync(ct);
        }

        await tx.CommitAsync(ct);
        var response = new ImportResponse(manifest.Kind, PrefixedId.Format(PrefixedId.Program, program.Id), 1, PrefixedId.Format(PrefixedId.Checkpoint, row?.Id), null);
        return TypedResults.Created($"/v1/programs/{response.ProgramId}", response);
    }

    // Gradients and momentum windows name the program's parameters and hold text: a run from the checkpoint reads them.
    private static void CheckState(TrainingState state, ProgramDefinition definition)
    {
        var names = definition.Parameters.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        if (state.Gradients is null || state.Momentum is null || state.Parameters is null)
        {
            throw Invalid("The checkpoint's state must hold parameters, gradients and momentum.");
        }

        if (state.Gradients.Any(g => !names.Contains(g.Key) || g.Value is null || g.Value.Any(x => x?.Data is null || x.Role is null))
            || state.Momentum.Any(m => !names.Contains(m.Key) || m.Value is null || m.Value.Any(x => x?.Value is null || x.Feedback is null || x.Feedback.Any(f => f is null))))
        {
            throw Invalid("The checkpoint's gradients and momentum must name the program's parameters and hold text.");
        }
    }

    private static ArchivedProgram Archived(AgentProgram program) =>
        new(program.Name, program.Description, JsonDocument.Parse(program.Definition).RootElement.Clone());

    private static FileContentHttpResult Zip(string kind, ArchiveData data, string fileName, TimeProvider clock)
    {
        var content = JsonSerializer.SerializeToUtf8Bytes(data, Json);
        var manifest = new ArchiveManifest(Format, FormatVersion, kind, UnixTime.Of(clock.GetUtcNow()),
            new Dictionary<string, string> { [DataFile] = Convert.ToHexStringLower(SHA256.HashData(content)) });
        using var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            Write(zip, ManifestFile, JsonSerializer.SerializeToUtf8Bytes(manifest, Json));
            Write(zip, DataFile, content);
        }

        return TypedResults.File(stream.ToArray(), "application/zip", fileName);
    }

    private static void Write(ZipArchive zip, string name, byte[] content)
    {
        using var entry = zip.CreateEntry(name, CompressionLevel.Optimal).Open();
        entry.Write(content);
    }

    // The manifest first, under its own small cap; then only the files it lists. Entries it does not
    // list are never inflated: they cannot change what is imported, so they are ignored.
    private static (ArchiveManifest Manifest, ArchiveData Data) Read(MemoryStream buffer, AfnioOptions.ImportOptions limits)
    {
        using var zip = BoundedArchive.Open(buffer, limits);
        var manifest = Check(() => JsonSerializer.Deserialize<ArchiveManifest>(
            zip.Read(ManifestFile, limits.MaxManifestBytes, nameof(limits.MaxManifestBytes)) ?? throw Invalid($"The archive has no {ManifestFile}."), Json)!, ManifestFile);
        if (manifest.Format != Format)
        {
            throw Invalid($"This is not an Afnio archive (format '{manifest.Format}').");
        }

        if (manifest.FormatVersion != FormatVersion)
        {
            throw ApiException.BadRequest("unsupported_archive_version",
                $"The archive has format version {manifest.FormatVersion}; this server reads version {FormatVersion}.", "format_version");
        }

        if (manifest.Files?.ContainsKey(DataFile) != true)
        {
            throw Invalid($"The manifest does not list {DataFile}.");
        }

        if (manifest.Files.Count >= BoundedArchive.MaxFiles || manifest.Files.ContainsKey(ManifestFile))
        {
            throw Invalid($"The manifest lists {manifest.Files.Count} files; it lists {DataFile} and at most {BoundedArchive.MaxFiles - 2} others, never itself.");
        }

        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (name, hash) in manifest.Files)
        {
            if (zip.Read(name, limits.MaxEntryBytes, nameof(limits.MaxEntryBytes)) is not { } content
                || !string.Equals(Convert.ToHexStringLower(SHA256.HashData(content)), hash, StringComparison.OrdinalIgnoreCase))
            {
                throw ApiException.BadRequest("archive_checksum_mismatch", $"'{name}' is missing or does not match its checksum in the manifest: the archive was changed or damaged.");
            }

            files[name] = content;
        }

        return (manifest, Check(() => JsonSerializer.Deserialize<ArchiveData>(files[DataFile], Json)!, DataFile));
    }

    private static T Check<T>(Func<T> read, string what)
    {
        try
        {
            return read() ?? throw Invalid($"The archive's {what} is empty.");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException)
        {
            throw Invalid($"The archive's {what} is not valid: {e.Message}");
        }
        catch (AfnioException e) when (e.Kind == ErrorKind.InvalidArgument)
        {
            throw Invalid($"The archive's {what} is not valid: {e.Message}");
        }
    }

    private static ApiException Invalid(string message) => ApiException.BadRequest("invalid_archive", message);
}
