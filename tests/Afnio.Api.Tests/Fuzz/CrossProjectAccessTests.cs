using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Afnio.Data.Events;
using Afnio.Data.Jobs;
using Afnio.Data.Runs;
using Afnio.Domain.Common;
using Afnio.Domain.Programs;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Sdk;

namespace Afnio.Api.Tests.Fuzz;

/// <summary>
/// Projects are walled off from each other: every operation that takes an id, called with a key of
/// project B and the ids of project A, answers 404 with a problem code, exactly as for an id that
/// does not exist, and changes nothing of A. The operations come from the OpenAPI document the API
/// serves, so a new endpoint is covered (or fails here for want of an id) the day it is added.
/// </summary>
public sealed class CrossProjectAccessTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    private static readonly string[] Methods = ["get", "post", "put", "patch", "delete"];

    /// <summary>A user id for the admin routes under /v1/users and /v1/organizations, refused before it is looked up.</summary>
    private static readonly string SomeUser = PrefixedId.Format(PrefixedId.User, Guid.CreateVersion7());

    /// <summary>
    /// What each path parameter names, by the collection it follows: the problem code and param a
    /// stranger gets, and the ids of project A to try. A parameter missing here fails the test.
    /// </summary>
    private static readonly Dictionary<string, PathParameter> PathParameters = new(StringComparer.Ordinal)
    {
        ["variables/{id}"] = new("variable_not_found", "id", a => [a.Leaf, a.Root]),
        ["nodes/{id}"] = new("node_not_found", "id", a => [a.Node]),
        ["jobs/{id}"] = new("job_not_found", "id", a => [a.Job]),
        ["models/{id}"] = new("model_not_found", "id", a => [a.Model]),
        ["optimizers/{id}"] = new("optimizer_not_found", "id", a => [a.Optimizer]),
        ["datasets/{id}"] = new("dataset_not_found", "id", a => [a.Dataset]),
        ["programs/{id}"] = new("program_not_found", "id", a => [a.Program]),
        // A version number of the program before it, which exists in project A.
        ["versions/{version}"] = new("program_not_found", "id", _ => ["1"]),
        ["runs/{id}"] = new("run_not_found", "id", a => [a.ClientRun, a.TrainingRun]),
        ["checkpoints/{id}"] = new("checkpoint_not_found", "id", a => [a.Checkpoint]),
        ["schedules/{id}"] = new("schedule_not_found", "id", a => [a.Schedule]),
        ["webhook_endpoints/{id}"] = new("webhook_endpoint_not_found", "id", a => [a.Endpoint]),
        ["webhook_deliveries/{id}"] = new("webhook_delivery_not_found", "id", a => [a.Delivery]),
        ["events/{id}"] = new("event_not_found", "id", a => [a.Event]),
        ["projects/{id}"] = new("admin_key_required", null, a => [a.ProjectId]),
        ["api_keys/{keyId}"] = new("admin_key_required", null, a => [a.KeyId]),
        // Users and organizations belong to no project: only the admin key reaches them.
        ["users/{id}"] = new("admin_key_required", null, _ => [SomeUser]),
        ["organizations/{id}"] = new("admin_key_required", null, _ => [PrefixedId.Format(PrefixedId.Organization, Guid.CreateVersion7())]),
        ["members/{userId}"] = new("admin_key_required", null, _ => [SomeUser]),
        // An operation name, not an id: project A's variables go in the body (see Bodies).
        ["functions/{name}"] = new("variable_not_found", "x", _ => ["add"]),
    };

    private static readonly string[] AdminPrefixes = ["/v1/projects/", "/v1/admin/", "/v1/users/", "/v1/organizations/"];

    /// <summary>
    /// A body each operation with one would accept from project A, so that only the project, never
    /// the body, can be the reason for a refusal.
    /// </summary>
    private static readonly Dictionary<string, Func<ProjectA, object>> Bodies = new(StringComparer.Ordinal)
    {
        ["appendDatasetItems"] = _ => new { items = new[] { new { fields = new { input = "The lift is broken." }, answer = """{"sentiment": "negative"}""" } } },
        ["splitDataset"] = _ => new { method = "ratios", ratios = new[] { 0.5, 0.5 } },
        ["callFunction"] = a => new { x = a.Leaf, y = a.Other },
        ["addOptimizerParamGroup"] = a => new { @params = new[] { a.Param2 } },
        ["loadOptimizerStateDict"] = _ => new { param_groups = new[] { new { @params = new[] { 0 } } }, state = new { } },
        ["createApiKey"] = _ => new { name = "intruder" },
        ["createUserApiKey"] = _ => new { name = "intruder" },
        ["addOrganizationMember"] = _ => new { user_id = SomeUser },
        ["updateRun"] = _ => new { description = "changed by another project" },
        ["logRunMetric"] = _ => new { name = "loss", value = 1.0 },
        ["updateSchedule"] = _ => new { enabled = false },
        ["updateVariable"] = _ => new { data = "changed", role = "changed" },
        ["appendVariableGrad"] = a => new { variable_id = a.Other },
        ["copyVariable"] = a => new { source_id = a.Other },
        ["castVariable"] = _ => new { dtype = "str" },
        ["updateWebhookEndpoint"] = _ => new { enabled = false },
        ["rotateWebhookSecret"] = _ => new { expire_previous_in_seconds = 0 },
    };

    [Fact]
    public async Task EveryIdTakingOperation_CalledWithAnotherProjectsIds_Is404_AndChangesNothing()
    {
        // Made before any host of another test class is disposed: Hangfire keeps its log provider process-wide.
        _ = app.Services.GetRequiredService<IBackgroundJobClient>();
        _ = app.Services.GetRequiredService<IRecurringJobManager>();
        var a = await app.CreateProjectAsync("cross-project A");
        var b = await app.CreateProjectAsync("cross-project B");
        var ids = await CreateEveryKindAsync(a);
        var own = await CreateOwnResourcesAsync(b);
        var before = await SnapshotAsync(a, ids);

        var operations = await IdTakingOperationsAsync();
        Assert.True(operations.Count >= 60, $"only {operations.Count} id-taking operations in the document");
        var failures = new List<string>();
        var calls = 0;
        foreach (var operation in operations)
        {
            foreach (var call in Expand(operation, ids, failures))
            {
                calls++;
                using var response = await b.Client.SendRawAsync(new HttpMethod(operation.Method), call.Path, call.Body);
                await CheckAsync(failures, $"{operation.Id}: {operation.Method} {call.Path}", response, call.Status, call.Code, call.Param);
            }
        }

        foreach (var body in BodyCases(ids, own))
        {
            calls++;
            using var response = await b.Client.SendAsync(body.Request());
            await CheckAsync(failures, $"{body.What}: {body.Method} {body.Path}", response, 404, body.Code, body.Param);
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {calls} calls with another project's ids did not answer as expected:\n"
            + string.Join("\n", failures));

        var after = await SnapshotAsync(a, ids);
        var changed = before.Where(kv => after[kv.Key] != kv.Value).Select(kv => $"{kv.Key}:\n  before {kv.Value}\n  after  {after[kv.Key]}").ToList();
        Assert.True(changed.Count == 0, "project A changed:\n" + string.Join("\n", changed));
        var leaf = await a.Client.GetJsonAsync($"/v1/variables/{ids.Leaf}");
        Assert.Equal("abc", leaf.GetProperty("data").GetString());
        Assert.Equal("first input", leaf.GetProperty("role").GetString());
        Assert.Single(leaf.GetProperty("grad").EnumerateArray());
        Assert.True((await a.Client.GetJsonAsync($"/v1/schedules/{ids.Schedule}")).GetProperty("enabled").GetBoolean());
        Assert.True((await a.Client.GetJsonAsync($"/v1/webhook_endpoints/{ids.Endpoint}")).GetProperty("enabled").GetBoolean());
        Assert.Equal("queued", (await a.Client.GetJsonAsync($"/v1/jobs/{ids.Job}")).GetProperty("status").GetString());
        Assert.Equal(ids.Model, (await a.Client.GetJsonAsync("/v1/backward_model")).GetProperty("model_id").GetString());
    }

    [Fact]
    public async Task ChangingAnotherProjectsSchedule_DoesNotWaitForItsRowLock()
    {
        _ = app.Services.GetRequiredService<IBackgroundJobClient>();
        _ = app.Services.GetRequiredService<IRecurringJobManager>();
        var a = await app.CreateProjectAsync("cross-project A");
        var b = await app.CreateProjectAsync("cross-project B");
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(a, RegisterModelAsync);
        var schedule = Id(await a.Client.PostJsonAsync("/v1/schedules",
            new { name = "yearly", cron = "0 0 1 1 *", run_template = FacilityRun(program, dataset, model) }));
        Assert.True(PrefixedId.TryParse(PrefixedId.Schedule, schedule, out var scheduleId));

        // Project A's own change (or a firing) holds the row; a stranger's request must not queue behind it.
        Task<HttpResponseMessage> patch;
        bool answeredAtOnce;
        await using (var db = app.CreateDbContext())
        {
            await using var tx = await db.Database.BeginTransactionAsync();
            await db.Database.ExecuteSqlAsync($"SELECT 1 FROM schedules WHERE id = {scheduleId} FOR UPDATE");
            patch = b.Client.SendRawAsync(HttpMethod.Patch, $"/v1/schedules/{schedule}", "{\"enabled\": false}");
            answeredAtOnce = await Task.WhenAny(patch, Task.Delay(TimeSpan.FromSeconds(5))) == patch;
            await tx.RollbackAsync();
        }

        using var response = await patch;
        Assert.True(answeredAtOnce, "PATCH of another project's schedule waited for that schedule's row lock");
        await response.AssertProblemAsync(404, "schedule_not_found");
        Assert.True((await a.Client.GetJsonAsync($"/v1/schedules/{schedule}")).GetProperty("enabled").GetBoolean());
    }

    /// <summary>
    /// Every operation of the served document whose path has a parameter; deletes last, so that one
    /// wrongly allowed cannot hide what the others would do.
    /// </summary>
    private async Task<List<Operation>> IdTakingOperationsAsync()
    {
        using var client = app.CreateClient();
        var document = JsonNode.Parse(await client.GetStringAsync("/swagger/v1/swagger.json"))!;
        return [.. document["paths"]!.AsObject()
            .Where(path => path.Key.Contains('{', StringComparison.Ordinal))
            .SelectMany(path => path.Value!.AsObject()
                .Where(op => Methods.Contains(op.Key))
                .Select(op => new Operation(op.Value!["operationId"]!.GetValue<string>(), op.Key.ToUpperInvariant(), path.Key,
                    op.Value!["requestBody"] is not null)))
            .OrderBy(op => op.Method == "DELETE")];
    }

    /// <summary>
    /// The calls to make for an operation: its path with each of project A's ids for its parameters,
    /// its body, and the answer expected. Admin routes refuse a project key before looking at ids.
    /// </summary>
    private static List<Call> Expand(Operation operation, ProjectA a, List<string> failures)
    {
        var segments = operation.Path.Split('/');
        var paths = new List<string> { string.Empty };
        PathParameter? first = null;
        for (var i = 1; i < segments.Length; i++)
        {
            var segment = segments[i];
            if (!segment.StartsWith('{'))
            {
                paths = [.. paths.Select(p => $"{p}/{segment}")];
                continue;
            }

            var key = $"{segments[i - 1]}/{segment}";
            if (!PathParameters.TryGetValue(key, out var parameter))
            {
                failures.Add($"{operation.Id}: {operation.Method} {operation.Path}: no id of project A for '{key}'; add it to PathParameters.");
                return [];
            }

            first ??= parameter;
            paths = [.. paths.SelectMany(p => parameter.Ids(a).Select(id => $"{p}/{id}"))];
        }

        string? body = null;
        if (operation.HasBody)
        {
            if (!Bodies.TryGetValue(operation.Id, out var make))
            {
                failures.Add($"{operation.Id}: {operation.Method} {operation.Path}: takes a body but has none in Bodies; add one project A would accept.");
                return [];
            }

            body = JsonSerializer.Serialize(make(a));
        }

        var admin = AdminPrefixes.Any(prefix => operation.Path.StartsWith(prefix, StringComparison.Ordinal));
        return [.. paths.Select(path => admin
            ? new Call(path, body, 401, "admin_key_required", null)
            : new Call(path, body, 404, first!.Code, first.Param))];
    }

    /// <summary>Ids of project A inside the bodies of project B's calls on B's own resources.</summary>
    private static IEnumerable<BodyCase> BodyCases(ProjectA a, ProjectB b)
    {
        var bRun = (JsonObject)FacilityRun(b.Program, b.Dataset, b.Model);
        JsonObject Run(Action<JsonObject> edit)
        {
            var copy = bRun.DeepClone().AsObject();
            edit(copy);
            return copy;
        }

        yield return Json("function, a variable", "POST", "/v1/functions/add", new { x = b.Leaf, y = a.Leaf }, "variable_not_found", "y");
        yield return Json("chat completion, the model", "POST", "/v1/functions/chat_completion",
            new { model_id = a.Model, messages = new[] { new { role = "user", content = new[] { b.Leaf } } } }, "model_not_found", null);
        yield return Json("chat completion, a message", "POST", "/v1/functions/chat_completion",
            new { model_id = b.Model, messages = new[] { new { role = "user", content = new[] { a.Leaf } } } }, "variable_not_found", null);
        yield return Json("backward, a root", "POST", "/v1/backward", new { variables = new[] { a.Root } }, "variable_not_found", "variables[0]");
        yield return Json("backward, a gradient", "POST", "/v1/backward",
            new { variables = new[] { b.Root }, grad_variables = new[] { a.Other } }, "variable_not_found", "grad_variables[0]");
        yield return Json("backward, an input", "POST", "/v1/backward", new { variables = new[] { b.Root }, inputs = new[] { a.Leaf } }, "variable_not_found", "inputs[0]");
        yield return Json("gradient of one's own variable", "POST", $"/v1/variables/{b.Leaf}/grad", new { variable_id = a.Other }, "variable_not_found", "variable_id");
        yield return Json("copy into one's own variable", "POST", $"/v1/variables/{b.Leaf}/copy", new { source_id = a.Leaf }, "variable_not_found", "source_id");
        yield return Json("backward model", "PUT", "/v1/backward_model", new { model_id = a.Model }, "model_not_found", "model_id");
        yield return Json("optimizer, the model", "POST", "/v1/optimizers", new { type = "tgd", model_id = a.Model, @params = new[] { b.Param2 } }, "model_not_found", "model_id");
        yield return Json("optimizer, a parameter", "POST", "/v1/optimizers", new { type = "tgd", model_id = b.Model, @params = new[] { a.Param } }, "variable_not_found", "params[0]");
        yield return Json("optimizer, a group's parameter", "POST", "/v1/optimizers",
            new { type = "tgd", model_id = b.Model, param_groups = new[] { new { @params = new[] { a.Param } } } }, "variable_not_found", "param_groups[0].params[0]");
        yield return Json("optimizer, a group's model", "POST", "/v1/optimizers",
            new { type = "tgd", model_id = b.Model, param_groups = new[] { new { @params = new[] { b.Param2 }, model_id = a.Model } } }, "model_not_found", "param_groups[0].model_id");
        yield return Json("optimizer, a constraint", "POST", "/v1/optimizers",
            new { type = "tgd", model_id = b.Model, @params = new[] { b.Param2 }, constraints = new[] { a.Other } }, "variable_not_found", "constraints[0]");
        yield return Json("optimizer, a message", "POST", "/v1/optimizers",
            new { type = "tgd", model_id = b.Model, @params = new[] { b.Param2 }, messages = new[] { new { role = "system", content = new[] { a.Other } } } },
            "variable_not_found", "messages[0].content[0]");
        yield return Json("optimizer, an input", "POST", "/v1/optimizers",
            new { type = "tgd", model_id = b.Model, @params = new[] { b.Param2 }, inputs = new { context = a.Other } }, "variable_not_found", "inputs.context");
        yield return Json("new group, a parameter", "POST", $"/v1/optimizers/{b.Optimizer}/param_groups", new { @params = new[] { a.Param } }, "variable_not_found", "params[0]");
        yield return Json("new group, the model", "POST", $"/v1/optimizers/{b.Optimizer}/param_groups",
            new { @params = new[] { b.Param2 }, model_id = a.Model }, "model_not_found", "model_id");
        yield return Json("state dict, a snapshot", "PUT", $"/v1/optimizers/{b.Optimizer}/state_dict",
            StateDict(a.Other, b.Leaf), "variable_not_found", "state.0.momentum_buffer[0].snapshot_id");
        yield return Json("state dict, a gradient", "PUT", $"/v1/optimizers/{b.Optimizer}/state_dict",
            StateDict(b.Leaf, a.Other), "variable_not_found", "state.0.momentum_buffer[0].gradient_ids[0]");
        yield return Json("run, the program", "POST", "/v1/runs", Run(r => r["program_id"] = a.Program), "program_not_found", "program_id");
        yield return Json("run, the dataset", "POST", "/v1/runs", Run(r => r["dataset"]!["id"] = a.Dataset), "dataset_not_found", "dataset.id");
        yield return Json("run, a model", "POST", "/v1/runs", Run(r => r["models"]!["forward"] = a.Model), "model_not_found", "models.forward");
        yield return Json("run, the checkpoint", "POST", "/v1/runs", Run(r => r["from_checkpoint_id"] = a.Checkpoint), "checkpoint_not_found", "from_checkpoint_id");
        yield return Json("schedule, the program", "POST", "/v1/schedules",
            new { name = "borrowed", cron = "0 0 1 1 *", run_template = Run(r => r["program_id"] = a.Program) }, "program_not_found", "run_template.program_id");
        yield return Json("schedule change, the dataset", "PATCH", $"/v1/schedules/{b.Schedule}",
            new { run_template = Run(r => r["dataset"]!["id"] = a.Dataset) }, "dataset_not_found", "run_template.dataset.id");
        yield return new BodyCase("optimizer import, the model", "POST", $"/v1/imports?model_id={a.Model}", "model_not_found", "model_id", () =>
        {
            var content = new ByteArrayContent(b.OptimizerArchive);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
            return content;
        });

        static object StateDict(string snapshot, string gradient) => new
        {
            param_groups = new[] { new { @params = new[] { 0 }, momentum = 1 } },
            state = new Dictionary<string, object> { ["0"] = new { momentum_buffer = new[] { new { snapshot_id = snapshot, gradient_ids = new[] { gradient } } } } },
        };
    }

    private static BodyCase Json(string what, string method, string path, object body, string code, string? param) =>
        new(what, method, path, code, param, () =>
        {
            var content = new StringContent(JsonSerializer.Serialize(body));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            return content;
        });

    private static async Task CheckAsync(List<string> failures, string what, HttpResponseMessage response, int status, string code, string? param)
    {
        try
        {
            var problem = await response.AssertProblemAsync(status, code);
            if (param is not null)
            {
                Assert.True(problem.GetProperty("param").GetString() == param, $"expected param {param}: {problem}");
            }
        }
        catch (XunitException e)
        {
            failures.Add($"{what}: {e.Message}");
        }
    }

    /// <summary>One real resource of every kind a path can name, all in project A.</summary>
    private async Task<ProjectA> CreateEveryKindAsync(TestProject a)
    {
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(a, RegisterModelAsync);
        await a.Client.PutJsonAsync("/v1/backward_model", new { model_id = model });
        var leaf = await a.VariableAsync("abc", "first input", requiresGrad: true);
        var other = await a.VariableAsync("def", "second input");
        var sum = await a.CallAsync("add", new { x = leaf, y = other });
        var root = sum.GetProperty("outputs")[0].GetProperty("id").GetString()!;
        var node = sum.GetProperty("node").GetProperty("id").GetString()!;
        await a.Client.PostJsonAsync($"/v1/variables/{leaf}/grad", new { variable_id = other });
        var param = await ParameterAsync(a, "Answer in one word.");
        var param2 = await ParameterAsync(a, "Be polite.");
        await a.Client.PostJsonAsync($"/v1/variables/{param}/grad", new { variable_id = other });
        var optimizer = Id(await a.Client.PostJsonAsync("/v1/optimizers", new { type = "tgd", model_id = model, @params = new[] { param }, momentum = 1 }));

        var clientRun = Id(await a.Client.PostJsonAsync("/v1/runs", new { name = "client-driven" }));
        await a.Client.PostJsonAsync($"/v1/runs/{clientRun}/metrics", new { name = "loss", value = 0.5 });
        var trainingRun = await a.Client.PostJsonAsync("/v1/runs", FacilityRun(program, dataset, model));
        var job = trainingRun.GetProperty("job_id").GetString()!;
        var checkpoint = await CheckpointAsync(a, Id(trainingRun), program);
        var schedule = Id(await a.Client.PostJsonAsync("/v1/schedules",
            new { name = "yearly", cron = "0 0 1 1 *", run_template = FacilityRun(program, dataset, model) }));

        var endpoint = Id(await a.Client.PostJsonAsync("/v1/webhook_endpoints", new { url = "https://93.184.216.34/hook", events = new[] { "*" } }));
        // Events come from the outbox in the transaction of a change; publishing one queues a delivery to the endpoint.
        Assert.True(PrefixedId.TryParse(PrefixedId.Project, a.Id, out var projectId));
        await using (var db = app.CreateDbContext())
        {
            await db.PublishAsync(projectId, EventTypes.JobSucceeded, new { id = job, job_type = "fit", error_code = (string?)null },
                DateTimeOffset.UtcNow, CancellationToken.None);
        }

        var evt = Id(Assert.Single((await a.Client.GetJsonAsync("/v1/events")).GetProperty("data").EnumerateArray()));
        var delivery = Id(Assert.Single((await a.Client.GetJsonAsync($"/v1/webhook_endpoints/{endpoint}/deliveries")).GetProperty("data").EnumerateArray()));
        return new ProjectA(leaf, other, root, node, param, param2, job, model, optimizer, dataset, program, clientRun, Id(trainingRun), checkpoint,
            schedule, endpoint, delivery, evt, a.Id, a.KeyId);
    }

    /// <summary>
    /// A baseline checkpoint of the training run, as the Worker writes before training. No worker
    /// runs here, so the row is written as the Worker would write it.
    /// </summary>
    private async Task<string> CheckpointAsync(TestProject a, string run, string program)
    {
        Assert.True(PrefixedId.TryParse(PrefixedId.Project, a.Id, out var projectId));
        Assert.True(PrefixedId.TryParse(PrefixedId.Run, run, out var runId));
        Assert.True(PrefixedId.TryParse(PrefixedId.Program, program, out var programId));
        var checkpoint = new RunCheckpoint
        {
            Id = PrefixedId.NewGuid(),
            ProjectId = projectId,
            RunId = runId,
            ProgramId = programId,
            Kind = RunCheckpoint.BaselineKind,
            Epoch = 0,
            State = JsonSerializer.Serialize(TrainingState.Initial(new Dictionary<string, string> { ["sentiment_task"] = FacilityTraining.InitialPrompt }),
                JobEventLog.Json),
            Progress = "{}",
            CostUsd = 0m,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        await using var db = app.CreateDbContext();
        db.RunCheckpoints.Add(checkpoint);
        await db.SaveChangesAsync();
        return PrefixedId.Format(PrefixedId.Checkpoint, checkpoint.Id);
    }

    /// <summary>Project B's own resources, for calls that name A's ids only in their bodies.</summary>
    private static async Task<ProjectB> CreateOwnResourcesAsync(TestProject b)
    {
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(b, RegisterModelAsync);
        var leaf = await b.VariableAsync("xyz", "own input", requiresGrad: true);
        var root = await b.OutputAsync("add", new { x = leaf, y = leaf });
        var param = await ParameterAsync(b, "Answer briefly.");
        var param2 = await ParameterAsync(b, "Answer kindly.");
        var optimizer = Id(await b.Client.PostJsonAsync("/v1/optimizers", new { type = "tgd", model_id = model, @params = new[] { param }, momentum = 1 }));
        var schedule = Id(await b.Client.PostJsonAsync("/v1/schedules",
            new { name = "own", cron = "0 0 1 1 *", run_template = FacilityRun(program, dataset, model) }));
        using var export = await b.Client.GetAsync($"/v1/optimizers/{optimizer}/export");
        Assert.True(export.StatusCode == HttpStatusCode.OK, $"optimizer export: {(int)export.StatusCode} {await export.Content.ReadAsStringAsync()}");
        var archive = await export.Content.ReadAsByteArrayAsync();
        return new ProjectB(leaf, root, param2, model, optimizer, dataset, program, schedule, archive);
    }

    /// <summary>What project A shows of everything it owns, read with A's key (and the admin key for its API keys).</summary>
    private async Task<Dictionary<string, string>> SnapshotAsync(TestProject a, ProjectA ids)
    {
        string[] paths =
        [
            "/v1/variables", $"/v1/variables/{ids.Leaf}", $"/v1/variables/{ids.Root}", $"/v1/variables/{ids.Leaf}/grad",
            $"/v1/variables/{ids.Param}/grad", $"/v1/variables/{ids.Root}/graph", $"/v1/nodes/{ids.Node}",
            "/v1/jobs", $"/v1/jobs/{ids.Job}", $"/v1/jobs/{ids.Job}/events",
            "/v1/models", $"/v1/models/{ids.Model}", $"/v1/models/{ids.Model}/usage", "/v1/backward_model",
            "/v1/optimizers", $"/v1/optimizers/{ids.Optimizer}", $"/v1/optimizers/{ids.Optimizer}/state_dict",
            "/v1/datasets", $"/v1/datasets/{ids.Dataset}", $"/v1/datasets/{ids.Dataset}/versions", $"/v1/datasets/{ids.Dataset}/items?limit=3",
            "/v1/programs", $"/v1/programs/{ids.Program}", $"/v1/programs/{ids.Program}/versions",
            "/v1/runs", $"/v1/runs/{ids.ClientRun}", $"/v1/runs/{ids.ClientRun}/metrics", $"/v1/runs/{ids.TrainingRun}",
            $"/v1/runs/{ids.TrainingRun}/checkpoints", $"/v1/checkpoints/{ids.Checkpoint}",
            "/v1/schedules", $"/v1/schedules/{ids.Schedule}", $"/v1/schedules/{ids.Schedule}/firings",
            "/v1/webhook_endpoints", $"/v1/webhook_endpoints/{ids.Endpoint}", $"/v1/webhook_endpoints/{ids.Endpoint}/deliveries",
            $"/v1/webhook_deliveries/{ids.Delivery}", "/v1/events", $"/v1/events/{ids.Event}",
        ];
        var snapshot = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            snapshot[path] = (await a.Client.GetJsonAsync(path)).GetRawText();
        }

        using var admin = app.CreateAdminClient();
        var keysPath = $"/v1/projects/{ids.ProjectId}/api_keys";
        snapshot[keysPath] = (await admin.GetJsonAsync(keysPath)).GetRawText();
        return snapshot;
    }

    /// <summary>The Facility training run over a project's own program, dataset and model.</summary>
    private static JsonNode FacilityRun(string program, string dataset, string model) =>
        JsonSerializer.SerializeToNode(FacilityTraining.RunBody(program, dataset, model))!;

    private static async Task<string> ParameterAsync(TestProject project, string text) =>
        Id(await project.Client.PostJsonAsync("/v1/variables", new { data = text, role = "system prompt", is_parameter = true }));

    /// <summary>A model client on a host name; never called, since every call here is refused first.</summary>
    private static async Task<string> RegisterModelAsync(TestProject project) =>
        Id(await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = "https://models.example.com/v1",
            api_key = "sk-x",
            default_completion_args = new { model = "gpt-4o" },
        }));

    private static string Id(JsonElement resource) => resource.GetProperty("id").GetString()!;

    private sealed record Operation(string Id, string Method, string Path, bool HasBody);

    private sealed record PathParameter(string Code, string? Param, Func<ProjectA, string[]> Ids);

    private sealed record Call(string Path, string? Body, int Status, string Code, string? Param);

    private sealed record BodyCase(string What, string Method, string Path, string Code, string? Param, Func<HttpContent> Content)
    {
        public HttpRequestMessage Request() => new(new HttpMethod(Method), Path) { Content = Content() };
    }

    private sealed record ProjectA(
        string Leaf, string Other, string Root, string Node, string Param, string Param2, string Job, string Model, string Optimizer,
        string Dataset, string Program, string ClientRun, string TrainingRun, string Checkpoint, string Schedule, string Endpoint,
        string Delivery, string Event, string ProjectId, string KeyId);

    private sealed record ProjectB(
        string Leaf, string Root, string Param2, string Model, string Optimizer, string Dataset, string Program, string Schedule,
        byte[] OptimizerArchive);
}
