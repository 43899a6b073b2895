namespace Afnio.Api.Sdk;

/// <summary>Limits of the afnio protocol endpoint (<c>Afnio__Sdk__…</c>).</summary>
public sealed class SdkOptions
{
    public const string Section = "Afnio:Sdk";

    /// <summary>The largest message a client may send; a larger one is answered with a JSON-RPC error and not read further.</summary>
    public int MaxMessageBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// The largest message sent to a client. The afnio client closes its connection on anything over
    /// 1 MiB and cannot reconnect, so a larger result is refused with an error instead.
    /// </summary>
    public int MaxFrameBytes { get; set; } = 1024 * 1024;

    /// <summary>Open connections per user key, per API process; more are refused at the handshake with 429.</summary>
    public int MaxConnectionsPerKey { get; set; } = 8;

    /// <summary>Requests a connection may have queued or running; more are answered with an error.</summary>
    public int MaxRequestsInFlight { get; set; } = 16;

    /// <summary>How often a long call (run_function, run_backward, run_step, run_optimizer_tgd) sends a heartbeat; the client gives up after 30 s without one.</summary>
    public double HeartbeatSeconds { get; set; } = 5;

    /// <summary>A client that does not take a message within this time (it stopped reading) is disconnected.</summary>
    public double SendTimeoutSeconds { get; set; } = 30;

    /// <summary>How often the server pings, and how long a pong may take before the connection is closed.</summary>
    public double KeepAliveSeconds { get; set; } = 20;

    /// <summary>How long the server waits for the client to run one of its functions (run_callable).</summary>
    public double CallableTimeoutSeconds { get; set; } = 60;
}

public static class SdkSetup
{
    /// <summary>The afnio protocol's options and the per-key connection count.</summary>
    public static IServiceCollection AddAfnioSdk(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<SdkOptions>(configuration.GetSection(SdkOptions.Section));
        services.AddSingleton<SdkConnections>();
        return services;
    }
}
