using System.Net.Http.Headers;

namespace Afnio.Api.Tests.Sdk;

/// <summary>A user made through the admin API, with a user key and an HTTP client that sends it as the afnio client does.</summary>
public sealed record SdkUser(string Id, string Username, string Slug, string KeyId, string Key, HttpClient Client)
{
    /// <summary>Creates a user with a unique name and a key; every test works in its own namespace.</summary>
    public static async Task<SdkUser> CreateAsync(HttpClient admin, string prefix = "user")
    {
        var username = $"{prefix}-{Guid.NewGuid():N}"[..24];
        var user = await admin.PostJsonAsync("/v1/users", new { username, email = $"{username}@example.com" });
        var id = user.GetProperty("id").GetString()!;
        var key = await admin.PostJsonAsync($"/v1/users/{id}/api_keys", new { name = "tests" });
        var secret = key.GetProperty("key").GetString()!;
        var client = new HttpClient { BaseAddress = admin.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Api-Key", secret);
        return new SdkUser(id, username, user.GetProperty("slug").GetString()!, key.GetProperty("id").GetString()!, secret, client);
    }

    /// <summary>What afnio's <c>tellurio.init(namespace, project)</c> does over HTTP: get or create the project, then create a run.</summary>
    public async Task<(JsonElement Project, JsonElement Run)> InitAsync(string projectName, string? runName = null, string? inNamespace = null)
    {
        var ns = inNamespace ?? Slug;
        var slug = Afnio.Data.Accounts.Slugs.Slugify(projectName);
        using var get = await Client.GetAsync($"/api/v0/{ns}/projects/{slug}/");
        var project = get.StatusCode == HttpStatusCode.NotFound
            ? await Client.PostJsonAsync($"/api/v0/{ns}/projects/", new { display_name = projectName, visibility = "RESTRICTED" })
            : await HttpJson.EnsureSuccessAsync(get);
        var run = await Client.PostJsonAsync($"/api/v0/{ns}/projects/{slug}/runs/",
            runName is null ? new Dictionary<string, string> { ["status"] = "RUNNING" } : new Dictionary<string, string> { ["name"] = runName, ["status"] = "RUNNING" });
        return (project, run);
    }
}
