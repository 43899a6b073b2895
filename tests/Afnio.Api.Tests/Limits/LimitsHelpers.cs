using System.Diagnostics.Metrics;
using System.Net.Http.Headers;
using Afnio.Api.Auth;
using Afnio.Api.Jobs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Afnio.Api.Tests.Limits;

/// <summary>
/// An API host for the limits tests. The in-memory test server has no client address; a request may
/// name one in <see cref="ClientAddressHeader"/>, so tests can act as different clients.
/// </summary>
public abstract class LimitsApp : AfnioApiFactory
{
    public const string ClientAddressHeader = "X-Test-Client-Address";

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        // Streams end on revocation and wake on events through the listener: wait until it listens.
        var signals = Services.GetRequiredService<JobSignals>();
        await Eventually.UntilAsync(() => Task.FromResult(signals.Listening), TimeSpan.FromSeconds(30), () => "The job signal listener did not connect.");
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureServices(services => services.AddSingleton<IStartupFilter, ClientAddressFilter>());
    }

    /// <summary>A client that sends its requests from <paramref name="address"/>, with <paramref name="key"/> if given.</summary>
    public HttpClient CreateClientFrom(string address, string? key = null)
    {
        var client = key is null ? CreateClient() : CreateClientWithKey(key);
        client.DefaultRequestHeaders.Add(ClientAddressHeader, address);
        return client;
    }

    private sealed class ClientAddressFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((http, nextMiddleware) =>
            {
                if (http.Request.Headers[ClientAddressHeader] is [{ } address] && IPAddress.TryParse(address, out var ip))
                {
                    http.Connection.RemoteIpAddress = ip;
                }

                return nextMiddleware(http);
            });
            next(app);
        };
    }
}

/// <summary>Counts the key lookups one host makes in the database, from its <c>afnio.api_key.lookups</c> metric.</summary>
public sealed class KeyLookupCount : IDisposable
{
    private readonly MeterListener _listener = new();
    private long _count;

    public KeyLookupCount(IServiceProvider services)
    {
        // Meters from the host's own factory only: other hosts in this test process count their own.
        var meters = services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == meters && instrument.Meter.Name == KeyLookupLimiter.MeterName
                && instrument.Name == KeyLookupLimiter.LookupsCounter)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _count, value));
        _listener.Start();
    }

    public long Value => Interlocked.Read(ref _count);

    public void Dispose() => _listener.Dispose();
}

/// <summary>An open Server-Sent Events response, read one event at a time.</summary>
public sealed class JobEventReader : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private JobEventReader(HttpResponseMessage response, StreamReader reader) => (_response, _reader) = (response, reader);

    public sealed record ServerEvent(string Id, string Type, JsonElement Data);

    /// <summary>Opens a job's event stream; fails the test unless it is one.</summary>
    public static async Task<JobEventReader> OpenAsync(HttpClient client, string jobId, string? lastEventId = null)
    {
        var (stream, refused) = await TryOpenAsync(client, jobId, lastEventId);
        if (stream is not null)
        {
            return stream;
        }

        using (refused)
        {
            Assert.Fail($"expected an event stream, got {(int)refused!.StatusCode}: {await refused.Content.ReadAsStringAsync()}");
            throw new InvalidOperationException();
        }
    }

    /// <summary>Opens a job's event stream, or returns the response when it is not one (a problem).</summary>
    public static async Task<(JobEventReader? Stream, HttpResponseMessage? Refused)> TryOpenAsync(HttpClient client, string jobId, string? lastEventId = null)
    {
        var response = await SendAsync(client, jobId, lastEventId);
        if (response.StatusCode != HttpStatusCode.OK || response.Content.Headers.ContentType?.MediaType != "text/event-stream")
        {
            return (null, response);
        }

        return (new JobEventReader(response, new StreamReader(await response.Content.ReadAsStreamAsync())), null);
    }

    /// <summary>The next event, or null when the server ended the stream. Gives up (fails) after a minute.</summary>
    public async Task<ServerEvent?> NextAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        string? id = null, type = null, data = null;
        while (await _reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.Length == 0)
            {
                if (data is not null)
                {
                    return new ServerEvent(id!, type!, JsonDocument.Parse(data).RootElement.Clone());
                }

                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var (field, value) = (line[..colon], line[(colon + 1)..].TrimStart());
            switch (field)
            {
                case "id": id = value; break;
                case "event": type = value; break;
                case "data": data = value; break;
            }
        }

        return null;
    }

    /// <summary>Every event until the server ends the stream.</summary>
    public async Task<List<ServerEvent>> ReadToEndAsync()
    {
        var events = new List<ServerEvent>();
        while (await NextAsync() is { } e)
        {
            events.Add(e);
        }

        return events;
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        return ValueTask.CompletedTask;
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, string jobId, string? lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{jobId}/events");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        return client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }
}

public static class LimitsJobs
{
    /// <summary>A backward pass that stays queued (these hosts run no worker): its stream waits after job.created.</summary>
    public static async Task<string> QueuedJobAsync(this TestProject project)
    {
        var x = await project.VariableAsync("x", "x", requiresGrad: true);
        var z = await project.OutputAsync("add", new { x, y = x });
        var job = await project.Client.PostJsonAsync("/v1/backward", new { variables = new[] { z }, retain_graph = true });
        return job.GetProperty("id").GetString()!;
    }

    /// <summary>Another key of the project, with a client of its own.</summary>
    public static async Task<TestProject> SecondKeyAsync(this AfnioApiFactory app, TestProject project)
    {
        using var admin = app.CreateAdminClient();
        var key = await admin.PostJsonAsync($"/v1/projects/{project.Id}/api_keys", new { name = "another" });
        var secret = key.GetProperty("key").GetString()!;
        return project with { KeyId = key.GetProperty("id").GetString()!, Key = secret, Client = app.CreateClientWithKey(secret) };
    }
}
