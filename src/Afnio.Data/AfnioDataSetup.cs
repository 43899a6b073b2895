using Afnio.Data.Jobs;
using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Afnio.Data;

/// <summary>The one place that wires PostgreSQL and Hangfire for every process (API, Worker, migrator).</summary>
public static class AfnioDataSetup
{
    /// <summary>Hangfire's tables live in their own schema, never mapped by EF Core.</summary>
    public const string HangfireSchema = "hangfire";

    /// <summary>Queues are fetched in alphabetical order, so the names carry the priority.</summary>
    public static readonly string[] Queues = ["a_control", "b_default"];

    /// <summary>Reads <c>ConnectionStrings:Postgres</c> or explains how to set it.</summary>
    public static string GetPostgresConnectionString(this IConfiguration configuration) =>
        configuration.GetConnectionString("Postgres") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException(
                "No database configured. Set ConnectionStrings__Postgres (for example " +
                "'Host=127.0.0.1;Port=5432;Database=afnio;Username=afnio;Password=…'), or start the service with scripts/run.sh.");

    /// <summary>Registers <see cref="AfnioDbContext"/> and the Hangfire client (enqueueing only).</summary>
    public static IServiceCollection AddAfnioData(this IServiceCollection services, IConfiguration configuration)
    {
        var connectionString = configuration.GetPostgresConnectionString();
        var budget = ConnectionBudget.Options(configuration);
        // Contexts are pooled: a new one costs a reset, not a service scope and its resolution (about a
        // tenth of the Worker's CPU in a profile of backward jobs). Requests get a scoped one from the same
        // pool; jobs that commit steps concurrently take one context per step from the factory.
        var dataConnectionString = ConnectionBudget.DataConnectionString(configuration);
        services.AddPooledDbContextFactory<AfnioDbContext>(o => ConfigureDbContext(o, dataConnectionString), poolSize: 256);
        services.AddScoped(provider => provider.GetRequiredService<IDbContextFactory<AfnioDbContext>>().CreateDbContext());
        // Each host gets its own storage instance from DI. Hangfire's default registration hands out the
        // process-wide JobStorage.Current, which two hosts in one process (tests) would overwrite.
        // Its pool is sized for the Hangfire servers this process registered (AddAfnioHangfireServer).
        services.AddSingleton<JobStorage>(provider => CreateStorage(connectionString, prepareSchema: false,
            ConnectionBudget.HangfirePoolSize(budget, provider.GetServices<HangfireServerDemand>()), budget.AcquireTimeoutSeconds));
        services.AddHangfire((provider, cfg) => ConfigureHangfire(cfg, provider.GetRequiredService<JobStorage>()));
        services.AddLanguageModels(configuration);
        // Before the process serves anything (hosted services start in order): Afnio:WarmUp (default true).
        if (configuration.GetValue("Afnio:WarmUp", true))
        {
            services.AddHostedService<WarmUpService>();
        }

        return services;
    }

    /// <summary>
    /// The model gateway and what it needs: the Data Protection key ring in PostgreSQL (one application
    /// name, so the API and the Worker decrypt each other's keys), the price table, the per-model limits.
    /// </summary>
    private static void AddLanguageModels(this IServiceCollection services, IConfiguration configuration)
    {
        var protection = services.AddDataProtection().SetApplicationName("Afnio").PersistKeysToDbContext<AfnioDbContext>();
        // With a certificate, the key ring itself is encrypted in the database, so a copy of the database
        // alone does not reveal provider keys. Every process must be given the same certificate.
        if (configuration["Afnio:DataProtection:CertificatePath"] is { Length: > 0 } certificatePath)
        {
            protection.ProtectKeysWithCertificate(System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(
                certificatePath, configuration["Afnio:DataProtection:CertificatePassword"],
                System.Security.Cryptography.X509Certificates.X509KeyStorageFlags.EphemeralKeySet));
        }

        services.Configure<LanguageModels.ModelOptions>(configuration.GetSection(LanguageModels.ModelOptions.Section));
        services.Configure<Domain.Common.OperationLimits>(configuration.GetSection(Domain.Common.OperationLimits.Section));
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(provider => provider.GetRequiredService<IOptions<LanguageModels.ModelOptions>>().Value.BuildPriceTable());
        services.AddSingleton<LanguageModels.ModelKeyProtector>();
        services.AddSingleton<Webhooks.WebhookSecrets>();
        // Bound once for every process: binding an array twice would append it to itself.
        services.Configure<Webhooks.WebhookOptions>(configuration.GetSection(Webhooks.WebhookOptions.Section));
        services.AddSingleton<LanguageModels.ModelLimits>();
        services.AddSingleton<LanguageModels.ModelCallJournal>();
        services.AddSingleton<LanguageModels.OpenAiTransport>();
        services.AddSingleton<LanguageModels.ModelGateway>();
    }

