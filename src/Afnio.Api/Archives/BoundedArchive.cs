using System.Buffers.Binary;
using System.IO.Compression;
using Afnio.Api.Infrastructure;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Archives;

/// <summary>
/// A zip opened for import: files are inflated only when asked for by name, in small chunks, and
/// reading stops at the caps of <see cref="AfnioOptions.ImportOptions"/>: per file, in total, and the
/// ratio of inflated to compressed bytes. Every cap counts the bytes actually produced and consumed
/// while inflating; the sizes written in the zip headers are never trusted.
/// </summary>
internal sealed class BoundedArchive : IDisposable
{
    /// <summary>More files than any archive of this format holds; the central directory is counted before it is parsed.</summary>
    public const int MaxFiles = 16;

    private const int ChunkBytes = 16 * 1024;
    private const uint EndOfCentralDirectory = 0x06054b50;
    private const uint CentralDirectoryHeader = 0x02014b50;

    private readonly CountingStream _source;
    private readonly ZipArchive _zip;
    private readonly Dictionary<string, ZipArchiveEntry> _entries;
    private readonly AfnioOptions.ImportOptions _limits;
    private long _total;

    private BoundedArchive(CountingStream source, ZipArchive zip, Dictionary<string, ZipArchiveEntry> entries, AfnioOptions.ImportOptions limits)
    {
        _source = source;
        _zip = zip;
        _entries = entries;
        _limits = limits;
    }

    /// <summary>Opens the archive in <paramref name="body"/>, reading only its central directory.</summary>
    /// <exception cref="ApiException">400 <c>invalid_archive</c>: not a zip, ZIP64, too many files, or a name given twice.</exception>
    public static BoundedArchive Open(MemoryStream body, AfnioOptions.ImportOptions limits)
    {
        // ZipArchive materializes every central-directory entry: a 64 MB body of empty entries would be
        // a million objects. Count them first, on the raw bytes.
        CountCentralDirectory(body.GetBuffer().AsSpan(0, (int)body.Length));
        body.Position = 0;
        var source = new CountingStream(body);
        ZipArchive zip;
        var entries = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
        try
        {
            zip = new ZipArchive(source, ZipArchiveMode.Read, leaveOpen: true);
            foreach (var entry in zip.Entries)
            {
                if (!entries.TryAdd(entry.FullName, entry))
                {
                    zip.Dispose();
                    throw Invalid($"The archive holds '{entry.FullName}' twice.");
                }
            }
        }
        catch (InvalidDataException)
        {
            throw Invalid("The body is not a zip archive: send the file an export gave, as application/zip.");
        }

        return new BoundedArchive(source, zip, entries, limits);
    }

    /// <summary>
    /// Inflates the file <paramref name="name"/>, or returns null when the archive has none. Fails as
    /// soon as the file passes <paramref name="cap"/> bytes, all files read so far pass the total cap,
    /// or the file has inflated more than the ratio cap allows for the compressed bytes read so far.
    /// </summary>
    /// <exception cref="ApiException">413 <c>archive_too_large</c>, 400 <c>archive_compression_ratio</c> or <c>invalid_archive</c>.</exception>
    public byte[]? Read(string name, long cap, string capSetting)
    {
        if (!_entries.TryGetValue(name, out var entry))
        {
            return null;
        }

        var start = _source.BytesRead;
        var buffer = new byte[ChunkBytes];
        using var content = new MemoryStream();
        long inflated = 0;
        try
        {
            using var stream = entry.Open();
            int read;
            while ((read = stream.Read(buffer)) > 0)
            {
                inflated += read;
                _total += read;
                if (inflated > cap)
                {
                    throw ApiException.PayloadTooLarge("archive_too_large",
                        $"'{name}' inflates to more than {cap} bytes, the limit for one file of an archive (Afnio__Imports__{capSetting}).");
                }

                if (_total > _limits.MaxTotalBytes)
                {
                    throw ApiException.PayloadTooLarge("archive_too_large",
                        $"The archive's files inflate to more than {_limits.MaxTotalBytes} bytes together, the limit for an archive (Afnio__Imports__MaxTotalBytes).");
                }

                // What the inflater has consumed so far includes its read-ahead, so small files never trip this.
                var compressed = Math.Max(1, _source.BytesRead - start);
                if (inflated > compressed * _limits.MaxCompressionRatio)
                {
                    throw ApiException.BadRequest("archive_compression_ratio",
                        $"'{name}' inflated {inflated} bytes from {compressed} compressed bytes, more than the limit of {_limits.MaxCompressionRatio}:1 " +
                        "(Afnio__Imports__MaxCompressionRatio). Archives made by an export stay far below it.");
                }

                content.Write(buffer, 0, read);
            }
        }
        catch (InvalidDataException)
        {
            throw Invalid($"'{name}' is corrupted.");
        }

        return content.ToArray();
    }

    public void Dispose() => _zip.Dispose();

    /// <summary>Finds the end-of-central-directory record and counts the headers that follow its offset, up to <see cref="MaxFiles"/>.</summary>
    private static void CountCentralDirectory(ReadOnlySpan<byte> zip)
    {
        var end = -1;
        for (var i = zip.Length - 22; i >= Math.Max(0, zip.Length - 22 - ushort.MaxValue); i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(zip[i..]) == EndOfCentralDirectory)
            {
                end = i;
                break;
            }
        }

        if (end < 0)
        {
            throw Invalid("The body is not a zip archive: send the file an export gave, as application/zip.");
        }

        var offset = BinaryPrimitives.ReadUInt32LittleEndian(zip[(end + 16)..]);
        if (BinaryPrimitives.ReadUInt16LittleEndian(zip[(end + 10)..]) == ushort.MaxValue || offset == uint.MaxValue)
        {
            throw Invalid("The archive is a ZIP64 archive; archives of this format are small zips without ZIP64 records.");
        }

        var files = 0;
        for (long at = offset; at + 46 <= end && BinaryPrimitives.ReadUInt32LittleEndian(zip[(int)at..]) == CentralDirectoryHeader;)
        {
            if (++files > MaxFiles)
            {
                throw Invalid($"The archive holds more than {MaxFiles} files; an archive of this format holds a manifest and its data.");
            }

            at += 46L + BinaryPrimitives.ReadUInt16LittleEndian(zip[(int)(at + 28)..]) + BinaryPrimitives.ReadUInt16LittleEndian(zip[(int)(at + 30)..])
                + BinaryPrimitives.ReadUInt16LittleEndian(zip[(int)(at + 32)..]);
        }
    }

    private static ApiException Invalid(string message) => ApiException.BadRequest("invalid_archive", message);

    /// <summary>A seekable view of the body that counts the bytes read through it: the compressed bytes an entry consumed.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));

        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Count(int read)
        {
            BytesRead += read;
            return read;
        }
    }
}

/// <summary>
/// Bounds the imports one process inflates at once (<see cref="AfnioOptions.ImportOptions.MaxConcurrent"/>),
/// so their memory is bounded by the caps times this number, however many arrive together.
/// </summary>
public sealed class ImportSlots(IOptions<AfnioOptions> options) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(Math.Max(1, options.Value.Imports.MaxConcurrent));

    /// <summary>Waits for a turn; dispose the result to give it back.</summary>
    public async Task<IDisposable> EnterAsync(CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        return new Turn(_slots);
    }

    public void Dispose() => _slots.Dispose();

    private sealed class Turn(SemaphoreSlim slots) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                slots.Release();
            }
        }
    }
}
