using System.Text.Json.Nodes;
using Afnio.Api.Infrastructure;
using Afnio.Domain.Common;

namespace Afnio.Api.Sdk.Rpc;

/// <summary>JSON-RPC 2.0 error codes, as the afnio client names them.</summary>
public static class RpcCodes
{
    public const int ParseError = -32700;
    public const int InvalidRequest = -32600;
    public const int MethodNotFound = -32601;
    public const int InvalidParams = -32602;
    public const int InternalError = -32603;

    /// <summary>A valid request the server cannot carry out now (a conflict, a failed job, a provider failure).</summary>
    public const int ServerError = -32000;
}

/// <summary>
/// A JSON-RPC error to answer. <c>error.data.exception</c> is always present: the afnio client raises
/// it as <c>RuntimeError(data.exception)</c>, and crashes when <c>data</c> is missing.
/// </summary>
public sealed class RpcException(int code, string message, string? errorCode = null, string? param = null, JsonObject? extra = null) : Exception(message)
{
    public int Code { get; } = code;

    /// <summary>The service's stable error code (<c>variable_not_found</c>, …), as in REST problems.</summary>
    public string? ErrorCode { get; } = errorCode;

    public string? Param { get; } = param;

    public JsonObject ToError()
    {
        var data = new JsonObject { ["exception"] = Message };
        if (ErrorCode is not null)
        {
            data["code"] = ErrorCode;
        }

        if (Param is not null)
        {
            data["param"] = Param;
        }

        foreach (var (key, value) in extra ?? [])
        {
            data[key] = value?.DeepClone();
        }

        return new JsonObject { ["code"] = Code, ["message"] = Message, ["data"] = data };
    }

    public static RpcException InvalidParams(string message, string? param = null, string errorCode = "invalid_params") =>
        new(RpcCodes.InvalidParams, message, errorCode, param);

    /// <summary>The error for a failure of the service's own rules: the same code and message REST would answer.</summary>
    public static RpcException? From(Exception exception) => exception switch
    {
        RpcException rpc => rpc,
        ApiException api => new RpcException(api.Status is >= 400 and < 409 or 413 or 422 ? RpcCodes.InvalidParams : RpcCodes.ServerError,
            api.Message, api.Code, api.Param),
        AfnioException afnio => new RpcException(afnio.Kind is ErrorKind.InvalidArgument or ErrorKind.NotFound or ErrorKind.TooLarge ? RpcCodes.InvalidParams : RpcCodes.ServerError,
            afnio.Message, afnio.Code, afnio.Param),
        _ => null,
    };
}
