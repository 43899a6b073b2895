namespace Afnio.Api.Tests;

/// <summary>Bad input gets a 4xx problem with a stable code, never a 500, and changes nothing.</summary>
public sealed class MalformedInputTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    public static TheoryData<string, string, string?, int, string> Cases => new()
    {
        // method, path ({v} = an existing variable of the caller), raw body, status, code
        { "POST", "/v1/variables", "{\"data\": \"x\"", 400, "invalid_json" },
        { "POST", "/v1/variables", "not json at all", 400, "invalid_json" },
        { "POST", "/v1/variables", "{\"data\": \"x\",}", 400, "invalid_json" },
        { "POST", "/v1/variables", "[1, 2]", 400, "invalid_type" },
        { "POST", "/v1/variables", "\"just a string\"", 400, "invalid_type" },
        { "POST", "/v1/variables", "{\"requires_grad\": \"yes\"}", 400, "invalid_type" },
        { "POST", "/v1/variables", "{\"requires_grad\": 1}", 400, "invalid_type" },
        { "POST", "/v1/variables", "{\"role\": 42}", 400, "invalid_type" },
        { "POST", "/v1/variables", "{\"is_parameter\": null}", 400, "invalid_type" },
        { "POST", "/v1/variables", "{\"data\": \"x\", \"colour\": \"red\"}", 400, "unknown_field" },
        { "POST", "/v1/variables", "{\"data\": \"x\", \"is_leaf\": false}", 400, "read_only_field" },
        { "POST", "/v1/variables", "{\"data\": {\"nested\": true}}", 400, "invalid_data" },
        { "POST", "/v1/variables", "{\"data\": [[1]]}", 400, "invalid_data" },
        { "POST", "/v1/variables", "{\"data\": [1, \"a\"]}", 400, "invalid_data" },
        { "POST", "/v1/variables", "{\"data\": 1e999}", 400, "invalid_data" },
        { "POST", "/v1/variables", null, 400, "invalid_request" },
        { "POST", "/v1/variables", "{\"data\": \"a\\u0000b\"}", 400, "invalid_data" },
        { "POST", "/v1/variables", "{\"data\": [\"ok\", \"\\u0000\"]}", 400, "invalid_data" },
        { "POST", "/v1/variables", "{\"data\": \"\\ud800\"}", 400, "invalid_data" },
        { "POST", "/v1/variables", "{\"role\": \"r\\u0000\"}", 400, "invalid_role" },
        { "PATCH", "/v1/variables/{v}", "{\"role\": \"\\u0000\"}", 400, "invalid_role" },
        { "POST", "/v1/variables", "", 400, "invalid_request" },
        { "PATCH", "/v1/variables/{v}", "{\"grad_fn\": \"node_1\"}", 400, "read_only_field" },
        { "PATCH", "/v1/variables/{v}", "{\"requires_grad\": \"true\"}", 400, "invalid_type" },
        { "PATCH", "/v1/variables/{v}", "{\"data\": [true]}", 400, "invalid_data" },
        { "POST", "/v1/variables/{v}/grad", "{}", 400, "missing_field" },
        { "POST", "/v1/variables/{v}/grad", "{\"variable_id\": 5}", 400, "invalid_type" },
        { "POST", "/v1/variables/{v}/grad", "{\"variable_id\": \"nope\"}", 400, "invalid_id" },
        { "POST", "/v1/variables/{v}/grad", "{\"variable_id\": \"var_0000000000007000800000000000000a\"}", 404, "variable_not_found" },
        { "POST", "/v1/variables/{v}/copy", "{\"source_id\": \"proj_0000000000007000800000000000000a\"}", 400, "invalid_id" },
        { "POST", "/v1/variables/{v}/cast", "{\"dtype\": \"double\"}", 400, "invalid_type" },
        { "POST", "/v1/variables/{v}/cast", "{\"dtype\": 1}", 400, "invalid_type" },
        { "POST", "/v1/variables/{v}/cast", "{}", 400, "missing_field" },
        { "GET", "/v1/variables/not-an-id", null, 404, "variable_not_found" },
        { "GET", "/v1/variables/var_zzzz", null, 404, "variable_not_found" },
        { "GET", "/v1/variables/node_0000000000007000800000000000000a", null, 404, "variable_not_found" },
        { "DELETE", "/v1/variables/var_0000000000007000800000000000000a", null, 404, "variable_not_found" },
        { "GET", "/v1/variables?limit=0", null, 400, "invalid_limit" },
        { "GET", "/v1/variables?limit=101", null, 400, "invalid_limit" },
        { "GET", "/v1/variables?limit=ten", null, 400, "invalid_request" },
        { "GET", "/v1/variables?order=sideways", null, 400, "invalid_order" },
        { "GET", "/v1/variables?after=proj_0000000000007000800000000000000a", null, 400, "invalid_cursor" },
        { "GET", "/v1/nothing-here", null, 404, "not_found" },
        { "PUT", "/v1/variables/{v}", "{}", 405, "method_not_allowed" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadInput_Answers4xxProblem_AndChangesNothing(string method, string path, string? body, int status, string code)
    {
        var project = await app.CreateProjectAsync();
        var v = (await project.Client.PostJsonAsync("/v1/variables", new { data = "original", role = "r" })).GetProperty("id").GetString()!;

        using var response = await project.Client.SendRawAsync(new HttpMethod(method), path.Replace("{v}", v), body);

        await response.AssertProblemAsync(status, code);
        var list = await project.Client.GetJsonAsync("/v1/variables");
        var only = Assert.Single(list.GetProperty("data").EnumerateArray());
        Assert.Equal("original", only.GetProperty("data").GetString());
        Assert.Equal("r", only.GetProperty("role").GetString());
    }

    [Fact]
    public async Task Problem_NamesTheOffendingField()
    {
        var project = await app.CreateProjectAsync();
        using var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/variables", "{\"requires_grad\": \"yes\"}");

        var problem = await response.AssertProblemAsync(400, "invalid_type");
        Assert.Equal("requires_grad", problem.GetProperty("param").GetString());
        Assert.Equal("The field 'requires_grad' must be true or false.", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Problem_ListsTheAllowedValuesOfAnEnum()
    {
        var project = await app.CreateProjectAsync();
        var v = (await project.Client.PostJsonAsync("/v1/variables", new { data = "1" })).GetProperty("id").GetString();
        using var response = await project.Client.PostAsJsonAsync($"/v1/variables/{v}/cast", new { dtype = "double" });

        var problem = await response.AssertProblemAsync(400, "invalid_type");
        Assert.Equal("The field 'dtype' must be one of: int, float, str.", problem.GetProperty("detail").GetString());
    }

    [Theory]
    [InlineData("text/html")]
    [InlineData("application/xml")]
    public async Task ErrorsAreJson_WhateverTheAcceptHeaderSays(string accept)
    {
        var project = await app.CreateProjectAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/variables/var_0000000000007000800000000000000a");
        request.Headers.Accept.ParseAdd(accept);
        using var anonymous = app.CreateClient();
        using var unauthenticated = new HttpRequestMessage(HttpMethod.Get, "/v1/variables");
        unauthenticated.Headers.Accept.ParseAdd(accept);

        await (await project.Client.SendAsync(request)).AssertProblemAsync(404, "variable_not_found");
        await (await anonymous.SendAsync(unauthenticated)).AssertProblemAsync(401, "missing_api_key");
    }

    [Fact]
    public async Task WrongContentType_Answers415()
    {
        var project = await app.CreateProjectAsync();
        using var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/variables", "{\"data\": \"x\"}", "text/plain");

        await response.AssertProblemAsync(415, "unsupported_media_type");
    }

    [Fact]
    public async Task OversizedBody_Answers413_WithTheLimit()
    {
        var project = await app.CreateProjectAsync();
        var huge = new string('x', 1024 * 1024 + 1);

        using var response = await project.Client.PostAsJsonAsync("/v1/variables", new { data = huge });

        var problem = await response.AssertProblemAsync(413, "payload_too_large");
        Assert.Contains("1048576", problem.GetProperty("detail").GetString());
        Assert.Equal(0, (await project.Client.GetJsonAsync("/v1/variables")).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task ChunkedOversizedBody_Answers413()
    {
        var project = await app.CreateProjectAsync();
        var content = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes($"{{\"data\": \"{new string('y', 2 * 1024 * 1024)}\"}}")));
        content.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/variables") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using var response = await project.Client.SendAsync(request);

        await response.AssertProblemAsync(413, "payload_too_large");
    }
}
