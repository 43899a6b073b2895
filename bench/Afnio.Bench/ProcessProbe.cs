using System.Globalization;

namespace Afnio.Bench;

/// <summary>Reads a process's memory and CPU time from /proc (Linux), or nothing when the pid is unknown.</summary>
internal sealed class ProcessProbe(string name, int? pid)
{
    public string Name { get; } = name;

    public bool Known => pid is not null && File.Exists($"/proc/{pid}/status");

    /// <summary>Resident memory now, in MiB.</summary>
    public double RssMiB() => StatusKb("VmRSS:") / 1024.0;

    /// <summary>The resident high-water mark since the process started, in MiB.</summary>
    public double HighWaterMiB() => StatusKb("VmHWM:") / 1024.0;

    /// <summary>User plus system CPU time the process has used, in seconds.</summary>
    public double CpuSeconds()
    {
        if (!Known)
        {
            return 0;
        }

        // Fields after the command (which is in parentheses and may hold spaces): utime is the 14th field, stime the 15th.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks / 100.0; // USER_HZ
    }

    public static int? Pid(string variable) =>
        int.TryParse(Environment.GetEnvironmentVariable(variable), CultureInfo.InvariantCulture, out var pid) ? pid : null;

    private long StatusKb(string field)
    {
        if (!Known)
        {
            return 0;
        }

        var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}

/// <summary>Samples the resident memory of some processes every 20 ms and keeps each one's peak.</summary>
internal sealed class MemorySampler : IAsyncDisposable
{
    private readonly IReadOnlyList<ProcessProbe> _probes;
    private readonly double[] _peaks;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public MemorySampler(IReadOnlyList<ProcessProbe> probes)
    {
        _probes = probes;
        Before = [.. probes.Select(p => p.RssMiB())];
        _peaks = [.. Before];
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Each process's resident memory when sampling began, in MiB.</summary>
    public IReadOnlyList<double> Before { get; }

    /// <summary>Each process's highest resident memory seen so far, in MiB.</summary>
    public IReadOnlyList<double> Peaks => _peaks;

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            for (var i = 0; i < _probes.Count; i++)
            {
                try
                {
                    _peaks[i] = Math.Max(_peaks[i], _probes[i].RssMiB());
                }
                catch (IOException)
                {
                    // The process went away (an OOM kill is one of the outcomes measured).
                }
            }

            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
