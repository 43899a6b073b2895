namespace Afnio.Domain.Common;

/// <summary>What kind of failure an <see cref="AfnioException"/> reports; the API maps it to an HTTP status.</summary>
public enum ErrorKind
{
    /// <summary>The input breaks a rule of the reference semantics (HTTP 400).</summary>
    InvalidArgument,

    /// <summary>A referenced object does not exist in the caller's project (HTTP 404).</summary>
    NotFound,

    /// <summary>The input is valid but the object's current state does not allow the operation (HTTP 409).</summary>
    Conflict,

    /// <summary>A language-model provider failed after every retry (HTTP 502).</summary>
    Upstream,

    /// <summary>The input is larger than a configured limit (HTTP 413).</summary>
    TooLarge,
}

/// <summary>
/// A failure the caller can fix, with a stable machine-readable <see cref="Code"/> and a message
/// that follows the reference wording where the reference has one.
/// </summary>
public sealed class AfnioException(ErrorKind kind, string code, string message, string? param = null)
    : Exception(message)
{
    /// <summary>The kind of failure.</summary>
    public ErrorKind Kind { get; } = kind;

    /// <summary>Stable machine string, e.g. <c>invalid_data</c>.</summary>
    public string Code { get; } = code;

    /// <summary>The offending request field, when there is one.</summary>
    public string? Param { get; } = param;

    /// <summary>Creates an <see cref="ErrorKind.InvalidArgument"/> error.</summary>
    public static AfnioException Invalid(string code, string message, string? param = null) =>
        new(ErrorKind.InvalidArgument, code, message, param);

    /// <summary>Creates an <see cref="ErrorKind.Conflict"/> error.</summary>
    public static AfnioException Conflict(string code, string message, string? param = null) =>
        new(ErrorKind.Conflict, code, message, param);

    /// <summary>Creates an <see cref="ErrorKind.Upstream"/> error.</summary>
    public static AfnioException Upstream(string code, string message) => new(ErrorKind.Upstream, code, message);

    /// <summary>Creates an <see cref="ErrorKind.TooLarge"/> error.</summary>
    public static AfnioException TooLarge(string code, string message, string? param = null) =>
        new(ErrorKind.TooLarge, code, message, param);

    /// <summary>Creates an <see cref="ErrorKind.NotFound"/> error.</summary>
    public static AfnioException NotFound(string code, string message, string? param = null) =>
        new(ErrorKind.NotFound, code, message, param);
}
