namespace Afnio.Domain.LanguageModels;

/// <summary>Runs model calls side by side, and stops the rest as soon as one fails.</summary>
public static class Concurrent
{
    /// <summary>
    /// Starts <paramref name="count"/> calls at once and returns their results in order. When one fails,
    /// the others are cancelled (so they stop retrying and paying) and the first failure is thrown.
    /// </summary>
    public static async Task<T[]> AllAsync<T>(int count, Func<int, CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(call);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Exception? first = null;
        var tasks = Enumerable.Range(0, count).Select(async i =>
        {
            try
            {
                return await call(i, stop.Token);
            }
            catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
            {
                Interlocked.CompareExchange(ref first, e, null);
                await stop.CancelAsync();
                throw;
            }
        }).ToList();

        try
        {
            return await Task.WhenAll(tasks);
        }
        catch when (first is not null && !cancellationToken.IsCancellationRequested)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
            throw;
        }
    }
}
