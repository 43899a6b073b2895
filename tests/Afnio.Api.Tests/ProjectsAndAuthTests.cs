using System.Net.Http.Headers;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

public sealed class ProjectsAndAuthTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task Admin_CreatesProject_AndKey_ShownOnce()
    {
        using var admin = app.CreateAdminClient();
        using var created = await admin.PostAsJsonAsync("/v1/projects", new { name = "  sentiment  " });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var project = await created.ReadJsonAsync();
        var projectId = project.GetProperty("id").GetString()!;
        Assert.StartsWith("proj_", projectId);
        Assert.Equal("project", project.GetProperty("object").GetString());
        Assert.Equal("sentiment", project.GetProperty("name").GetString());

        var key = await admin.PostJsonAsync($"/v1/projects/{projectId}/api_keys", new { name = "ci" });
        var secret = key.GetProperty("key").GetString()!;
        Assert.Matches("^afn_[0-9A-Za-z]{43}$", secret);
        Assert.Equal(secret[^4..], key.GetProperty("hint").GetString());
        Assert.Equal("api_key", key.GetProperty("object").GetString());

        var keys = await admin.GetJsonAsync($"/v1/projects/{projectId}/api_keys");
        var listed = Assert.Single(keys.GetProperty("data").EnumerateArray());
        Assert.False(listed.TryGetProperty("key", out _));
        Assert.Equal(key.GetProperty("id").GetString(), listed.GetProperty("id").GetString());
        Assert.Equal(JsonValueKind.Null, listed.GetProperty("revoked_at").ValueKind);
    }

    [Fact]
    public async Task ApiKeys_AreStoredAsHashesOnly()
    {
        var project = await app.CreateProjectAsync();
        Assert.True(PrefixedId.TryParse(PrefixedId.ApiKey, project.KeyId, out var keyId));

        await using var db = app.CreateDbContext();
        var stored = await db.ApiKeys.SingleAsync(k => k.Id == keyId);
        Assert.Equal(64, stored.SecretHash.Length);
        Assert.DoesNotContain(project.Key, stored.SecretHash);
        Assert.Equal(Auth.ApiKeys.Hash(project.Key), stored.SecretHash);
        var anyColumnHoldsSecret = await db.Database
            .SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM api_keys WHERE api_keys::text LIKE {"%" + project.Key + "%"}")
            .SingleAsync();
        Assert.Equal(0, anyColumnHoldsSecret);
    }

    [Fact]
    public async Task RevokedKey_Answers401_AtOnce()
    {
        var project = await app.CreateProjectAsync();
        (await project.Client.GetAsync("/v1/variables")).EnsureSuccessStatusCode();

        using var admin = app.CreateAdminClient();
        using var revoke = await admin.DeleteAsync($"/v1/projects/{project.Id}/api_keys/{project.KeyId}");
        var revoked = await HttpJson.EnsureSuccessAsync(revoke);
        Assert.NotEqual(JsonValueKind.Null, revoked.GetProperty("revoked_at").ValueKind);

        using var after = await project.Client.GetAsync("/v1/variables");
        await after.AssertProblemAsync(401, "invalid_api_key");
        Assert.Equal("Bearer", after.Headers.WwwAuthenticate.ToString());
    }

    [Fact]
    public async Task SecondKey_OfAProject_SeesTheSameData()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/variables", new { data = "shared" })).GetProperty("id").GetString();
        using var admin = app.CreateAdminClient();
        var second = await admin.PostJsonAsync($"/v1/projects/{project.Id}/api_keys", new { });
        Assert.Equal("default", second.GetProperty("name").GetString());

        using var client = app.CreateClientWithKey(second.GetProperty("key").GetString()!);
        Assert.Equal("shared", (await client.GetJsonAsync($"/v1/variables/{id}")).GetProperty("data").GetString());
    }

    [Theory]
    [InlineData(null, "missing_api_key")]
    [InlineData("Bearer afn_notARealKey000000000000000000000000000000", "invalid_api_key")]
    [InlineData("Bearer something-else", "invalid_api_key")]
    [InlineData("Basic dXNlcjpwYXNz", "invalid_api_key")]
    public async Task ProjectCalls_WithoutAValidKey_Answer401(string? authorization, string code)
    {
        using var client = app.CreateClient();
        if (authorization is not null)
        {
            client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", authorization);
        }

        using var response = await client.GetAsync("/v1/variables");
        await response.AssertProblemAsync(401, code);
    }

    [Fact]
    public async Task AdminCalls_WithAProjectKey_Answer401_AndProjectCalls_WithTheAdminKey_Answer401()
    {
        var project = await app.CreateProjectAsync();
        await (await project.Client.GetAsync("/v1/projects")).AssertProblemAsync(401, "admin_key_required");
        await (await project.Client.PostAsJsonAsync("/v1/projects", new { name = "x" })).AssertProblemAsync(401, "admin_key_required");

        using var admin = app.CreateAdminClient();
        await (await admin.GetAsync("/v1/variables")).AssertProblemAsync(401, "project_key_required");
    }

    [Fact]
    public async Task UnknownProject_Answers404()
    {
        using var admin = app.CreateAdminClient();
        await (await admin.GetAsync($"/v1/projects/{PrefixedId.Format(PrefixedId.Project, Guid.CreateVersion7())}"))
            .AssertProblemAsync(404, "project_not_found");
        await (await admin.PostAsJsonAsync("/v1/projects/not-an-id/api_keys", new { })).AssertProblemAsync(404, "project_not_found");
    }

    [Fact]
    public async Task RevokingAnotherProjectsKey_Answers404_AndLeavesItWorking()
    {
        var mine = await app.CreateProjectAsync();
        var theirs = await app.CreateProjectAsync();
        using var admin = app.CreateAdminClient();

        await (await admin.DeleteAsync($"/v1/projects/{mine.Id}/api_keys/{theirs.KeyId}")).AssertProblemAsync(404, "api_key_not_found");

        (await theirs.Client.GetAsync("/v1/variables")).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task Projects_ArePagedByTheAdmin()
    {
        using var admin = app.CreateAdminClient();
        var a = (await admin.PostJsonAsync("/v1/projects", new { name = "a" })).GetProperty("id").GetString();
        var b = (await admin.PostJsonAsync("/v1/projects", new { name = "b" })).GetProperty("id").GetString();

        // Other tests create projects at the same time, so look for order, not for neighbours.
        var ascending = (await admin.GetJsonAsync($"/v1/projects?order=asc&after={a}&limit=100"))
            .GetProperty("data").EnumerateArray().Select(p => p.GetProperty("id").GetString()!).ToList();
        Assert.Contains(b, ascending);
        Assert.DoesNotContain(a, ascending);
        Assert.Equal(ascending.Order(StringComparer.Ordinal), ascending);
        var descending = (await admin.GetJsonAsync($"/v1/projects?after={b}&limit=100"))
            .GetProperty("data").EnumerateArray().Select(p => p.GetProperty("id").GetString()!).ToList();
        Assert.Contains(a, descending);
        Assert.DoesNotContain(b, descending);
        Assert.Equal(descending.OrderDescending(StringComparer.Ordinal), descending);
    }

    [Fact]
    public async Task AuthorizationScheme_IsCaseInsensitive()
    {
        var project = await app.CreateProjectAsync();
        using var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("bearer", project.Key);

        (await client.GetAsync("/v1/variables")).EnsureSuccessStatusCode();
    }
}