    /// <summary>
    /// Adds a Hangfire server and records its workers, so this process's Hangfire pool is sized for it
    /// (docs/decisions/016-connection-budget.md).
    /// </summary>
    public static IServiceCollection AddAfnioHangfireServer(
        this IServiceCollection services, string name, int workers, Action<BackgroundJobServerOptions> configure)
    {
        services.AddSingleton(new HangfireServerDemand(name, workers));
        services.AddHangfireServer(o =>
        {
            configure(o);
            o.WorkerCount = workers;
        });
        return services;
    }

    public static void ConfigureDbContext(DbContextOptionsBuilder options, string connectionString) =>
        options.UseNpgsql(connectionString, o => o.MigrationsAssembly("Afnio.Migrations"))
               .UseSnakeCaseNamingConvention();

    /// <summary>
    /// Long polling (LISTEN/NOTIFY) must be on in the enqueuing process as well as in the worker, or a
    /// separate worker only sees new jobs at its next poll. Sliding invisibility keeps a long job from
    /// being fetched twice; a short retry policy keeps Hangfire from re-running paid work for hours:
    /// our jobs checkpoint their own steps.
    /// </summary>
    public static IGlobalConfiguration ConfigureHangfire(IGlobalConfiguration cfg, JobStorage storage) => cfg
        .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
        .UseSimpleAssemblyNameTypeSerializer()
        .UseRecommendedSerializerSettings()
        .UseFilter(new AutomaticRetryAttribute { Attempts = 3, DelaysInSeconds = [5, 30, 120] })
        .UseStorage(storage);

    /// <summary>
    /// The Hangfire storage on our PostgreSQL database, in its own schema and connection pool. Its
    /// writes commit without waiting for the disk: every enqueue of ours is followed by a synchronous
    /// commit of the job row (the log is flushed in order, so that makes the enqueue durable too)
    /// before anyone is told the job exists, and anything else Hangfire loses in a database crash
    /// (a fetch, a state change, a retry) is redone by a new fetch or by job recovery.
    /// </summary>
    public static JobStorage CreateStorage(string connectionString, bool prepareSchema, int? maxPoolSize = null, int acquireTimeoutSeconds = 15)
    {
        var sized = maxPoolSize is { } size ? ConnectionBudget.Sized(connectionString, size, acquireTimeoutSeconds) : connectionString;
        var builder = new NpgsqlConnectionStringBuilder(sized) { ApplicationName = "afnio-hangfire" };
        builder.Options = $"{builder.Options} -c synchronous_commit=off".Trim();
        var hangfireConnection = builder.ConnectionString;
        var options = StorageOptions(prepareSchema);
        return new PostgreSqlStorage(new Hangfire.PostgreSql.Factories.NpgsqlConnectionFactory(hangfireConnection, options), options);
    }

    public static PostgreSqlStorageOptions StorageOptions(bool prepareSchema) => new()
    {
        SchemaName = HangfireSchema,
        PrepareSchemaIfNecessary = prepareSchema,
        EnableLongPolling = true,
        QueuePollInterval = TimeSpan.FromSeconds(5),
        UseSlidingInvisibilityTimeout = true,
        InvisibilityTimeout = TimeSpan.FromMinutes(5),
        AllowDegradedModeWithoutStorage = false,
    };
}
