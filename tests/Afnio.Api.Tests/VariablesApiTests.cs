using Afnio.Data.Variables;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

public sealed class VariablesApiTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task Create_ReturnsVariableObject_WithDerivedFields()
    {
        var project = await app.CreateProjectAsync();
        using var response = await project.Client.PostAsJsonAsync("/v1/variables",
            new { data = "You are a helpful assistant.", role = "system prompt", requires_grad = true });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var v = await response.ReadJsonAsync();
        var id = v.GetProperty("id").GetString()!;
        Assert.StartsWith("var_", id);
        Assert.Equal($"/v1/variables/{id}", response.Headers.Location?.ToString());
        Assert.Equal("variable", v.GetProperty("object").GetString());
        Assert.Equal("You are a helpful assistant.", v.GetProperty("data").GetString());
        Assert.Equal("system prompt", v.GetProperty("role").GetString());
        Assert.True(v.GetProperty("requires_grad").GetBoolean());
        Assert.False(v.GetProperty("is_parameter").GetBoolean());
        Assert.True(v.GetProperty("is_leaf").GetBoolean());
        Assert.False(v.GetProperty("retain_grad").GetBoolean());
        Assert.Equal(0, v.GetProperty("output_nr").GetInt32());
        Assert.Equal(JsonValueKind.Null, v.GetProperty("grad_fn").ValueKind);
        Assert.Equal(0, v.GetProperty("grad").GetArrayLength());
        Assert.InRange(v.GetProperty("created_at").GetInt64(), DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds(),
            DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds());
    }

    [Fact]
    public async Task Create_Defaults_FollowVariableAndParameterConstructors()
    {
        var project = await app.CreateProjectAsync();
        var variable = await project.Client.PostJsonAsync("/v1/variables", new { });
        var parameter = await project.Client.PostJsonAsync("/v1/variables", new { data = "p", is_parameter = true });

        Assert.Equal("", variable.GetProperty("data").GetString());
        Assert.Equal("", variable.GetProperty("role").GetString());
        Assert.False(variable.GetProperty("requires_grad").GetBoolean());
        Assert.True(parameter.GetProperty("is_parameter").GetBoolean());
        Assert.True(parameter.GetProperty("requires_grad").GetBoolean());
    }

    [Theory]
    [InlineData("\"abc\"", "\"abc\"")]
    [InlineData("42", "42")]
    [InlineData("1.0", "1.0")]
    [InlineData("2.5e-7", "2.5e-07")]
    [InlineData("true", "true")]
    [InlineData("null", "null")]
    [InlineData("[1, 2, 3]", "[1,2,3]")]
    [InlineData("[1, 2, 3.5]", "[1.0,2.0,3.5]")]
    [InlineData("[1.0, 2.0]", "[1.0,2.0]")]
    [InlineData("[\"a\", \"b\"]", "[\"a\",\"b\"]")]
    [InlineData("[]", "[]")]
    public async Task Create_StoresData_KeepingIntFloatDistinction(string data, string expected)
    {
        var project = await app.CreateProjectAsync();
        using var created = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/variables", $"{{\"data\": {data}}}");
        var id = (await HttpJson.EnsureSuccessAsync(created)).GetProperty("id").GetString();

        // Read back through a fresh request, so the value has been through jsonb and back.
        using var read = await project.Client.GetAsync($"/v1/variables/{id}");
        using var doc = JsonDocument.Parse(await read.Content.ReadAsStringAsync());
        Assert.Equal(expected, doc.RootElement.GetProperty("data").GetRawText());
    }

    [Theory]
    [InlineData("[[1, 2], [3]]", "nested list")]
    [InlineData("[1, \"a\"]", "mixes strings and numbers")]
    [InlineData("[true, false]", "boolean")]
    [InlineData("[\"a\", null]", "null")]
    [InlineData("{\"a\": 1}", "objects are not supported")]
    [InlineData("[{\"a\": 1}]", "object")]
    [InlineData("123456789012345678901234567890", "does not fit in 64 bits")]
    public async Task Create_RefusesData_ThatBreaksTheRules(string data, string why)
    {
        var project = await app.CreateProjectAsync();
        using var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/variables", $"{{\"data\": {data}}}");

        var problem = await response.AssertProblemAsync(400, "invalid_data");
        Assert.Contains(why, problem.GetProperty("detail").GetString());
        Assert.StartsWith("data", problem.GetProperty("param").GetString());
    }

    [Fact]
    public async Task Get_Update_Delete_RoundTrip()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/variables", new { data = "a", role = "r" })).GetProperty("id").GetString();

        using var patch = await project.Client.PatchAsJsonAsync($"/v1/variables/{id}", new { data = new[] { 1, 2 }, role = "numbers" });
        var patched = await HttpJson.EnsureSuccessAsync(patch);
        Assert.Equal("[1,2]", patched.GetProperty("data").GetRawText());
        Assert.Equal("numbers", patched.GetProperty("role").GetString());
        Assert.False(patched.GetProperty("requires_grad").GetBoolean());

        using var untouched = await project.Client.PatchAsJsonAsync($"/v1/variables/{id}", new { });
        Assert.Equal("numbers", (await HttpJson.EnsureSuccessAsync(untouched)).GetProperty("role").GetString());

        using var delete = await project.Client.DeleteAsync($"/v1/variables/{id}");
        var deleted = await HttpJson.EnsureSuccessAsync(delete);
        Assert.Equal("variable.deleted", deleted.GetProperty("object").GetString());
        Assert.True(deleted.GetProperty("deleted").GetBoolean());

        using var gone = await project.Client.GetAsync($"/v1/variables/{id}");
        await gone.AssertProblemAsync(404, "variable_not_found");
    }

    [Fact]
    public async Task Patch_DataNull_SetsNull_ButOmittedDataKeepsIt()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/variables", new { data = "keep" })).GetProperty("id").GetString();

        using var keep = await project.Client.SendRawAsync(HttpMethod.Patch, $"/v1/variables/{id}", "{\"role\": \"x\"}");
        Assert.Equal("keep", (await HttpJson.EnsureSuccessAsync(keep)).GetProperty("data").GetString());

        using var clear = await project.Client.SendRawAsync(HttpMethod.Patch, $"/v1/variables/{id}", "{\"data\": null}");
        Assert.Equal(JsonValueKind.Null, (await HttpJson.EnsureSuccessAsync(clear)).GetProperty("data").ValueKind);
    }

    [Fact]
    public async Task List_PagesWithAfterAndLimit_InBothOrders()
    {
        var project = await app.CreateProjectAsync();
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add((await project.Client.PostJsonAsync("/v1/variables", new { data = i })).GetProperty("id").GetString()!);
        }

        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        while (true)
        {
            var page = await project.Client.GetJsonAsync($"/v1/variables?order=asc&limit=2{(after is null ? "" : $"&after={after}")}");
            Assert.Equal("list", page.GetProperty("object").GetString());
            var data = page.GetProperty("data").EnumerateArray().Select(v => v.GetProperty("id").GetString()!).ToList();
            seen.AddRange(data);
            pages++;
            Assert.Equal(data.FirstOrDefault(), page.GetProperty("first_id").GetString());
            Assert.Equal(data.LastOrDefault(), page.GetProperty("last_id").GetString());
            if (!page.GetProperty("has_more").GetBoolean())
            {
                break;
            }

            after = page.GetProperty("last_id").GetString();
        }

        Assert.Equal(ids, seen);
        Assert.Equal(3, pages);

        var newest = await project.Client.GetJsonAsync("/v1/variables?limit=1");
        Assert.Equal(ids[^1], newest.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.True(newest.GetProperty("has_more").GetBoolean());
    }

    [Fact]
    public async Task List_ShowsOnlyTheCallersProject()
    {
        var mine = await app.CreateProjectAsync();
        var theirs = await app.CreateProjectAsync();
        var myId = (await mine.Client.PostJsonAsync("/v1/variables", new { data = "mine" })).GetProperty("id").GetString();
        await theirs.Client.PostJsonAsync("/v1/variables", new { data = "theirs" });

        var list = await mine.Client.GetJsonAsync("/v1/variables?limit=100");
        var ids = list.GetProperty("data").EnumerateArray().Select(v => v.GetProperty("id").GetString()).ToList();
        Assert.Equal([myId], ids);
    }

    [Fact]
    public async Task OtherProjectsVariables_Answer404_Everywhere()
    {
        var mine = await app.CreateProjectAsync();
        var theirs = await app.CreateProjectAsync();
        var theirId = (await theirs.Client.PostJsonAsync("/v1/variables", new { data = "secret" })).GetProperty("id").GetString();
        var myId = (await mine.Client.PostJsonAsync("/v1/variables", new { data = "mine" })).GetProperty("id").GetString();

        (HttpMethod Method, string Path, object? Body)[] calls =
        [
            (HttpMethod.Get, $"/v1/variables/{theirId}", null),
            (HttpMethod.Patch, $"/v1/variables/{theirId}", new { role = "stolen" }),
            (HttpMethod.Delete, $"/v1/variables/{theirId}", null),
            (HttpMethod.Get, $"/v1/variables/{theirId}/grad", null),
            (HttpMethod.Post, $"/v1/variables/{theirId}/grad", new { variable_id = myId }),
            (HttpMethod.Delete, $"/v1/variables/{theirId}/grad", null),
            (HttpMethod.Post, $"/v1/variables/{theirId}/retain_grad", null),
            (HttpMethod.Post, $"/v1/variables/{theirId}/detach", null),
            (HttpMethod.Post, $"/v1/variables/{theirId}/copy", new { source_id = myId }),
            (HttpMethod.Post, $"/v1/variables/{theirId}/cast", new { dtype = "str" }),
            (HttpMethod.Post, $"/v1/variables/{myId}/grad", new { variable_id = theirId }),
            (HttpMethod.Post, $"/v1/variables/{myId}/copy", new { source_id = theirId }),
        ];
        foreach (var (method, path, body) in calls)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            using var response = await mine.Client.SendAsync(request);
            await response.AssertProblemAsync(404, "variable_not_found");
        }

        // Nothing changed on their side.
        var still = await theirs.Client.GetJsonAsync($"/v1/variables/{theirId}");
        Assert.Equal("secret", still.GetProperty("data").GetString());
        Assert.Equal("", still.GetProperty("role").GetString());
    }

    [Fact]
    public async Task Grad_AppendsInOrder_ListsAndClears()
    {
        var project = await app.CreateProjectAsync();
        var x = (await project.Client.PostJsonAsync("/v1/variables", new { data = "x", requires_grad = true })).GetProperty("id").GetString();
        var g1 = (await project.Client.PostJsonAsync("/v1/variables", new { data = "first feedback", role = "feedback to x" })).GetProperty("id").GetString();
        var g2 = (await project.Client.PostJsonAsync("/v1/variables", new { data = "second feedback", role = "feedback to x" })).GetProperty("id").GetString();

        await project.Client.PostJsonAsync($"/v1/variables/{x}/grad", new { variable_id = g1 });
        await project.Client.PostJsonAsync($"/v1/variables/{x}/grad", new { variable_id = g2 });
        var afterThird = await project.Client.PostJsonAsync($"/v1/variables/{x}/grad", new { variable_id = g1 });

        // Gradients are appended, never merged: the same gradient twice is two entries.
        Assert.Equal([g1, g2, g1], afterThird.GetProperty("data").EnumerateArray().Select(v => v.GetProperty("id").GetString()));
        var listed = await project.Client.GetJsonAsync($"/v1/variables/{x}/grad");
        Assert.Equal(["first feedback", "second feedback", "first feedback"],
            listed.GetProperty("data").EnumerateArray().Select(v => v.GetProperty("data").GetString()));
        var variable = await project.Client.GetJsonAsync($"/v1/variables/{x}");
        Assert.Equal([g1, g2, g1], variable.GetProperty("grad").EnumerateArray().Select(v => v.GetString()));

        using var clear = await project.Client.DeleteAsync($"/v1/variables/{x}/grad");
        Assert.Equal(0, (await HttpJson.EnsureSuccessAsync(clear)).GetProperty("data").GetArrayLength());
        Assert.Equal(0, (await project.Client.GetJsonAsync($"/v1/variables/{x}")).GetProperty("grad").GetArrayLength());
        // Clearing the list does not delete the gradient variables.
        await project.Client.GetJsonAsync($"/v1/variables/{g1}");
    }

    [Fact]
    public async Task ConcurrentAppends_AreAllKept_EachOnce()
    {
        var project = await app.CreateProjectAsync();
        var x = (await project.Client.PostJsonAsync("/v1/variables", new { data = "x" })).GetProperty("id").GetString();
        var gradients = new List<string>();
        for (var i = 0; i < 16; i++)
        {
            gradients.Add((await project.Client.PostJsonAsync("/v1/variables", new { data = $"g{i}" })).GetProperty("id").GetString()!);
        }

        await Task.WhenAll(gradients.Select(g => project.Client.PostJsonAsync($"/v1/variables/{x}/grad", new { variable_id = g })));

        var grad = (await project.Client.GetJsonAsync($"/v1/variables/{x}")).GetProperty("grad").EnumerateArray().Select(g => g.GetString()).ToList();
        Assert.Equal(gradients.Order(), grad.Order());
    }

    [Fact]
    public async Task DeletingAGradientVariable_RemovesItFromGradLists()
    {
        var project = await app.CreateProjectAsync();
        var x = (await project.Client.PostJsonAsync("/v1/variables", new { data = "x" })).GetProperty("id").GetString();
        var g = (await project.Client.PostJsonAsync("/v1/variables", new { data = "g" })).GetProperty("id").GetString();
        await project.Client.PostJsonAsync($"/v1/variables/{x}/grad", new { variable_id = g });

        (await project.Client.DeleteAsync($"/v1/variables/{g}")).EnsureSuccessStatusCode();

        Assert.Equal(0, (await project.Client.GetJsonAsync($"/v1/variables/{x}")).GetProperty("grad").GetArrayLength());
    }

    [Fact]
    public async Task NonLeafWithoutRetainGrad_RefusesGradAccess_WithReferenceWording()
    {
        var project = await app.CreateProjectAsync();
        var nonLeaf = await SeedNonLeafAsync(project);
        var g = (await project.Client.PostJsonAsync("/v1/variables", new { data = "g" })).GetProperty("id").GetString();

        var read = await (await project.Client.GetAsync($"/v1/variables/{nonLeaf}/grad")).AssertProblemAsync(409, "grad_not_retained");
        Assert.StartsWith("Attempted to access .grad for a non-leaf Variable without retain_grad enabled.", read.GetProperty("detail").GetString());
        var append = await (await project.Client.PostAsJsonAsync($"/v1/variables/{nonLeaf}/grad", new { variable_id = g }))
            .AssertProblemAsync(409, "grad_not_retained");
        Assert.StartsWith("Attempted to append to .grad for a non-leaf Variable", append.GetProperty("detail").GetString());
        var clear = await (await project.Client.DeleteAsync($"/v1/variables/{nonLeaf}/grad")).AssertProblemAsync(409, "grad_not_retained");
        Assert.StartsWith("Attempted to set .grad for a non-leaf Variable", clear.GetProperty("detail").GetString());

        // retain_grad() makes the list usable.
        var retained = await project.Client.PostJsonAsync($"/v1/variables/{nonLeaf}/retain_grad", new { });
        Assert.True(retained.GetProperty("retain_grad").GetBoolean());
        var appended = await project.Client.PostJsonAsync($"/v1/variables/{nonLeaf}/grad", new { variable_id = g });
        Assert.Equal(1, appended.GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task RetainGrad_OnLeaf_IsRefused()
    {
        var project = await app.CreateProjectAsync();
        var leaf = (await project.Client.PostJsonAsync("/v1/variables", new { data = "x", requires_grad = true })).GetProperty("id").GetString();

        var problem = await (await project.Client.PostAsync($"/v1/variables/{leaf}/retain_grad", null)).AssertProblemAsync(409, "retain_grad_on_leaf");
        Assert.Equal("Cannot call retain_grad on a leaf variable", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task PatchRequiresGrad_RecomputesIsLeaf_KeepingGradFn()
    {
        var project = await app.CreateProjectAsync();
        var nonLeaf = await SeedNonLeafAsync(project);
        var before = await project.Client.GetJsonAsync($"/v1/variables/{nonLeaf}");
        Assert.False(before.GetProperty("is_leaf").GetBoolean());
        var gradFn = before.GetProperty("grad_fn").GetString();
        Assert.StartsWith("node_", gradFn);

        using var off = await project.Client.PatchAsJsonAsync($"/v1/variables/{nonLeaf}", new { requires_grad = false });
        var leaf = await HttpJson.EnsureSuccessAsync(off);
        Assert.True(leaf.GetProperty("is_leaf").GetBoolean());
        Assert.Equal(gradFn, leaf.GetProperty("grad_fn").GetString());

        using var on = await project.Client.PatchAsJsonAsync($"/v1/variables/{nonLeaf}", new { requires_grad = true });
        Assert.False((await HttpJson.EnsureSuccessAsync(on)).GetProperty("is_leaf").GetBoolean());

        // A user-made leaf stays a leaf whatever requires_grad says.
        var userLeaf = (await project.Client.PostJsonAsync("/v1/variables", new { data = "x" })).GetProperty("id").GetString();
        using var flip = await project.Client.PatchAsJsonAsync($"/v1/variables/{userLeaf}", new { requires_grad = true });
        Assert.True((await HttpJson.EnsureSuccessAsync(flip)).GetProperty("is_leaf").GetBoolean());
    }

    [Fact]
    public async Task Detach_MakesANewVariable_WithoutGrad()
    {
        var project = await app.CreateProjectAsync();
        var p = await project.Client.PostJsonAsync("/v1/variables", new { data = new[] { 1.5, 2 }, role = "weights", is_parameter = true });

        using var response = await project.Client.PostAsync($"/v1/variables/{p.GetProperty("id").GetString()}/detach", null);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var detached = await response.ReadJsonAsync();
        Assert.NotEqual(p.GetProperty("id").GetString(), detached.GetProperty("id").GetString());
        Assert.Equal("[1.5,2.0]", detached.GetProperty("data").GetRawText());
        Assert.Equal("weights", detached.GetProperty("role").GetString());
        Assert.False(detached.GetProperty("requires_grad").GetBoolean());
        Assert.False(detached.GetProperty("is_parameter").GetBoolean());
    }

    [Fact]
    public async Task Copy_CopiesDataRoleAndRequiresGrad_InPlace()
    {
        var project = await app.CreateProjectAsync();
        var dst = (await project.Client.PostJsonAsync("/v1/variables", new { data = new[] { "a", "b" }, role = "old" })).GetProperty("id").GetString();
        var src = (await project.Client.PostJsonAsync("/v1/variables", new { data = new[] { 1, 2 }, role = "new", requires_grad = true })).GetProperty("id").GetString();

        var copied = await project.Client.PostJsonAsync($"/v1/variables/{dst}/copy", new { source_id = src });

        Assert.Equal(dst, copied.GetProperty("id").GetString());
        Assert.Equal("[1,2]", copied.GetProperty("data").GetRawText());
        Assert.Equal("new", copied.GetProperty("role").GetString());
        Assert.True(copied.GetProperty("requires_grad").GetBoolean());
    }

    [Theory]
    [InlineData("[\"a\", \"b\"]", "[\"a\", \"b\", \"c\"]", "copy_length_mismatch", "Cannot copy list `.data` fields of different lengths: 2 vs 3.")]
    [InlineData("\"abc\"", "[1, 2]", "copy_type_mismatch", "Cannot copy data from list to str.")]
    [InlineData("[1.5]", "7", "copy_type_mismatch", "Cannot copy data from int to list.")]
    public async Task Copy_RefusesMismatchedShapes(string destination, string source, string code, string message)
    {
        var project = await app.CreateProjectAsync();
        var dst = await CreateRawAsync(project, destination);
        var src = await CreateRawAsync(project, source);

        var problem = await (await project.Client.PostAsJsonAsync($"/v1/variables/{dst}/copy", new { source_id = src }))
            .AssertProblemAsync(400, code);

        Assert.Equal(message, problem.GetProperty("detail").GetString());
        Assert.Equal(destination.Replace(" ", ""), (await project.Client.GetJsonAsync($"/v1/variables/{dst}")).GetProperty("data").GetRawText());
    }

    [Theory]
    [InlineData("[1, 2]", "float", "[1.0,2.0]")]
    [InlineData("[1.7, -2.7]", "int", "[1,-2]")]
    [InlineData("[\" 42 \", \"7\"]", "int", "[42,7]")]
    [InlineData("[0.1, 1e16, 2.0]", "str", "[\"0.1\",\"1e+16\",\"2.0\"]")]
    [InlineData("true", "str", "\"True\"")]
    [InlineData("null", "str", "\"None\"")]
    [InlineData("\"3.5\"", "float", "3.5")]
    public async Task Cast_ConvertsLikePython(string data, string dtype, string expected)
    {
        var project = await app.CreateProjectAsync();
        var id = await CreateRawAsync(project, data, requiresGrad: true);

        using var response = await project.Client.PostAsJsonAsync($"/v1/variables/{id}/cast", new { dtype });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var cast = await response.ReadJsonAsync();
        Assert.Equal(expected, cast.GetProperty("data").GetRawText());
        Assert.True(cast.GetProperty("requires_grad").GetBoolean());
        Assert.NotEqual(id, cast.GetProperty("id").GetString());
    }

    [Theory]
    [InlineData("\"abc\"", "int", "invalid literal for int() with base 10: 'abc'")]
    [InlineData("[\"1\", \"x\"]", "float", "could not convert string to float: 'x'")]
    [InlineData("null", "int", "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'")]
    public async Task Cast_Failures_Are400WithPythonsMessage(string data, string dtype, string message)
    {
        var project = await app.CreateProjectAsync();
        var id = await CreateRawAsync(project, data);

        var problem = await (await project.Client.PostAsJsonAsync($"/v1/variables/{id}/cast", new { dtype }))
            .AssertProblemAsync(400, "cast_failed");
        Assert.Equal(message, problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Variables_AreStoredWithDataAsJsonb()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/variables", new { data = new[] { 1.0, 2.5 } })).GetProperty("id").GetString()!;
        Assert.True(PrefixedId.TryParse(PrefixedId.Variable, id, out var guid));

        await using var db = app.CreateDbContext();
        var type = await db.Database.SqlQuery<string>($"SELECT jsonb_typeof(data) AS \"Value\" FROM variables WHERE id = {guid}").SingleAsync();
        var kind = await db.Variables.Where(v => v.Id == guid).Select(v => v.DataKind).SingleAsync();
        Assert.Equal("array", type);
        Assert.Equal("list[float]", kind);
    }

    private static async Task<string> CreateRawAsync(TestProject project, string data, bool requiresGrad = false)
    {
        using var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/variables",
            $"{{\"data\": {data}, \"requires_grad\": {(requiresGrad ? "true" : "false")}}}");
        return (await HttpJson.EnsureSuccessAsync(response)).GetProperty("id").GetString()!;
    }

    /// <summary>
    /// Operations are what make non-leaf variables; until a test can run one, store the state an
    /// operation leaves behind: requires_grad with a grad_fn.
    /// </summary>
    private async Task<string> SeedNonLeafAsync(TestProject project)
    {
        Assert.True(PrefixedId.TryParse(PrefixedId.Project, project.Id, out var projectId));
        await using var db = app.CreateDbContext();
        var variable = new Variable
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = projectId,
            Data = "\"out\"",
            DataKind = "str",
            Role = "output",
            RequiresGrad = true,
            IsParameter = false,
            GradFnId = PrefixedId.NewGuid(),
            CreatedAt = DateTimeOffset.UtcNow,
        };
        db.Variables.Add(variable);
        await db.SaveChangesAsync();
        return PrefixedId.Format(PrefixedId.Variable, variable.Id);
    }
}
