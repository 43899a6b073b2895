namespace Afnio.Api.Infrastructure;

/// <summary>An HTTP error with a stable <see cref="Code"/>; turned into ProblemDetails in one place.</summary>
public sealed class ApiException(int status, string code, string message, string? param = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public string? Param { get; } = param;

    /// <summary>Sent as the Retry-After header, when the request may succeed later as it is.</summary>
    public int? RetryAfterSeconds { get; init; }

    public static ApiException BadRequest(string code, string message, string? param = null) =>
        new(StatusCodes.Status400BadRequest, code, message, param);

    public static ApiException NotFound(string what, string? param = null) =>
        new(StatusCodes.Status404NotFound, $"{what}_not_found",
            $"No {what.Replace('_', ' ')} with that id exists in this project.", param);

    public static ApiException PayloadTooLarge(string code, string message, string? param = null) =>
        new(StatusCodes.Status413PayloadTooLarge, code, message, param);

    public static ApiException Conflict(string code, string message, string? param = null) =>
        new(StatusCodes.Status409Conflict, code, message, param);
}
