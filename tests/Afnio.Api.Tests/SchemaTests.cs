using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

public sealed class SchemaTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public void TheModel_HasNoChangesMissingFromTheMigrations()
    {
        using var db = app.CreateDbContext();
        Assert.False(db.Database.HasPendingModelChanges(),
            "The EF model changed without a migration: add one with 'dotnet ef migrations add <Intent>' (see README).");
    }

    [Fact]
    public async Task TheMigrator_AppliedEveryMigration_AndInstalledHangfire()
    {
        await using var db = app.CreateDbContext();
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        var hangfireTables = await db.Database
            .SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM information_schema.tables WHERE table_schema = 'hangfire'")
            .SingleAsync();
        Assert.True(hangfireTables >= 10, $"{hangfireTables} Hangfire tables");
    }
}
