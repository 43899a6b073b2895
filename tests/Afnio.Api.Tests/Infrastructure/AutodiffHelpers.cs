using System.Net.Http.Json;
using System.Text.Json;

namespace Afnio.Api.Tests.Infrastructure;

/// <summary>Short calls for building graphs and running backward passes through the API.</summary>
public static class AutodiffHelpers
{
    public static async Task<string> VariableAsync(this TestProject project, object data, string role, bool requiresGrad = false)
    {
        var created = await project.Client.PostJsonAsync("/v1/variables", new { data, role, requires_grad = requiresGrad });
        return created.GetProperty("id").GetString()!;
    }

    /// <summary>Leaves <c>p0 … p(n−1)</c> (data and role alike) that require grad, created 16 at a time; ids in index order.</summary>
    public static async Task<string[]> LeavesAsync(this TestProject project, int count)
    {
        using var gate = new SemaphoreSlim(16);
        return await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                return await project.VariableAsync($"p{i}", $"p{i}", requiresGrad: true);
            }
            finally
            {
                gate.Release();
            }
        }));
    }

    /// <summary>Calls a function and returns the whole response.</summary>
    public static Task<JsonElement> CallAsync(this TestProject project, string function, object arguments) =>
        project.Client.PostJsonAsync($"/v1/functions/{function}", arguments);

    /// <summary>Calls a function and returns the output ids.</summary>
    public static async Task<IReadOnlyList<string>> OutputsAsync(this TestProject project, string function, object arguments) =>
        [.. (await project.CallAsync(function, arguments)).GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("id").GetString()!)];

    public static async Task<string> OutputAsync(this TestProject project, string function, object arguments) =>
        (await project.OutputsAsync(function, arguments)).Single();

    /// <summary>Starts a backward pass and waits for its job to finish; returns the finished job.</summary>
    public static async Task<JsonElement> BackwardAsync(this TestProject project, object request)
    {
        using var response = await project.Client.PostAsJsonAsync("/v1/backward", request);
        var job = await HttpJson.EnsureSuccessAsync(response);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return await project.WaitForJobAsync(job.GetProperty("id").GetString()!);
    }

    public static async Task<JsonElement> WaitForJobAsync(this TestProject project, string jobId, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var job = await project.Client.GetJsonAsync($"/v1/jobs/{jobId}?wait_seconds=10");
            var status = job.GetProperty("status").GetString();
            if (status is "succeeded" or "failed" or "cancelled" || DateTime.UtcNow > deadline)
            {
                return job;
            }
        }
    }

    /// <summary>The data of each gradient in a variable's gradient list, in order.</summary>
    public static async Task<IReadOnlyList<string>> GradTextsAsync(this TestProject project, string variableId)
    {
        var list = await project.Client.GetJsonAsync($"/v1/variables/{variableId}/grad");
        return [.. list.GetProperty("data").EnumerateArray().Select(g => g.GetProperty("data").ToString())];
    }

    public static async Task<JsonElement> GradListAsync(this TestProject project, string variableId) =>
        (await project.Client.GetJsonAsync($"/v1/variables/{variableId}/grad")).GetProperty("data");
}
