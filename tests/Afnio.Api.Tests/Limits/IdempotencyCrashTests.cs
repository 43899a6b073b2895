using System.Net;
using System.Net.Http.Json;
using Npgsql;

namespace Afnio.Api.Tests.Limits;

/// <summary>
/// The API process is killed after a request's work and before its stored response: the work and the
/// response commit together, so nothing of the killed request remains and the retry with the same
/// Idempotency-Key runs it exactly once. A database trigger the test owns holds the request at the
/// moment it stores its response (an advisory lock the test keeps), which is where the kill lands.
/// </summary>
public sealed class IdempotencyCrashTests
{
    private const long GateLock = 18_018;

    [Fact]
    public async Task AnApiKilledBetweenTheWorkAndItsResponse_LeavesNothing_AndTheRetryRunsOnce()
    {
        await using var processes = await SeparateProcesses.StartAsync("afnio_idem_crash", new Dictionary<string, string>
        {
            ["Afnio__Idempotency__LockSeconds"] = "2",
        });
        var project = await processes.CreateProjectAsync("idempotency crash");
        await using var gate = new NpgsqlConnection(processes.ConnectionString);
        await gate.OpenAsync();
        await ExecuteAsync(gate, $"""
            CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS
              $$ BEGIN PERFORM pg_advisory_xact_lock({GateLock}); RETURN NEW; END $$;
            CREATE TRIGGER test_gate BEFORE UPDATE ON idempotency_records
              FOR EACH ROW WHEN (NEW.response_status IS NOT NULL) EXECUTE FUNCTION test_gate();
            """);

        // A variable: the simplest write.
        var data = $"kept once {Guid.NewGuid():N}";
        var variables = await KillThenRetryAsync(processes, gate, project, "/v1/variables", new { data, role = "note" }, "variable-1");
        Assert.Equal(HttpStatusCode.Created, variables.StatusCode);
        Assert.Equal(1, await CountAsync(gate, $"SELECT count(*) FROM variables WHERE data::text LIKE '%{data}%'"));

        // A backward pass: a job, handed to the Worker only once the request has committed.
        var x = await project.VariableAsync("abc", "first input", requiresGrad: true);
        var y = await project.VariableAsync("def", "second input");
        var z = await project.OutputAsync("add", new { x, y });
        var feedback = await project.VariableAsync("MY_FEEDBACK", "feedback");
        var jobsBefore = await CountAsync(gate, "SELECT count(*) FROM jobs WHERE type = 'backward'");
        var backward = await KillThenRetryAsync(processes, gate, project, "/v1/backward",
            new { variables = new[] { z }, grad_variables = new[] { feedback } }, "backward-1");
        Assert.Equal(HttpStatusCode.Accepted, backward.StatusCode);
        Assert.Equal(jobsBefore + 1, await CountAsync(gate, "SELECT count(*) FROM jobs WHERE type = 'backward'"));
        var job = await project.WaitForJobAsync((await backward.ReadJsonAsync()).GetProperty("id").GetString()!);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Single((await project.GradListAsync(x)).EnumerateArray());

        // And the answer is kept: the same key replays it.
        using var replay = await PostAsync(project, "/v1/backward", new { variables = new[] { z }, grad_variables = new[] { feedback } }, "backward-1");
        Assert.Equal(HttpStatusCode.Accepted, replay.StatusCode);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(jobsBefore + 1, await CountAsync(gate, "SELECT count(*) FROM jobs WHERE type = 'backward'"));
    }

    private static async Task<HttpResponseMessage> KillThenRetryAsync(
        SeparateProcesses processes, NpgsqlConnection gate, TestProject project, string path, object body, string key)
    {
        await ExecuteAsync(gate, $"SELECT pg_advisory_lock({GateLock})");
        var first = PostAsync(project, path, body, key);
        await Eventually.UntilAsync(async () => await CountAsync(gate, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") > 0,
            TimeSpan.FromSeconds(30), () => $"the request never reached its stored response:\n{processes.Api.Output}", pollMs: 20);

        await processes.RestartApiAfterKillAsync();
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => first);
        await ExecuteAsync(gate, $"SELECT pg_advisory_unlock({GateLock})");

        // The dead request's key stays locked briefly (it might have been still running elsewhere), then the retry runs.
        HttpResponseMessage? retry = null;
        await Eventually.UntilAsync(async () =>
        {
            retry?.Dispose();
            retry = await PostAsync(project, path, body, key);
            return retry.StatusCode != HttpStatusCode.Conflict;
        }, TimeSpan.FromSeconds(30), () => "the retry stayed in conflict", pollMs: 250);
        Assert.False(retry!.Headers.Contains("Idempotent-Replayed"), "the killed request left a stored answer behind");
        return retry;
    }

    private static Task<HttpResponseMessage> PostAsync(TestProject project, string path, object body, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        request.Headers.Add("Idempotency-Key", key);
        return project.Client.SendAsync(request);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<long> CountAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
