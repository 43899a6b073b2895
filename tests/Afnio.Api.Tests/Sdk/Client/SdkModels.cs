using System.Text.Json.Nodes;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>Knobs of the simulated afnio client; the defaults are the Python client's.</summary>
public sealed class SdkClientOptions
{
    /// <summary>The client's <c>default_timeout</c> for a reply, and the heartbeat gap it tolerates on long calls.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long reading <c>.data</c>/<c>.grad</c>/<c>.grad_fn</c> waits for a pending flag (and a snapshot to register).</summary>
    public TimeSpan PendingWait { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>websockets' <c>max_size</c>: a bigger incoming message makes the real client close the connection.</summary>
    public int MaxFrameBytes { get; init; } = 1024 * 1024;

    public string UserAgent { get; init; } = "Python/3.11 websockets/15.0.1";

    /// <summary>websockets' <c>open_timeout</c> for the TCP connect and HTTP upgrade.</summary>
    public TimeSpan OpenTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>websockets' <c>ping_interval</c> and <c>ping_timeout</c>; null turns client pings off.</summary>
    public TimeSpan? PingInterval { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>The socket's receive buffer (SO_RCVBUF) when set; small, it makes a paused reader back up the server quickly.</summary>
    public int? ReceiveBufferBytes { get; init; }

    /// <summary>The client's <c>close()</c> sleeps this long so it can still answer late server requests.</summary>
    public TimeSpan CloseDelay { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>The client's mirror of one server Variable (or Parameter), settable as the Python object is.</summary>
public sealed class SimVariable
{
    /// <summary>The server's variable_id; empty for the id-less gradients an <c>update_variable _grad</c> push builds.</summary>
    public string Id { get; set; } = "";

    public JsonNode? Data { get; set; }

    public string Role { get; set; } = "";

    public bool RequiresGrad { get; set; }

    public bool IsParameter { get; set; }

    public bool RetainGrad { get; set; }

    public int OutputNr { get; set; }

    public string? GradFnNodeId { get; set; }

    public bool IsLeaf { get; set; } = true;

#pragma warning disable CA2227, CA1002 // The Python object's .grad is a plain, reassignable list; the mirror keeps that shape.
    public List<SimVariable> Grad { get; set; } = [];
#pragma warning restore CA2227, CA1002

    public bool PendingGrad { get; set; }

    public bool PendingData { get; set; }

    public string? PendingGradFnId { get; set; }

    /// <summary>Attributes a server push set verbatim that have no typed property here (Python's setattr accepts any).</summary>
    public Dictionary<string, JsonNode?> Attributes { get; } = [];

    public override string ToString() => $"{(IsParameter ? "Parameter" : "Variable")}({Id}, data={Data?.ToJsonString()}, role={Role})";
}

/// <summary>A backward node the server announced with <c>create_node</c>.</summary>
public sealed class SimNode
{
    public string Id { get; set; } = "";

    public string Name { get; set; } = "";

    /// <summary>Edges in arrival order; a null node is an input that needs no gradient.</summary>
#pragma warning disable CA1002 // Mirrors the tuple the client appends to; tests index it directly.
    public List<(SimNode? Node, int OutputNr)> NextFunctions { get; } = [];
#pragma warning restore CA1002

    public override string ToString() => $"{Name}({Id})";
}

/// <summary>A model client registered with <c>create_model</c>.</summary>
public sealed class SimModel
{
    public string Id { get; set; } = "";

    public string ClassType { get; set; } = "";

    public string Provider { get; set; } = "openai";

    public JsonObject? Config { get; set; }

    /// <summary>The running usage, as the last <c>update_model _usage</c> push set it.</summary>
    public JsonNode? Usage { get; set; }

    public Dictionary<string, JsonNode?> Attributes { get; } = [];
}

/// <summary>An optimizer as <c>create_optimizer</c> returned it; refs stay in wire form, resolved in <see cref="GroupParams"/>.</summary>
public sealed class SimOptimizer
{
    public string Id { get; set; } = "";

    public string Name { get; set; } = "";

    public JsonNode? Defaults { get; set; }

#pragma warning disable CA1002, CA2227 // The Python optimizer's param_groups/state are plain lists it appends to and replaces.
    public List<JsonNode?> ParamGroups { get; set; } = [];

    /// <summary>The Variables of each group's <c>params</c>, as the Python optimizer holds them after deserializing.</summary>
    public List<List<SimVariable>> GroupParams { get; set; } = [];
#pragma warning restore CA1002, CA2227

    /// <summary>The state as last returned (<c>[]</c> at creation, the <c>run_step</c> state afterwards).</summary>
    public JsonNode? State { get; set; }

    public IEnumerable<SimVariable> Params => GroupParams.SelectMany(g => g);
}

/// <summary>One WebSocket message in or out, in the order the simulator saw them.</summary>
/// <param name="Direction">"in" (server to client) or "out".</param>
/// <param name="Json">The decoded message, or null when it was not JSON.</param>
/// <param name="Text">The text exactly as it went over the wire.</param>
/// <param name="At">When it was sent or received.</param>
public sealed record SdkFrame(string Direction, JsonNode? Json, string Text, DateTimeOffset At)
{
    public string? Method => Json is JsonObject o && PyJson.IsStr(o["method"], out var m) ? m : null;

    /// <summary>The JSON-RPC id (its text when it is not a string), or null when absent or null.</summary>
    public string? Id => Json is JsonObject o && o["id"] is { } id ? (PyJson.IsStr(id, out var s) ? s : id.ToJsonString()) : null;

    public override string ToString() => $"{Direction} {Text}";
}

/// <summary>What the Python client would raise to the user (RuntimeError, ValueError, KeyError, ...), with its text.</summary>
public sealed class SdkException : Exception
{
    public SdkException()
    {
    }

    public SdkException(string message)
        : base(message)
    {
    }

    public SdkException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public SdkException(string message, string pythonType)
        : base(message) => PythonType = pythonType;

    /// <summary>The Python exception class the real client raises here.</summary>
    public string PythonType { get; } = "RuntimeError";

    /// <summary>The server's error reply this was raised for, when there was one.</summary>
    public JsonObject? ErrorResponse { get; init; }
}

/// <summary>The upgrade did not end in a usable 101: the Python client's connect would fail (and retry).</summary>
public sealed class SdkHandshakeException : Exception
{
    public SdkHandshakeException()
    {
    }

    public SdkHandshakeException(string message)
        : base(message)
    {
    }

    public SdkHandshakeException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public SdkHandshakeException(int status, string body, string message)
        : base(message)
    {
        Status = status;
        Body = body;
    }

    /// <summary>The HTTP status the server answered (101 when the 101 itself was unacceptable).</summary>
    public int Status { get; }

    public string Body { get; } = "";
}

/// <summary>
/// A Python exception inside the simulated client: <see cref="PyType"/> decides which <c>except</c> clause of
/// the real handler catches it, and <see cref="Exception.Message"/> is its <c>str(e)</c>.
/// </summary>
#pragma warning disable CA1032, CA1064 // Internal control flow, never surfaced: the standard constructors would only invite misuse.
internal sealed class PyError(string pyType, string message) : Exception(message)
#pragma warning restore CA1032, CA1064
{
    public string PyType { get; } = pyType;

    /// <summary><c>KeyError(key)</c>, whose <c>str()</c> is the repr of the key.</summary>
    public static PyError Key(string key) => new("KeyError", PyJson.ReprString(key));

    public bool Is(string type) => PyType == type;

    public SdkException ToSdk() => new(Message, PyType);
}
