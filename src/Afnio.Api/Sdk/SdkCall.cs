using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Api.Auth;
using Afnio.Api.Sdk.Rpc;
using Afnio.Data;
using Afnio.Domain.Common;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Sdk;

/// <summary>
/// One client request being handled: its params, the session, a fresh DbContext, and the project
/// of the run it names. Handlers read params through the helpers, which answer bad input with
/// JSON-RPC errors that name the parameter.
/// </summary>
public sealed class SdkCall(SdkSession session, RpcRequest request, IServiceProvider services, AfnioDbContext db, ProjectContext project, CancellationToken ct)
{
    public SdkSession Session { get; } = session;

    public string Method => request.Method;

    public JsonObject Params { get; } = request.Params;

    public IServiceProvider Services { get; } = services;

    public AfnioDbContext Db { get; } = db;

    public ProjectContext Project { get; } = project;

    public CancellationToken Cancellation { get; } = ct;

    public T Get<T>() where T : notnull => Services.GetRequiredService<T>();

    /// <summary>A parameter that must be present (it may be null only if <paramref name="allowNull"/>).</summary>
    public JsonNode? Required(string name, bool allowNull = false)
    {
        if (!Params.TryGetPropertyValue(name, out var value))
        {
            throw new RpcException(RpcCodes.InvalidParams, $"Missing key: '{name}'", "missing_field", name,
                new JsonObject { ["missing_key"] = name });
        }

        return value is null && !allowNull
            ? throw RpcException.InvalidParams($"'{name}' must not be null.", name, "invalid_type")
            : value;
    }

    public JsonNode? Optional(string name) => Params.TryGetPropertyValue(name, out var value) ? value : null;

    public string RequiredString(string name) =>
        Required(name) is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw RpcException.InvalidParams($"'{name}' must be a string.", name, "invalid_type");

    public bool? OptionalBool(string name) => Optional(name) switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        _ => throw RpcException.InvalidParams($"'{name}' must be true, false or null.", name, "invalid_type"),
    };

    /// <summary>Pushes a server request the client answers (create_node, append_grad, …).</summary>
    public Task PushAsync(string method, JsonObject parameters) => Session.Rpc.PushAsync(method, parameters, Cancellation);

    /// <summary>
    /// Checks that every variable exists in the caller's project, answering the first missing one with
    /// <c>Unknown variable_id: '…'</c>; another project's variable is just as unknown.
    /// </summary>
    public async Task EnsureVariablesAsync(IEnumerable<Guid> ids, string param)
    {
        var wanted = ids.Distinct().ToList();
        if (wanted.Count == 0)
        {
            return;
        }

        var found = (await Db.Variables.AsNoTracking().Where(v => v.ProjectId == Project.ProjectId && wanted.Contains(v.Id))
            .Select(v => v.Id).ToListAsync(Cancellation)).ToHashSet();
        if (wanted.FirstOrDefault(id => !found.Contains(id)) is var missing && missing != Guid.Empty)
        {
            throw SdkRefs.UnknownVariable(PrefixedId.Format(PrefixedId.Variable, missing), param);
        }
    }

    /// <summary>Checks that the model client exists in the caller's project.</summary>
    public async Task EnsureModelAsync(Guid id, string param)
    {
        if (!await Db.Models.AnyAsync(m => m.Id == id && m.ProjectId == Project.ProjectId, Cancellation))
        {
            throw new RpcException(RpcCodes.InvalidParams, $"Unknown model_id: '{PrefixedId.Format(PrefixedId.Model, id)}'", "model_not_found", param);
        }
    }

    /// <summary>Checks that the optimizer exists in the caller's project.</summary>
    public async Task EnsureOptimizerAsync(Guid id, string param)
    {
        if (!await Db.Optimizers.AnyAsync(o => o.Id == id && o.ProjectId == Project.ProjectId, Cancellation))
        {
            throw new RpcException(RpcCodes.InvalidParams, $"Unknown optimizer_id: '{PrefixedId.Format(PrefixedId.Optimizer, id)}'", "optimizer_not_found", param);
        }
    }
}
