using System.Text.Json;

namespace Afnio.Api.Tests;

/// <summary>Client-driven runs, as afnio's tellurio.init, run.log and run.finish use them.</summary>
public sealed class RunsApiTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task ARun_LogsMetricsByStep_AndIsMarkedFinished()
    {
        var project = await app.CreateProjectAsync();
        var run = await project.Client.PostJsonAsync("/v1/runs", new { name = "facility sentiment", description = "batch 33, momentum 3" });
        var id = run.GetProperty("id").GetString()!;
        Assert.Equal("running", run.GetProperty("status").GetString());

        var first = await project.Client.PostJsonAsync($"/v1/runs/{id}/metrics", new { name = "train_accuracy", value = 0.5 });
        var second = await project.Client.PostJsonAsync($"/v1/runs/{id}/metrics", new { name = "train_accuracy", value = 0.75 });
        await project.Client.PostJsonAsync($"/v1/runs/{id}/metrics", new { name = "val_accuracy", value = 0.6, step = 5 });
        var sixth = await project.Client.PostJsonAsync($"/v1/runs/{id}/metrics", new { name = "val_accuracy", value = 0.7 });

        // Without a step: the metric's last step + 1, or 0 for its first value.
        Assert.Equal(0, first.GetProperty("step").GetInt64());
        Assert.Equal(1, second.GetProperty("step").GetInt64());
        Assert.Equal(6, sixth.GetProperty("step").GetInt64());
        var train = (await project.Client.GetJsonAsync($"/v1/runs/{id}/metrics?name=train_accuracy")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([0.5, 0.75], train.Select(m => m.GetProperty("value").GetDouble()));
        Assert.Equal(4, (await project.Client.GetJsonAsync($"/v1/runs/{id}/metrics")).GetProperty("data").GetArrayLength());

        var finished = await PatchAsync(project, $"/v1/runs/{id}", new { status = "completed" });
        var again = await PatchAsync(project, $"/v1/runs/{id}", new { status = "completed" });

        Assert.Equal("completed", finished.GetProperty("status").GetString());
        Assert.Equal("completed", again.GetProperty("status").GetString());
        using var late = await project.Client.PostAsJsonAsync($"/v1/runs/{id}/metrics", new { name = "train_accuracy", value = 1.0 });
        await late.AssertProblemAsync(409, "run_finished");
        Assert.Equal(4, (await project.Client.GetJsonAsync($"/v1/runs/{id}/metrics")).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task Names_AreUniqueInAProject_WithNumericSuffixes_OrGenerated()
    {
        var project = await app.CreateProjectAsync();

        var names = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            names.Add((await project.Client.PostJsonAsync("/v1/runs", new { name = "test_run" })).GetProperty("name").GetString()!);
        }

        var generated = (await project.Client.PostJsonAsync("/v1/runs", new { })).GetProperty("name").GetString()!;

        Assert.Equal(["test_run", "test_run_1", "test_run_2"], names);
        Assert.Matches("^[a-z]+_[a-z]+_[0-9]+$", generated);
        var other = await app.CreateProjectAsync();
        Assert.Equal("test_run", (await other.Client.PostJsonAsync("/v1/runs", new { name = "test_run" })).GetProperty("name").GetString());
    }

    [Fact]
    public async Task ConcurrentLogs_WithoutSteps_GetDistinctSteps()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/runs", new { name = "busy" })).GetProperty("id").GetString()!;

        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => project.Client.PostJsonAsync($"/v1/runs/{id}/metrics", new { name = "loss", value = i })));

        var steps = (await project.Client.GetJsonAsync($"/v1/runs/{id}/metrics?limit=100")).GetProperty("data").EnumerateArray()
            .Select(m => m.GetProperty("step").GetInt64()).Order();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), steps);
    }

    [Fact]
    public async Task BadInput_Gets4xx_AndOtherProjectsRunsAreNotFound()
    {
        var project = await app.CreateProjectAsync();
        var id = (await project.Client.PostJsonAsync("/v1/runs", new { name = "r" })).GetProperty("id").GetString()!;
        foreach (var (path, body, code) in new (string, string, string)[]
        {
            ("/v1/runs", "{\"status\": \"done\"}", "invalid_status"),
            ("/v1/runs", "{\"name\": \"\"}", "invalid_name"),
            ("/v1/runs", "{\"name\": 5}", "invalid_type"),
            ($"/v1/runs/{id}/metrics", "{\"value\": 1}", "missing_field"),
            ($"/v1/runs/{id}/metrics", "{\"name\": \"loss\"}", "missing_field"),
            ($"/v1/runs/{id}/metrics", "{\"name\": \"loss\", \"value\": \"high\"}", "invalid_type"),
            ($"/v1/runs/{id}/metrics", "{\"name\": \"loss\", \"value\": 1, \"step\": -1}", "invalid_step"),
            ($"/v1/runs/{id}/metrics", "{\"name\": \"loss\", \"value\": 1, \"epoch\": 2}", "unknown_field"),
        })
        {
            using var response = await project.Client.SendRawAsync(HttpMethod.Post, path, body);
            await response.AssertProblemAsync(400, code);
        }

        using var patch = await project.Client.SendRawAsync(HttpMethod.Patch, $"/v1/runs/{id}", "{\"status\": \"finished\"}");
        await patch.AssertProblemAsync(400, "invalid_status");
        Assert.Empty((await project.Client.GetJsonAsync($"/v1/runs/{id}/metrics")).GetProperty("data").EnumerateArray());
        Assert.Equal("running", (await project.Client.GetJsonAsync($"/v1/runs/{id}")).GetProperty("status").GetString());

        var other = await app.CreateProjectAsync();
        foreach (var (method, path, body) in new (string, string, string?)[]
        {
            ("GET", $"/v1/runs/{id}", null), ("GET", $"/v1/runs/{id}/metrics", null), ("PATCH", $"/v1/runs/{id}", "{\"status\": \"failed\"}"),
            ("POST", $"/v1/runs/{id}/metrics", "{\"name\": \"loss\", \"value\": 1}"), ("GET", "/v1/runs/run_nope", null),
        })
        {
            using var response = await other.Client.SendRawAsync(new HttpMethod(method), path, body);
            await response.AssertProblemAsync(404, "run_not_found");
        }

        Assert.Equal("running", (await project.Client.GetJsonAsync($"/v1/runs/{id}")).GetProperty("status").GetString());
    }

    private static async Task<JsonElement> PatchAsync(TestProject project, string path, object body)
    {
        using var response = await project.Client.PatchAsJsonAsync(path, body);
        return await HttpJson.EnsureSuccessAsync(response);
    }
}
