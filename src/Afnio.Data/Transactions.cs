using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace Afnio.Data;

/// <summary>
/// Transactions that compose. A request that carries an <c>Idempotency-Key</c> runs inside one
/// <em>request transaction</em> that also stores its response, so the work and the answer commit
/// together. Code that wants a transaction of its own calls <see cref="BeginOrJoinTransactionAsync"/>:
/// with no transaction open it gets a real one; inside another it gets a savepoint, so its commit
/// keeps its writes for the outer commit and its rollback undoes only its own writes.
/// </summary>
public static class Transactions
{
    /// <summary>Opens the transaction of a whole request, committed with <see cref="DbTransactionScope.CommitAsync"/>.</summary>
    public static async Task<DbTransactionScope> BeginRequestTransactionAsync(this AfnioDbContext db, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(db);
        return new DbTransactionScope(db, await db.Database.BeginTransactionAsync(ct), savepoint: null);
    }

    /// <summary>A transaction of its own, or a savepoint inside the one already open.</summary>
    public static async Task<DbTransactionScope> BeginOrJoinTransactionAsync(this AfnioDbContext db, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(db);
        if (db.Database.CurrentTransaction is { } outer)
        {
            var savepoint = $"scope_{Guid.NewGuid():N}";
            await outer.CreateSavepointAsync(savepoint, ct);
            return new DbTransactionScope(db, outer, savepoint);
        }

        return new DbTransactionScope(db, await db.Database.BeginTransactionAsync(ct), savepoint: null);
    }
}

/// <summary>A transaction, or a savepoint in an outer one; disposing it uncommitted rolls its writes back.</summary>
public sealed class DbTransactionScope : IAsyncDisposable
{
    private readonly AfnioDbContext _db;
    private readonly IDbContextTransaction _transaction;
    private readonly string? _savepoint;
    private bool _done;

    internal DbTransactionScope(AfnioDbContext db, IDbContextTransaction transaction, string? savepoint)
    {
        _db = db;
        _transaction = transaction;
        _savepoint = savepoint;
    }

    /// <summary>True when this scope is a savepoint: its commit is the outer transaction's.</summary>
    public bool IsJoined => _savepoint is not null;

    /// <summary>Commits (a savepoint is released: its writes commit with the outer transaction).</summary>
    public async Task CommitAsync(CancellationToken ct)
    {
        _done = true;
        if (_savepoint is not null)
        {
            await _transaction.ReleaseSavepointAsync(_savepoint, ct);
            return;
        }

        await _transaction.CommitAsync(ct);
    }

    /// <summary>Undoes this scope's writes (only those since the savepoint, for a joined scope).</summary>
    public async Task RollbackAsync(CancellationToken ct)
    {
        _done = true;
        if (_savepoint is not null)
        {
            await _transaction.RollbackToSavepointAsync(_savepoint, ct);
            return;
        }

        await _transaction.RollbackAsync(ct);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_done && _db.Database.CurrentTransaction == _transaction)
        {
            await RollbackAsync(CancellationToken.None);
        }

        if (_savepoint is null)
        {
            await _transaction.DisposeAsync();
        }
    }
}
