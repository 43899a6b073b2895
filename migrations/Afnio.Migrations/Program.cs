using Afnio.Data;
using Afnio.Migrations;
using Microsoft.Extensions.Configuration;

var configuration = new ConfigurationBuilder()
    .AddEnvironmentVariables()
    .AddCommandLine(args)
    .Build();

var connectionString = configuration.GetPostgresConnectionString();
var started = DateTimeOffset.UtcNow;
await DatabaseMigrator.MigrateAsync(connectionString);
Console.WriteLine($"afnio-migrator: database is up to date ({(DateTimeOffset.UtcNow - started).TotalMilliseconds:F0} ms).");
