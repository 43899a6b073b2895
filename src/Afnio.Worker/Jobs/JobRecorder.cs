using System.Text.Json;
using Afnio.Data;
using Afnio.Data.Jobs;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Worker.Jobs;

/// <summary>Moves job rows through their states; every transition is one set-based update.</summary>
public sealed class JobRecorder(AfnioDbContext db, TimeProvider clock)
{
    /// <summary>Results are shown to API users as they are stored: snake_case, like every other field.</summary>
    private static readonly JsonSerializerOptions ResultJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Identifies this process in <see cref="Job.ExecutedBy"/>.</summary>
    public static string ProcessName { get; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>
    /// Claims a job for running. Returns false when the row is missing or already finished, which
    /// is how a job that Hangfire delivers twice becomes a no-op.
    /// </summary>
    public async Task<bool> TryStartAsync(Guid jobId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var claimed = await db.Jobs
            .Where(j => j.Id == jobId && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running))
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Running)
                .SetProperty(j => j.StartedAt, j => j.StartedAt ?? now)
                .SetProperty(j => j.ExecutedBy, ProcessName), ct);
        return claimed == 1;
    }

    public Task SucceedAsync<TResult>(Guid jobId, TResult result, CancellationToken ct)
    {
        var json = JsonSerializer.Serialize(result, ResultJson);
        var now = clock.GetUtcNow();
        return db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s
            .SetProperty(j => j.Status, JobStatus.Succeeded)
            .SetProperty(j => j.Result, json)
            .SetProperty(j => j.FinishedAt, now), ct);
    }

    public Task FailAsync(Guid jobId, string code, string message)
    {
        var now = clock.GetUtcNow();
        // Recording a failure must not be skipped because the job's own token was cancelled.
        return db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s
            .SetProperty(j => j.Status, JobStatus.Failed)
            .SetProperty(j => j.ErrorCode, code)
            .SetProperty(j => j.ErrorMessage, message)
            .SetProperty(j => j.FinishedAt, now), CancellationToken.None);
    }

    public static Job NewSystemJob(string type, DateTimeOffset now) =>
        new() { Id = Domain.Common.PrefixedId.NewGuid(), Type = type, CreatedAt = now };
}
