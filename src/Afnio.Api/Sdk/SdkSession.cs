using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Auth;
using Afnio.Api.Sdk.Methods;
using Afnio.Api.Sdk.Rpc;
using Afnio.Data;
using Afnio.Data.Accounts;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Sdk;

/// <summary>
/// One afnio client connection: it spans several runs (each call names its run with <c>run_uuid</c>),
/// so objects are scoped by the run's project, and the session remembers what the client already
/// holds (nodes and variables) so pushes never name something the client does not know.
/// </summary>
public sealed class SdkSession
{
    /// <summary>The methods the client waits for as long as heartbeats come.</summary>
    public static readonly IReadOnlySet<string> LongRunningMethods =
        new HashSet<string>(["run_function", "run_backward", "run_step", "run_optimizer_tgd"], StringComparer.Ordinal);

    private static readonly TimeSpan RecheckAfter = TimeSpan.FromSeconds(30);

    private static readonly Dictionary<string, Func<SdkCall, Task<JsonNode?>>> Methods = new(StringComparer.Ordinal)
    {
        ["create_variable"] = VariableMethods.CreateVariableAsync,
        ["update_variable"] = VariableMethods.UpdateVariableAsync,
        ["append_grad"] = VariableMethods.AppendGradAsync,
        ["get_variable"] = VariableMethods.GetVariableAsync,
        ["run_function"] = FunctionMethods.RunFunctionAsync,
        ["get_backprop_ids"] = BackwardMethods.GetBackpropIdsAsync,
        ["run_backward"] = BackwardMethods.RunBackwardAsync,
        ["create_model"] = ModelMethods.CreateModelAsync,
        ["set_model_singleton"] = ModelMethods.SetModelSingletonAsync,
        ["clear_model_usage"] = ModelMethods.ClearModelUsageAsync,
        ["create_optimizer"] = OptimizerMethods.CreateOptimizerAsync,
        ["add_param_group"] = OptimizerMethods.AddParamGroupAsync,
        ["run_step"] = OptimizerMethods.RunStepAsync,
        ["clear_grad"] = OptimizerMethods.ClearGradAsync,
        ["run_optimizer_tgd"] = OptimizerMethods.RunOptimizerTgdAsync,
    };

    private readonly IServiceScopeFactory _scopes;
    private readonly TimeProvider _clock;
    private readonly Dictionary<Guid, (Guid ProjectId, DateTimeOffset CheckedAt)> _runs = [];
    private DateTimeOffset _keyCheckedAt;

    public SdkSession(WebSocket socket, UserContext user, IServiceProvider services, ILogger log)
    {
        User = user;
        _scopes = services.GetRequiredService<IServiceScopeFactory>();
        _clock = services.GetRequiredService<TimeProvider>();
        Options = services.GetRequiredService<IOptions<SdkOptions>>().Value;
        _keyCheckedAt = _clock.GetUtcNow();
        Rpc = new RpcConnection(socket, Options, log, LongRunningMethods, DispatchAsync);
    }

    public string Id { get; } = Guid.NewGuid().ToString();

    public UserContext User { get; }

    public SdkOptions Options { get; }

    public RpcConnection Rpc { get; }

    /// <summary>Nodes the client has been told of (create_node), so each is announced once.</summary>
    public HashSet<Guid> KnownNodes { get; } = [];

    /// <summary>Variables the client holds: its own, the outputs it was given, and those pushed to it.</summary>
    public HashSet<Guid> KnownVariables { get; } = [];

    /// <summary>Model clients the client registered on this connection; only they get usage pushes.</summary>
    public HashSet<Guid> KnownModels { get; } = [];

    public Task RunAsync(CancellationToken stopping) =>
        Rpc.RunAsync(new JsonObject { ["jsonrpc"] = "2.0", ["result"] = new JsonObject { ["session_id"] = Id } }, stopping);

