using System.Collections.Concurrent;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Afnio.Api.Tests.Infrastructure;

/// <summary>
/// The API with an in-process worker, a fake OpenAI-compatible server on loopback for its models,
/// quick retries, and every log line it writes kept for inspection.
/// </summary>
public class ModelWorkerApp : WorkerApp
{
    public const string ApiKey = "sk-test-SECRET-0123456789abcdef";

    public FakeOpenAiServer Fake { get; private set; } = null!;

    /// <summary>Every formatted log message (with exception text) the host wrote, at any level.</summary>
    public ConcurrentQueue<string> Logs { get; } = new();

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Fake = await FakeOpenAiServer.StartAsync();
    }

    protected override async Task DisposeFixtureAsync()
    {
        await base.DisposeFixtureAsync();
        if (Fake is not null)
        {
            await Fake.DisposeAsync();
        }
    }

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>(base.Settings)
    {
        ["Afnio:Models:RetryBaseDelayMs"] = "20",
        ["Afnio:Models:MaxRetryDelaySeconds"] = "1",
        ["Afnio:Models:NetworkTimeoutSeconds"] = "2",
        ["Afnio:Models:MaxAttempts"] = "4",
        ["Afnio:Models:AllowPrivateAddresses"] = "true", // the fake provider listens on loopback
        ["Logging:LogLevel:Default"] = "Trace",
    };

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Trace).AddProvider(new CapturingLoggerProvider(Logs)));
    }

    /// <summary>Registers a model client on the fake server and returns its id.</summary>
    public async Task<string> RegisterModelAsync(TestProject project, object? defaults = null, int? maxConcurrency = null, int? requestsPerMinute = null)
    {
        var model = await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = Fake.Endpoint.ToString(),
            api_key = ApiKey,
            default_completion_args = defaults ?? new { model = "gpt-4o" },
            max_concurrency = maxConcurrency,
            requests_per_minute = requestsPerMinute,
        });
        return model.GetProperty("id").GetString()!;
    }

    /// <summary>Registers a model client and makes it the project's backward model.</summary>
    public async Task<string> UseBackwardModelAsync(TestProject project, object? completionArgs = null)
    {
        var model = await RegisterModelAsync(project);
        await project.Client.PutJsonAsync("/v1/backward_model",
            new { model_id = model, completion_args = completionArgs ?? new { model = "gpt-4o", temperature = 0 } });
        return model;
    }

    private sealed class CapturingLoggerProvider(ConcurrentQueue<string> sink) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(sink, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<string> sink, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                sink.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
        }
    }
}
