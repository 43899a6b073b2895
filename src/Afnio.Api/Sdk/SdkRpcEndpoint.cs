using System.Net.WebSockets;
using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Api.Sdk.Rpc;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Sdk;

/// <summary>
/// The afnio client's WebSocket JSON-RPC channel, <c>/ws/v0/rpc/</c>. The handshake authenticates the
/// user key (a bad key fails it with 401), the 101 response leaves together with the welcome frame,
/// and the session then serves the connection.
/// </summary>
public static partial class SdkRpcEndpoint
{
    public static IEndpointRouteBuilder MapSdkRpc(this IEndpointRouteBuilder app)
    {
        app.Map("/ws/v0/rpc/", HandleAsync).RequireAuthorization(AuthSetup.UserPolicy).WithMetadata(new UserKeyEndpoint()).ExcludeFromDescription();
        return app;
    }

    private static async Task HandleAsync(HttpContext http)
    {
        if (!http.WebSockets.IsWebSocketRequest)
        {
            await Problems.WriteAsync(http, StatusCodes.Status400BadRequest, "websocket_required",
                "This is the afnio protocol's WebSocket endpoint: connect with a WebSocket (the afnio client does).");
            return;
        }

        var services = http.RequestServices;
        var options = services.GetRequiredService<IOptions<SdkOptions>>().Value;
        var user = services.GetRequiredService<UserContext>();
        var connections = services.GetRequiredService<SdkConnections>();
        if (!connections.TryOpen(user.ApiKeyId, options.MaxConnectionsPerKey))
        {
            http.Response.Headers.RetryAfter = "5";
            await Problems.WriteAsync(http, StatusCodes.Status429TooManyRequests, "too_many_connections",
                $"This key has {options.MaxConnectionsPerKey} connections open already; close one first.");
            return;
        }

        var log = services.GetRequiredService<ILoggerFactory>().CreateLogger("Afnio.Api.Sdk");
        try
        {
            // The 101 waits in the connection's buffer and leaves with the welcome frame, in one write.
            http.Features.Get<IUpgradeResponseHold>()?.HoldNextFlush();
            using var socket = await http.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
            {
                KeepAliveInterval = TimeSpan.FromSeconds(options.KeepAliveSeconds),
                KeepAliveTimeout = TimeSpan.FromSeconds(options.KeepAliveSeconds),
                DangerousEnableCompression = false,
            });
            var session = new SdkSession(socket, user, services, log);
            LogOpened(log, session.Id);
            await session.RunAsync(http.RequestAborted);
            LogClosed(log, session.Id);
        }
        finally
        {
            connections.Close(user.ApiKeyId);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "afnio session {SessionId} opened")]
    private static partial void LogOpened(ILogger logger, string sessionId);

    [LoggerMessage(Level = LogLevel.Information, Message = "afnio session {SessionId} closed")]
    private static partial void LogClosed(ILogger logger, string sessionId);
}
