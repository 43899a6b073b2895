using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Autodiff;
using Afnio.Api.Jobs;
using Afnio.Api.Sdk.Rpc;
using Afnio.Data.Graph;
using Afnio.Data.LanguageModels;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Sdk.Methods;

/// <summary>
/// <c>get_backprop_ids</c> and <c>run_backward</c> (semantics §2.5): the pass runs as the same durable
/// backward job <c>POST /v1/backward</c> queues; the connection waits for it with heartbeats, then
/// pushes the backward model's usage, each new gradient (<c>append_grad</c>) and <c>clear_backward</c>
/// before the reply.
/// </summary>
public static class BackwardMethods
{
    public const string Succeeded = "Backward pass executed successfully.";

    public static async Task<JsonNode?> GetBackpropIdsAsync(SdkCall call)
    {
        var roots = ReadVariables(call.Required("variables"), "variables");
        await call.EnsureVariablesAsync(roots, "variables");
        return new JsonObject { ["variable_ids"] = new JsonArray([.. (await BackpropIdsAsync(call, roots)).Select(id => (JsonNode)PrefixedId.Format(PrefixedId.Variable, id))]) };
    }

    public static async Task<JsonNode?> RunBackwardAsync(SdkCall call)
    {
        var roots = ReadVariables(call.Required("variables"), "variables");
        var gradients = call.Optional("grad_variables") switch
        {
            null => null,
            JsonArray list => list.Select((g, i) => g is null ? null : (Guid?)SdkRefs.Variable(g, $"grad_variables[{i}]")).ToList(),
            var single => [SdkRefs.Variable(single, "grad_variables")],
        };
        var inputs = call.Optional("inputs") is { } given ? ReadVariables(given, "inputs") : null;
        await call.EnsureVariablesAsync([.. roots, .. gradients?.OfType<Guid>() ?? [], .. inputs ?? []], "variables");
        var pending = await BackpropIdsAsync(call, roots);

        var request = new BackwardRequest
        {
            Variables = [.. roots.Select(Id)],
            GradVariables = gradients?.Select(g => g is { } id ? Id(id) : null).ToList(),
            RetainGraph = call.OptionalBool("retain_graph"),
            CreateGraph = call.OptionalBool("create_graph") ?? false,
            Inputs = inputs?.Select(Id).ToList(),
        };
        var operations = OperationRegistry.Standard(call.Get<ModelGateway>().ForProject(call.Project.ProjectId),
            limits: call.Get<IOptions<OperationLimits>>().Value);
        var started = (await BackwardApi.StartBackward(request, operations, call.Db, call.Project,
            call.Get<TimeProvider>(), call.Cancellation)).Value!;
        var job = await SdkJobs.WaitAsync(call, started.Id);

        var backwardModel = await call.Db.Projects.AsNoTracking().Where(p => p.Id == call.Project.ProjectId).Select(p => p.BackwardModelId).SingleAsync(call.Cancellation);
        if (backwardModel is { } model)
        {
            await ModelMethods.PushUsageAsync(call, model);
        }

        // Gradients committed by the job (by every delivery of it, after a crash), in the order they were appended.
        var jobId = SdkRefs.GuidOf(PrefixedId.Job, job.Id);
        var appended = await call.Db.Database.SqlQuery<AppendedGradient>($"""
            SELECT g.variable_id, g.gradient_id, v.data, v.data_kind, v.role, v.requires_grad
            FROM job_steps s
            CROSS JOIN LATERAL jsonb_array_elements(s.result->'appends') a
            JOIN variable_gradients g ON g.gradient_id = (a.value->>'gradient_id')::uuid
            JOIN variables v ON v.id = g.gradient_id
            WHERE s.job_id = {jobId}
            ORDER BY g.seq
            """).ToListAsync(call.Cancellation);
        var known = call.Session.KnownVariables;
        foreach (var gradient in appended.Where(g => known.Contains(g.VariableId)))
        {
            known.Add(gradient.GradientId);
            await call.PushAsync("append_grad", new JsonObject
            {
                ["variable_id"] = Id(gradient.VariableId),
                ["gradient_id"] = Id(gradient.GradientId),
                ["gradient"] = new JsonObject
                {
                    ["data"] = JsonNode.Parse(Afnio.Domain.Variables.VariableData.FromStored(gradient.DataKind, gradient.Data).ToJson()),
                    ["role"] = gradient.Role,
                    ["requires_grad"] = gradient.RequiresGrad,
                },
            });
        }

        await call.PushAsync("clear_backward", new JsonObject
        {
            ["variable_ids"] = new JsonArray([.. pending.Where(known.Contains).Select(id => (JsonNode)Id(id))]),
        });
        SdkJobs.EnsureSucceeded(job);
        return new JsonObject { ["message"] = Succeeded };
    }

