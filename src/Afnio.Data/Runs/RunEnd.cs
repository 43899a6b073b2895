using Afnio.Data.Events;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.Runs;

/// <summary>Ends a server-driven run whose job ended without succeeding.</summary>
public static class RunEnd
{
    /// <summary>
    /// Marks the run of job <paramref name="jobId"/> cancelled (when a cancel was asked) or failed, and
    /// publishes <c>run.cancelled</c> or <c>run.failed</c>. Call inside the transaction that ends the job.
    /// </summary>
    public static async Task MarkEndedAsync(AfnioDbContext db, Guid jobId, DateTimeOffset now, CancellationToken ct)
    {
        var ended = await db.Database.SqlQuery<EndedRun>($"""
            UPDATE runs SET status = CASE WHEN (SELECT status FROM jobs WHERE id = {jobId}) IN ('cancelling', 'cancelled') THEN 'cancelled' ELSE 'failed' END,
                updated_at = {now}
            WHERE job_id = {jobId} AND status = 'running'
            RETURNING id, project_id, status, program_id
            """).ToListAsync(ct);
        foreach (var run in ended)
        {
            await db.PublishAsync(run.ProjectId, run.Status == Run.Cancelled ? EventTypes.RunCancelled : EventTypes.RunFailed, new
            {
                id = PrefixedId.Format(PrefixedId.Run, run.Id),
                program_id = PrefixedId.Format(PrefixedId.Program, run.ProgramId),
                job_id = PrefixedId.Format(PrefixedId.Job, jobId),
            }, now, ct);
        }
    }

    private sealed record EndedRun(Guid Id, Guid ProjectId, string Status, Guid? ProgramId);
}
