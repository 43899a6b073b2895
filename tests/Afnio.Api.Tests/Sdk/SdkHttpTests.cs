using System.Text.RegularExpressions;
using Afnio.Api.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests.Sdk;

/// <summary>
/// The afnio client's HTTP API (<c>/api/v0</c>, semantics §8.7) and the admin API for users,
/// organizations and user keys: shapes the client indexes, statuses it checks, and isolation.
/// </summary>
public sealed partial class SdkHttpTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [GeneratedRegex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")]
    private static partial Regex IsoDate();

    private async Task<SdkUser> UserAsync()
    {
        using var admin = app.CreateAdminClient();
        var user = await SdkUser.CreateAsync(admin);
        return (user with { Client = app.CreateClient() }).WithKey();
    }

    [Fact]
    public async Task Admin_CreatesUser_WithSlugFromUsername_AndAKeyShownOnce()
    {
        using var admin = app.CreateAdminClient();
        var name = $"Zoë Ångström {Guid.NewGuid():N}"[..22];
        var user = await admin.PostJsonAsync("/v1/users", new { username = name, email = "zoe@example.com" });
        Assert.StartsWith("user_", user.GetProperty("id").GetString());
        Assert.Equal(Afnio.Data.Accounts.Slugs.Slugify(name), user.GetProperty("slug").GetString());
        Assert.StartsWith("zoe-angstrom-", user.GetProperty("slug").GetString());

        var id = user.GetProperty("id").GetString()!;
        var key = await admin.PostJsonAsync($"/v1/users/{id}/api_keys", new { name = "laptop" });
        Assert.Matches("^afu_[0-9A-Za-z]{43}$", key.GetProperty("key").GetString());
        var listed = Assert.Single((await admin.GetJsonAsync($"/v1/users/{id}/api_keys")).GetProperty("data").EnumerateArray());
        Assert.False(listed.TryGetProperty("key", out _));

        await using var db = app.CreateDbContext();
        var secret = key.GetProperty("key").GetString()!;
        var stored = await db.Database.SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM user_api_keys WHERE user_api_keys::text LIKE {"%" + secret + "%"}").SingleAsync();
        Assert.Equal(0, stored);
    }

    [Theory]
    [InlineData("""{"username": "api", "email": "a@example.com"}""", 400, "reserved_slug")]
    [InlineData("""{"username": "!!!", "email": "a@example.com"}""", 400, "invalid_username")]
    [InlineData("""{"username": "someone", "email": "not an email"}""", 400, "invalid_email")]
    [InlineData("""{"username": "someone"}""", 400, "missing_field")]
    [InlineData("""{"username": "", "email": "a@example.com"}""", 400, "invalid_username")]
    public async Task CreateUser_RefusesBadInput(string body, int status, string code)
    {
        using var admin = app.CreateAdminClient();
        using var response = await admin.SendRawAsync(HttpMethod.Post, "/v1/users", body);
        await response.AssertProblemAsync(status, code);
    }

    [Fact]
    public async Task UsernamesAndSlugs_AreUnique_AcrossUsersAndOrganizations()
    {
        using var admin = app.CreateAdminClient();
        var name = $"taken-{Guid.NewGuid():N}"[..20];
        await admin.PostJsonAsync("/v1/users", new { username = name, email = "a@example.com" });

        using var sameName = await admin.PostAsJsonAsync("/v1/users", new { username = name, email = "b@example.com" });
        await sameName.AssertProblemAsync(409, "username_taken");
        using var sameSlug = await admin.PostAsJsonAsync("/v1/users", new { username = name.ToUpperInvariant(), email = "b@example.com" });
        await sameSlug.AssertProblemAsync(409, "namespace_taken");
        using var organization = await admin.PostAsJsonAsync("/v1/organizations", new { slug = name, display_name = "Taken" });
        await organization.AssertProblemAsync(409, "namespace_taken");
    }

    [Fact]
    public async Task UserKeys_AreRefusedByTheV1Api_AndProjectKeysByV0()
    {
        var user = await UserAsync();
        using var v1 = await user.Client.GetAsync("/v1/variables");
        await v1.AssertProblemAsync(401, "project_key_required");

        var project = await app.CreateProjectAsync();
        using var v0 = await project.Client.GetAsync("/api/v0/verify-api-key/");
        await v0.AssertProblemAsync(401, "user_key_required");
        using var admin = app.CreateAdminClient();
        using var adminV0 = await admin.GetAsync("/api/v0/verify-api-key/");
        await adminV0.AssertProblemAsync(401, "user_key_required");
    }

    [Fact]
    public async Task VerifyApiKey_AnswersTheUser_AndRefusesBadOrRevokedKeys()
    {
        var user = await UserAsync();
        var verified = await user.Client.GetJsonAsync("/api/v0/verify-api-key/");
        Assert.Equal(user.Username, verified.GetProperty("username").GetString());
        Assert.Equal($"{user.Username}@example.com", verified.GetProperty("email").GetString());

        using var bad = app.CreateClient();
        bad.DefaultRequestHeaders.Add("Authorization", "Api-Key None");
        using var badResponse = await bad.GetAsync("/api/v0/verify-api-key/");
        Assert.Equal(HttpStatusCode.Unauthorized, badResponse.StatusCode);

        using var admin = app.CreateAdminClient();
        (await admin.DeleteAsync($"/v1/users/{user.Id}/api_keys/{user.KeyId}")).EnsureSuccessStatusCode();
        using var revoked = await user.Client.GetAsync("/api/v0/verify-api-key/");
        Assert.Equal(HttpStatusCode.Unauthorized, revoked.StatusCode);
    }

    [Fact]
    public async Task Projects_GetOrCreateBySlug_WithEveryKeyTheClientReads()
    {
        var user = await UserAsync();
        using var missing = await user.Client.GetAsync($"/api/v0/{user.Slug}/projects/facility-support/");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        using var created = await user.Client.PostAsJsonAsync($"/api/v0/{user.Slug}/projects/", new { display_name = "Facility Support", visibility = "RESTRICTED" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var project = await created.ReadJsonAsync();
        Assert.Equal("facility-support", project.GetProperty("slug").GetString());
        Assert.Equal("Facility Support", project.GetProperty("display_name").GetString());
        Assert.Equal("OWNER", project.GetProperty("role").GetString());
        Assert.Equal("RESTRICTED", project.GetProperty("visibility").GetString());
        Assert.Matches(IsoDate(), project.GetProperty("date_created").GetString());
        foreach (var key in new[] { "uuid", "last_run_date", "org_uuid", "org_display_name", "org_slug" })
        {
            Assert.True(project.TryGetProperty(key, out _), key);
        }

        var fetched = await user.Client.GetJsonAsync($"/api/v0/{user.Slug}/projects/facility-support/");
        Assert.Equal(project.GetProperty("uuid").GetString(), fetched.GetProperty("uuid").GetString());
        Assert.Equal(JsonValueKind.Null, fetched.GetProperty("role").ValueKind);

        using var twice = await user.Client.PostAsJsonAsync($"/api/v0/{user.Slug}/projects/", new { display_name = "facility support!", visibility = "TEAM" });
        await twice.AssertProblemAsync(409, "project_slug_taken");

        // The same project through the admin API: an ordinary project with its namespace and slug.
        using var admin = app.CreateAdminClient();
        var v1 = await admin.GetJsonAsync($"/v1/projects/{project.GetProperty("id").GetString()}");
        Assert.Equal(user.Slug, v1.GetProperty("namespace").GetString());
        Assert.Equal("facility-support", v1.GetProperty("slug").GetString());
    }

    [Theory]
    [InlineData("Café Déjà Vu", "cafe-deja-vu")]
    [InlineData("Test Project", "test-project")]
    [InlineData("  Straße & Co.  ", "strasse-co")]
    public async Task ProjectSlugs_AreWhatTheClientComputes(string name, string slug)
    {
        var user = await UserAsync();
        var project = await user.Client.PostJsonAsync($"/api/v0/{user.Slug}/projects/", new { display_name = name, visibility = "TEAM" });
        Assert.Equal(slug, project.GetProperty("slug").GetString());
        (await user.Client.GetAsync($"/api/v0/{user.Slug}/projects/{slug}/")).EnsureSuccessStatusCode();
    }

    [Theory]
    [InlineData("""{"display_name": "x", "visibility": "PUBLIC"}""", 400, "invalid_visibility")]
    [InlineData("""{"display_name": "", "visibility": "TEAM"}""", 400, "invalid_name")]
    [InlineData("""{"display_name": "---", "visibility": "TEAM"}""", 400, "invalid_name")]
    [InlineData("""{"visibility": "TEAM"}""", 400, "missing_field")]
    [InlineData("""{"display_name": "x", "colour": "red"}""", 400, "unknown_field")]
    [InlineData("""[1, 2]""", 400, "invalid_type")]
    public async Task CreateProject_RefusesBadInput(string body, int status, string code)
    {
        var user = await UserAsync();
        using var response = await user.Client.SendRawAsync(HttpMethod.Post, $"/api/v0/{user.Slug}/projects/", body);
        await response.AssertProblemAsync(status, code);
    }

    [Fact]
    public async Task AnotherUsersNamespace_IsNotFound_ForEveryCall()
    {
        var owner = await UserAsync();
        var other = await UserAsync();
        var (_, run) = await owner.InitAsync("Private Work");
        var uuid = run.GetProperty("uuid").GetString();

        foreach (var (method, path) in new[]
        {
            (HttpMethod.Get, $"/api/v0/{owner.Slug}/projects/private-work/"),
            (HttpMethod.Delete, $"/api/v0/{owner.Slug}/projects/private-work/"),
            (HttpMethod.Get, $"/api/v0/{owner.Slug}/projects/private-work/runs/"),
            (HttpMethod.Get, $"/api/v0/{owner.Slug}/projects/private-work/runs/{uuid}/metrics/"),
            (HttpMethod.Get, $"/{owner.Slug}/projects/private-work/runs/{Afnio.Data.Accounts.Slugs.Slugify(run.GetProperty("name").GetString()!)}/"),
        })
        {
            using var response = await other.Client.SendAsync(new HttpRequestMessage(method, path));
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{method} {path}: {(int)response.StatusCode}");
        }

        using var create = await other.Client.PostAsJsonAsync($"/api/v0/{owner.Slug}/projects/", new { display_name = "Intruder", visibility = "TEAM" });
        await create.AssertProblemAsync(404, "namespace_not_found");
        using var patch = await other.Client.PatchAsJsonAsync($"/api/v0/{owner.Slug}/projects/private-work/runs/{uuid}/", new { status = "FAILED" });
        Assert.Equal(HttpStatusCode.NotFound, patch.StatusCode);
        (await owner.Client.GetAsync($"/api/v0/{owner.Slug}/projects/private-work/")).EnsureSuccessStatusCode();
        var runs = await owner.Client.GetJsonAsync($"/api/v0/{owner.Slug}/projects/private-work/runs/");
        Assert.Equal("RUNNING", runs[0].GetProperty("status").GetString());
    }

    [Fact]
    public async Task OrganizationMembers_ReachItsProjects_OthersDoNot()
    {
        using var admin = app.CreateAdminClient();
        var slug = $"org-{Guid.NewGuid():N}"[..16];
        var organization = await admin.PostJsonAsync("/v1/organizations", new { slug, display_name = "Tellurio Labs" });
        var member = await UserAsync();
        var outsider = await UserAsync();
        await admin.PostJsonAsync($"/v1/organizations/{organization.GetProperty("id").GetString()}/members", new { user_id = member.Id });

        var (project, run) = await member.InitAsync("Shared Prompts", "first", slug);
        Assert.Equal(organization.GetProperty("id").GetString()![4..], project.GetProperty("org_uuid").GetString()!.Replace("-", string.Empty, StringComparison.Ordinal));
        Assert.Equal(slug, project.GetProperty("org_slug").GetString());
        Assert.Equal("Tellurio Labs", project.GetProperty("org_display_name").GetString());
        Assert.Equal(member.Username, run.GetProperty("user").GetProperty("username").GetString());

        using var hidden = await outsider.Client.GetAsync($"/api/v0/{slug}/projects/shared-prompts/");
        Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);

        using var removed = await admin.DeleteAsync($"/v1/organizations/{organization.GetProperty("id").GetString()}/members/{member.Id}");
        removed.EnsureSuccessStatusCode();
        using var gone = await member.Client.GetAsync($"/api/v0/{slug}/projects/shared-prompts/");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Runs_AreClientDrivenRuns_WithAfniosStatusesAndNames()
    {
        var user = await UserAsync();
        var (_, first) = await user.InitAsync("Runs Project", "test_run");
        var (_, second) = await user.InitAsync("Runs Project", "test_run");
        var (_, third) = await user.InitAsync("Runs Project", "test_run");
        Assert.Equal("test_run", first.GetProperty("name").GetString());
        Assert.Equal("test_run_1", second.GetProperty("name").GetString());
        Assert.Equal("test_run_2", third.GetProperty("name").GetString());
        var (_, generated) = await user.InitAsync("Runs Project");
        Assert.Matches("^[a-z]+_[a-z]+_[0-9]+$", generated.GetProperty("name").GetString());
        Assert.Equal("RUNNING", first.GetProperty("status").GetString());
        Assert.Matches(IsoDate(), first.GetProperty("date_updated").GetString());
        Assert.Equal("runs-project", first.GetProperty("project").GetProperty("slug").GetString());

        var path = $"/api/v0/{user.Slug}/projects/runs-project/runs/{first.GetProperty("uuid").GetString()}/";
        using var bad = await user.Client.PatchAsJsonAsync(path, new { status = "DONE" });
        await bad.AssertProblemAsync(400, "invalid_status");
        for (var i = 0; i < 2; i++)
        {
            using var finish = await user.Client.PatchAsJsonAsync(path, new { status = "COMPLETED" });
            Assert.Equal("COMPLETED", (await HttpJson.EnsureSuccessAsync(finish)).GetProperty("status").GetString());
        }

        // The same run through the v1 API, with a project key for it.
        using var admin = app.CreateAdminClient();
        var key = await admin.PostJsonAsync($"/v1/projects/proj_{first.GetProperty("project").GetProperty("uuid").GetString()!.Replace("-", string.Empty, StringComparison.Ordinal)}/api_keys", new { });
        using var v1 = app.CreateClientWithKey(key.GetProperty("key").GetString()!);
        var run = await v1.GetJsonAsync($"/v1/runs/{first.GetProperty("id").GetString()}");
        Assert.Equal("completed", run.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Metrics_DefaultToTheNextStep_AndTakeWhatFloatTakes()
    {
        var user = await UserAsync();
        var (_, run) = await user.InitAsync("Metrics Project", "m");
        var path = $"/api/v0/{user.Slug}/projects/metrics-project/runs/{run.GetProperty("uuid").GetString()}/metrics/";
        async Task<JsonElement> LogAsync(object body)
        {
            using var response = await user.Client.PostAsJsonAsync(path, body);
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            return await response.ReadJsonAsync();
        }

        Assert.Equal(0, (await LogAsync(new { name = "loss", value = 2.5 })).GetProperty("step").GetInt64());
        Assert.Equal(1, (await LogAsync(new { name = "loss", value = 1.5 })).GetProperty("step").GetInt64());
        Assert.Equal(7, (await LogAsync(new { name = "accuracy", value = true, step = 7 })).GetProperty("step").GetInt64());
        Assert.Equal(0.25, (await LogAsync(new { name = "cost", value = "0.25" })).GetProperty("value").GetDouble());
        using var bad = await user.Client.PostAsJsonAsync(path, new { name = "loss", value = "high" });
        await bad.AssertProblemAsync(400, "invalid_value");
        using var missing = await user.Client.PostAsJsonAsync(path, new { name = "loss" });
        await missing.AssertProblemAsync(400, "missing_field");

        var listed = await user.Client.GetJsonAsync(path);
        Assert.Equal(["loss:0:2.5", "loss:1:1.5", "accuracy:7:1", "cost:0:0.25"],
            listed.EnumerateArray().Select(m => $"{m.GetProperty("name").GetString()}:{m.GetProperty("step").GetInt64()}:{m.GetProperty("value").GetDouble()}"));
    }

    [Fact]
    public async Task RunPageLink_AnswersTheRunAndItsMetrics()
    {
        var user = await UserAsync();
        var (_, run) = await user.InitAsync("Page Project", "My Run");
        await user.Client.PostJsonAsync($"/api/v0/{user.Slug}/projects/page-project/runs/{run.GetProperty("uuid").GetString()}/metrics/", new { name = "loss", value = 1 });

        var page = await user.Client.GetJsonAsync($"/{user.Slug}/projects/page-project/runs/my-run/");
        Assert.Equal("My Run", page.GetProperty("run").GetProperty("name").GetString());
        Assert.Equal("loss", Assert.Single(page.GetProperty("metrics").EnumerateArray()).GetProperty("name").GetString());
        Assert.Equal($"/v1/runs/{run.GetProperty("id").GetString()}", page.GetProperty("links").GetProperty("run").GetString());

        using var anonymous = app.CreateClient();
        using var unauthorized = await anonymous.GetAsync($"/{user.Slug}/projects/page-project/runs/my-run/");
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);
    }

    [Fact]
    public async Task DeleteProject_RemovesIt_AndItsRuns()
    {
        var user = await UserAsync();
        var (project, _) = await user.InitAsync("Short Lived");
        using var deleted = await user.Client.DeleteAsync($"/api/v0/{user.Slug}/projects/short-lived/");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        using var gone = await user.Client.GetAsync($"/api/v0/{user.Slug}/projects/short-lived/");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        await using var db = app.CreateDbContext();
        var id = Guid.Parse(project.GetProperty("uuid").GetString()!);
        Assert.False(await db.Runs.AnyAsync(r => r.ProjectId == id));
    }

    [Fact]
    public async Task DeletingAUser_KeepsItsProjects_ForTheAdminApi()
    {
        var user = await UserAsync();
        var (project, _) = await user.InitAsync("Orphan Project");
        using var admin = app.CreateAdminClient();
        (await admin.DeleteAsync($"/v1/users/{user.Id}")).EnsureSuccessStatusCode();

        using var refused = await user.Client.GetAsync("/api/v0/verify-api-key/");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        var v1 = await admin.GetJsonAsync($"/v1/projects/{project.GetProperty("id").GetString()}");
        Assert.Equal(JsonValueKind.Null, v1.GetProperty("namespace").ValueKind);
    }
}

internal static class SdkUserTestExtensions
{
    /// <summary>The user's key on a client of the in-memory test server.</summary>
    public static SdkUser WithKey(this SdkUser user)
    {
        user.Client.DefaultRequestHeaders.Add("Authorization", $"Api-Key {user.Key}");
        return user;
    }
}