    /// <summary>
    /// The variables whose gradient lists the pass may change: every leaf that requires grad behind
    /// the roots (through its AccumulateGrad node), then the non-leaves behind them that retain grad.
    /// </summary>
    public static async Task<List<Guid>> BackpropIdsAsync(SdkCall call, IReadOnlyList<Guid> roots)
    {
        var rootNodes = await call.Db.Variables.AsNoTracking()
            .Where(v => v.ProjectId == call.Project.ProjectId && roots.Contains(v.Id) && v.GradFnId != null)
            .Select(v => new { v.Id, Node = v.GradFnId!.Value }).ToListAsync(call.Cancellation);
        var start = roots.SelectMany(r => rootNodes.Where(n => n.Id == r).Select(n => n.Node)).Distinct().ToList();
        if (start.Count == 0)
        {
            return [];
        }

        var graph = await call.Db.LoadReachableAsync(call.Project.ProjectId, start, null, call.Cancellation);
        var order = new List<Guid>();
        var seen = new HashSet<Guid>();
        var queue = new Queue<Guid>(start);
        while (queue.TryDequeue(out var node))
        {
            if (!seen.Add(node) || !graph.TryGetValue(node, out var current))
            {
                continue;
            }

            order.Add(node);
            foreach (var edge in current.NextFunctions)
            {
                if (edge.NodeId is { } next)
                {
                    queue.Enqueue(next);
                }
            }
        }

        var leaves = order.Select(n => graph[n].VariableId).OfType<Guid>().ToList();
        var retained = await call.Db.Variables.AsNoTracking()
            .Where(v => v.ProjectId == call.Project.ProjectId && v.RetainGrad && v.GradFnId != null && order.Contains(v.GradFnId.Value))
            .OrderBy(v => v.Id).Select(v => v.Id).ToListAsync(call.Cancellation);
        return [.. leaves.Concat(retained).Distinct()];
    }

    /// <summary>One reference or a list of them, as the client sends <c>variables</c> and <c>inputs</c>.</summary>
    public static List<Guid> ReadVariables(JsonNode? node, string param) => node switch
    {
        JsonArray list => [.. list.Select((v, i) => SdkRefs.Variable(v, $"{param}[{i}]"))],
        _ => [SdkRefs.Variable(node, param)],
    };

    private static string Id(Guid id) => PrefixedId.Format(PrefixedId.Variable, id);

    private sealed record AppendedGradient(Guid VariableId, Guid GradientId, string Data, string DataKind, string Role, bool RequiresGrad);
}

/// <summary>Waiting for the durable jobs the protocol's long calls run as.</summary>
public static class SdkJobs
{
    /// <summary>
    /// Waits until the job has finished, however long it takes (a Worker may be killed and another
    /// resume the job); the connection's heartbeats keep the client waiting meanwhile.
    /// </summary>
    public static async Task<JobResponse> WaitAsync(SdkCall call, string jobId)
    {
        var id = SdkRefs.GuidOf(PrefixedId.Job, jobId);
        var clock = call.Get<TimeProvider>();
        var fallback = JobsApi.Fallback(call.Get<Microsoft.Extensions.Options.IOptions<Infrastructure.AfnioOptions>>());
        // The session checks its key itself (SdkSession.EnsureKeyValidAsync); the wait follows the job only.
        using var waiter = call.Get<JobSignals>().Watch(id, keyId: null);
        while (true)
        {
            var job = await JobsApi.WaitAsync(call.Db, waiter, j => j.Id == id && j.ProjectId == call.Project.ProjectId, JobsApi.MaxWaitSeconds,
                fallback, clock, call.Cancellation);
            if (job.Status is Data.Jobs.JobStatus.Succeeded or Data.Jobs.JobStatus.Failed or Data.Jobs.JobStatus.Cancelled)
            {
                return job;
            }
        }
    }

    /// <summary>A failed or cancelled job becomes the call's error, with the job's own code and message.</summary>
    public static void EnsureSucceeded(JobResponse job)
    {
        if (job.Status == Data.Jobs.JobStatus.Succeeded)
        {
            return;
        }

        var message = job.Error?.Message ?? $"The job {job.Id} was cancelled.";
        throw new RpcException(RpcCodes.ServerError, message, job.Error?.Code ?? "job_cancelled",
            extra: new JsonObject { ["job_id"] = job.Id });
    }

    internal static JsonElement ResultOf(JobResponse job) => job.Result ?? JsonSerializer.SerializeToElement(new { });
}
