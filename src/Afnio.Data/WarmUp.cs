using System.Text.Json;
using Afnio.Data.Graph;
using Afnio.Data.Jobs;
using Afnio.Data.LanguageModels;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Afnio.Data;

/// <summary>
/// Runs the hot paths once at start-up, with ids that match nothing, so the first request or job does
/// not pay for them: EF Core's model and query pipeline, the pools' first connections, the key ring,
/// the JSON serializers and the JIT of all of these. It reads only; it never writes a row.
/// </summary>
public static partial class WarmUp
{
    /// <summary>The shared part: what both the API and the Worker run.</summary>
    public static async Task RunAsync(IServiceProvider services, CancellationToken ct)
    {
        var contexts = services.GetRequiredService<IDbContextFactory<AfnioDbContext>>();
        var none = Guid.Empty;
        // Several contexts at once, so the pool opens a few connections now rather than under the first load.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            await using var db = await contexts.CreateDbContextAsync(ct);
            await db.LoadReachableAsync(none, [none], null, ct);
            await db.Variables.AsNoTracking().Where(v => v.ProjectId == none && new[] { none }.Contains(v.Id)).ToListAsync(ct);
            await db.Jobs.AsNoTracking().Where(j => j.Id == none && j.ProjectId == none).FirstOrDefaultAsync(ct);
            await db.JobEvents.AsNoTracking().Where(e => e.JobId == none && e.Seq > 0).OrderBy(e => e.Seq).Take(1).ToListAsync(ct);
            await db.JobSteps.AsNoTracking().Where(s => s.JobId == none).ToListAsync(ct);
            await db.ModelCalls.AsNoTracking().Where(c => c.JobId == none).ToListAsync(ct);
            await db.Models.AsNoTracking().Where(m => m.Id == none && m.ProjectId == none).FirstOrDefaultAsync(ct);
        }));
        // The key ring is loaded on first use; a model's key is decrypted before its first call.
        var keys = services.GetRequiredService<ModelKeyProtector>();
        _ = keys.Unprotect(keys.Protect("warm-up"));
        _ = JsonSerializer.Serialize(new { status = "queued", error = new { code = "warm_up", message = "warm-up" } }, JobEventLog.Json);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Warmed up in {Milliseconds:F0} ms")]
    public static partial void LogWarmedUp(ILogger logger, double milliseconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Warm-up failed; the first requests will be slower")]
    public static partial void LogWarmUpFailed(ILogger logger, Exception exception);
}

/// <summary>Runs <see cref="WarmUp"/> before the process starts serving (a failure only costs speed).</summary>
public sealed class WarmUpService(IServiceProvider services, ILogger<WarmUpService> log) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            await WarmUp.RunAsync(services, cancellationToken);
            WarmUp.LogWarmedUp(log, watch.Elapsed.TotalMilliseconds);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            WarmUp.LogWarmUpFailed(log, e);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
