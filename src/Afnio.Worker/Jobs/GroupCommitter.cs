using System.Threading.Channels;

namespace Afnio.Worker.Jobs;

/// <summary>
/// Commits items of a job in groups: items that arrive while a commit is in flight are committed
/// together in the next transaction. Each item's writes still commit with its own done mark (the
/// commit function writes both), and a job of many small steps pays for far fewer durable commits.
/// A failed group fails every item in it.
/// </summary>
/// <typeparam name="T">What one step commits.</typeparam>
public sealed class GroupCommitter<T> : IAsyncDisposable
{
    private readonly int _maxBatch;
    private readonly Func<IReadOnlyList<T>, Task> _commit;
    private readonly Action<T>? _committed;
    private readonly Channel<Pending> _pending = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _loop;

    /// <param name="commit">Writes a group of items in one transaction and commits it.</param>
    /// <param name="committed">Called for each item once its group committed.</param>
    /// <param name="maxBatch">The most items in one transaction.</param>
    public GroupCommitter(Func<IReadOnlyList<T>, Task> commit, Action<T>? committed = null, int maxBatch = 512)
    {
        (_commit, _committed, _maxBatch) = (commit, committed, maxBatch);
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Commits <paramref name="item"/> (with whatever else is waiting) and returns once it is durable.</summary>
    public async Task CommitAsync(T item, CancellationToken cancellationToken)
    {
        var pending = new Pending(item, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_pending.Writer.TryWrite(pending))
        {
            throw new InvalidOperationException("The committer is closed.");
        }

        await pending.Done.Task.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        await _loop;
    }

    private async Task LoopAsync()
    {
        var batch = new List<Pending>(_maxBatch);
        while (await _pending.Reader.WaitToReadAsync())
        {
            while (batch.Count < _maxBatch && _pending.Reader.TryRead(out var next))
            {
                batch.Add(next);
            }

            try
            {
                await _commit([.. batch.Select(p => p.Item)]);
                foreach (var item in batch)
                {
                    _committed?.Invoke(item.Item);
                    item.Done.TrySetResult();
                }
            }
            catch (Exception e)
            {
                foreach (var item in batch)
                {
                    item.Done.TrySetException(e);
                }
            }

            batch.Clear();
        }
    }

    private sealed record Pending(T Item, TaskCompletionSource Done);
}