    private async Task<JsonNode?> DispatchAsync(RpcRequest request, CancellationToken ct)
    {
        if (!Methods.TryGetValue(request.Method, out var handler))
        {
            throw new RpcException(RpcCodes.MethodNotFound, $"Method '{request.Method}' not found.", "method_not_found",
                extra: new JsonObject { ["method"] = request.Method });
        }

        await using var scope = _scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AfnioDbContext>();
        await EnsureKeyValidAsync(db, ct);
        var project = new ProjectContext(await ProjectOfAsync(db, request.Params, ct), User.ApiKeyId);
        return await handler(new SdkCall(this, request, scope.ServiceProvider, db, project, ct));
    }

    /// <summary>The project of the call's run, when the key's user belongs to the namespace that owns it.</summary>
    private async Task<Guid> ProjectOfAsync(AfnioDbContext db, JsonObject parameters, CancellationToken ct)
    {
        var runUuid = parameters["run_uuid"] as JsonValue;
        if (runUuid is null || runUuid.GetValueKind() != JsonValueKind.String)
        {
            throw new RpcException(RpcCodes.InvalidParams, "No active run is set: every call needs 'run_uuid' (start one with tellurio.init).",
                "run_required", "run_uuid");
        }

        var text = runUuid.GetValue<string>();
        if (!Guid.TryParse(text, out var runId) && !PrefixedId.TryParse(PrefixedId.Run, text, out runId))
        {
            throw UnknownRun(text);
        }

        var now = _clock.GetUtcNow();
        if (_runs.TryGetValue(runId, out var known) && now - known.CheckedAt < RecheckAfter)
        {
            return known.ProjectId;
        }

        var projectId = await db.Runs.AsNoTracking().Where(r => r.Id == runId).Select(r => (Guid?)r.ProjectId).SingleOrDefaultAsync(ct);
        if (projectId is null || !await db.CanReachProjectAsync(User.UserId, projectId.Value, ct))
        {
            _runs.Remove(runId);
            throw UnknownRun(text);
        }

        _runs[runId] = (projectId.Value, now);
        return projectId.Value;
    }

    /// <summary>A connection outlives a revoked key by at most <see cref="RecheckAfter"/>.</summary>
    private async Task EnsureKeyValidAsync(AfnioDbContext db, CancellationToken ct)
    {
        var now = _clock.GetUtcNow();
        if (now - _keyCheckedAt < RecheckAfter)
        {
            return;
        }

        if (!await db.UserApiKeys.AnyAsync(k => k.Id == User.ApiKeyId && k.RevokedAt == null, ct))
        {
            throw new RpcException(RpcCodes.InvalidRequest, "The API key of this connection was revoked.", "invalid_api_key");
        }

        _keyCheckedAt = now;
    }

    private static RpcException UnknownRun(string text) => new(RpcCodes.InvalidParams,
        $"Unknown run_uuid: '{text}'. Start a run with tellurio.init(namespace, project) in a namespace this key's user belongs to.", "run_not_found", "run_uuid");
}

/// <summary>Open afnio connections per user key in this process, bounded by <see cref="SdkOptions.MaxConnectionsPerKey"/>.</summary>
public sealed class SdkConnections
{
    private readonly ConcurrentDictionary<Guid, int> _open = new();

    public bool TryOpen(Guid keyId, int limit)
    {
        while (true)
        {
            var current = _open.GetValueOrDefault(keyId);
            if (current >= limit)
            {
                return false;
            }

            if (current == 0 ? _open.TryAdd(keyId, 1) : _open.TryUpdate(keyId, current + 1, current))
            {
                return true;
            }
        }
    }

    public void Close(Guid keyId)
    {
        while (true)
        {
            var current = _open.GetValueOrDefault(keyId);
            if (current <= 1 ? _open.TryRemove(new KeyValuePair<Guid, int>(keyId, current)) : _open.TryUpdate(keyId, current - 1, current))
            {
                return;
            }
        }
    }
}
