using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Afnio.Data;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Afnio.Api.Tests.Infrastructure;

/// <summary>The real API in memory, against the run's real PostgreSQL database.</summary>
public class AfnioApiFactory : WebApplicationFactory<Program>, IAsyncLifetime
{
    public const string AdminKey = "test-admin-key-0123456789";

    public string ConnectionString { get; private set; } = string.Empty;

    /// <summary>Extra settings a derived factory wants (configuration keys with ':').</summary>
    protected virtual IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>();

    public virtual async Task InitializeAsync() => ConnectionString = await TestDatabase.GetConnectionStringAsync();

    Task IAsyncLifetime.DisposeAsync() => DisposeFixtureAsync();

    /// <summary>Stops the host; fixtures that own more (a fake model server) stop it too.</summary>
    protected virtual Task DisposeFixtureAsync() => base.DisposeAsync().AsTask();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.UseSetting("ConnectionStrings:Postgres", ConnectionString);
        builder.UseSetting("Afnio:AdminKey", AdminKey);
        builder.UseSetting("Afnio:RateLimit:TokenLimit", "100000");
        builder.UseSetting("Afnio:RateLimit:TokensPerSecond", "100000");
        // Every test makes keys of its own, all from one address: each new key costs a lookup.
        builder.UseSetting("Afnio:KeyLookups:BurstPerAddress", "100000");
        builder.UseSetting("Afnio:KeyLookups:PerSecondPerAddress", "100000");
        // Schedule firings get their own Hangfire server; only the schedule tests need one.
        builder.UseSetting("Afnio:Schedules:RunFirings", "false");
        // In-process hosts start warm enough; the separate processes of the crash tests warm up as in production.
        builder.UseSetting("Afnio:WarmUp", "false");
        foreach (var (key, value) in Settings)
        {
            builder.UseSetting(key, value);
        }
    }

    public HttpClient CreateAdminClient() => CreateClientWithKey(AdminKey);

    public HttpClient CreateClientWithKey(string key)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>Creates a fresh project and key through the admin API; each test works in its own project.</summary>
    public async Task<TestProject> CreateProjectAsync(string name = "test project")
    {
        using var admin = CreateAdminClient();
        var project = await admin.PostJsonAsync("/v1/projects", new { name });
        var projectId = project.GetProperty("id").GetString()!;
        var key = await admin.PostJsonAsync($"/v1/projects/{projectId}/api_keys", new { name = "tests" });
        return new TestProject(projectId, key.GetProperty("id").GetString()!, key.GetProperty("key").GetString()!,
            CreateClientWithKey(key.GetProperty("key").GetString()!));
    }

    /// <summary>A DbContext on the test database, for arranging states the API cannot create yet and for checking storage.</summary>
    public virtual AfnioDbContext CreateDbContext() => TestDatabase.CreateDbContext(ConnectionString);
}

public sealed record TestProject(string Id, string KeyId, string Key, HttpClient Client);

public static class HttpJson
{
    public static async Task<JsonElement> ReadJsonAsync(this HttpResponseMessage response) =>
        await response.Content.ReadFromJsonAsync<JsonElement>();

    /// <summary>POSTs JSON and returns the body, failing the test with the body when the status is not 2xx.</summary>
    public static async Task<JsonElement> PostJsonAsync(this HttpClient client, string path, object body)
    {
        using var response = await client.PostAsJsonAsync(path, body);
        return await EnsureSuccessAsync(response);
    }

    public static async Task<JsonElement> PutJsonAsync(this HttpClient client, string path, object body)
    {
        using var response = await client.PutAsJsonAsync(path, body);
        return await EnsureSuccessAsync(response);
    }

    public static async Task<JsonElement> GetJsonAsync(this HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        return await EnsureSuccessAsync(response);
    }

    public static async Task<JsonElement> EnsureSuccessAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} {response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {Shorten(text)}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static string Shorten(string text) => text.Length > 600 ? text[..600] + "…" : text;

    /// <summary>Sends raw text as JSON (for malformed bodies).</summary>
    public static Task<HttpResponseMessage> SendRawAsync(this HttpClient client, HttpMethod method, string path, string? body,
        string contentType = "application/json")
    {
        var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        }

        return client.SendAsync(request);
    }

    /// <summary>Asserts a ProblemDetails response with the given status and code, and returns it.</summary>
    public static async Task<JsonElement> AssertProblemAsync(this HttpResponseMessage response, int status, string code)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status} {code}, got {(int)response.StatusCode}: {Shorten(text)}");
        Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json",
            $"expected a problem document, got {response.Content.Headers.ContentType}: {Shorten(text)}");
        var problem = JsonDocument.Parse(text).RootElement.Clone();
        Assert.True(problem.GetProperty("code").GetString() == code, $"expected code {code}: {Shorten(text)}");
        Assert.Equal(status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("request_id").GetString()));
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("detail").GetString()));
        return problem;
    }
}
