using System.Threading.Channels;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.LanguageModels;

/// <summary>
/// Writes call-journal rows with group commit: one writer takes every row waiting and inserts them in
/// one transaction, so a batch of 64 concurrent calls costs a few transactions, not 64. A caller's
/// write completes when its row is committed.
/// </summary>
public sealed class ModelCallJournal : IAsyncDisposable
{
    private const int MaxRowsPerCommit = 256;
    private readonly IDbContextFactory<AfnioDbContext> _contexts;
    private readonly Channel<(ModelCall Row, TaskCompletionSource Done)> _queue =
        Channel.CreateUnbounded<(ModelCall, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });

    private readonly Task _writer;

    public ModelCallJournal(IDbContextFactory<AfnioDbContext> contexts)
    {
        _contexts = contexts;
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>Queues the row and waits until it is committed.</summary>
    public Task WriteAsync(ModelCall row, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ObjectDisposedException.ThrowIf(!_queue.Writer.TryWrite((row, done)), this);

        return done.Task.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writer;
    }

    private async Task InsertAsync(IEnumerable<ModelCall> rows)
    {
        await using var db = await _contexts.CreateDbContextAsync();
        await using var tx = await db.Database.BeginTransactionAsync();
        // The rows need not wait for the disk: the log is flushed in order, so they are durable by the
        // time a step that used their replies commits (synchronously). Only a database crash in between
        // could lose one, and then that step would pay for its call again.
        await db.Database.ExecuteSqlRawAsync("SET LOCAL synchronous_commit = off");
        db.ModelCalls.AddRange(rows);
        await db.SaveChangesAsync();
        await tx.CommitAsync();
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<(ModelCall Row, TaskCompletionSource Done)>();
        while (await _queue.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxRowsPerCommit && _queue.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            try
            {
                await InsertAsync(batch.Select(b => b.Row));
                batch.ForEach(b => b.Done.TrySetResult());
            }
            catch (Exception) when (batch.Count > 1)
            {
                // One row must not fail the others (a model deleted meanwhile, say): write them one by one.
                foreach (var (row, done) in batch)
                {
                    try
                    {
                        await InsertAsync([row]);
                        done.TrySetResult();
                    }
                    catch (Exception e)
                    {
                        done.TrySetException(e);
                    }
                }
            }
            catch (Exception e)
            {
                batch.ForEach(b => b.Done.TrySetException(e));
            }
        }
    }
}
