using System.Text.Json;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;

namespace Afnio.Api.Infrastructure;

/// <summary>
/// The one place that turns failures into RFC 9457 ProblemDetails with <c>code</c>, <c>param</c>
/// and <c>request_id</c>. Bad input never becomes a 500.
/// </summary>
public static class Problems
{
    /// <summary>Problem types are URNs: stable identifiers, not links.</summary>
    public const string ErrorTypeBase = "urn:afnio:error:";

    public static IServiceCollection AddAfnioProblems(this IServiceCollection services)
    {
        services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            var problem = ctx.ProblemDetails;
            problem.Extensions["request_id"] = ctx.HttpContext.TraceIdentifier;
            if (!problem.Extensions.ContainsKey("code"))
            {
                var code = DefaultCode(problem.Status ?? 500);
                problem.Extensions["code"] = code;
                problem.Type = ErrorTypeBase + code;
            }

            problem.Detail ??= DefaultDetail(problem.Status ?? 500, ctx.HttpContext);
            problem.Extensions.TryAdd("param", null);
        });
        services.AddExceptionHandler<AfnioExceptionHandler>();
        // Statuses set without a body (404 for no route, 405 and 415 from routing) become the same
        // problems; the default handler writes text/plain when the Accept header excludes JSON.
        services.Configure<StatusCodePagesOptions>(o => o.HandleAsync = context =>
        {
            var http = context.HttpContext;
            var status = http.Response.StatusCode;
            return WriteAsync(http, status, DefaultCode(status), DefaultDetail(status, http)).AsTask();
        });
        return services;
    }

    /// <summary>
    /// Writes a problem response with a stable code. Problems are always JSON: a client whose
    /// Accept header excludes JSON still gets the error, not a 500.
    /// </summary>
    public static async ValueTask WriteAsync(HttpContext http, int status, string code, string detail, string? param = null)
    {
        http.Response.StatusCode = status;
        var problem = Create(status, code, detail, param);
        var context = new ProblemDetailsContext { HttpContext = http, ProblemDetails = problem };
        if (!await http.RequestServices.GetRequiredService<IProblemDetailsService>().TryWriteAsync(context))
        {
            problem.Extensions["request_id"] = http.TraceIdentifier;
            await http.Response.WriteAsJsonAsync(problem, JsonOptions(http), "application/problem+json");
        }
    }

    private static JsonSerializerOptions JsonOptions(HttpContext http) =>
        http.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>()
            .Value.SerializerOptions;

    public static ProblemDetails Create(int status, string code, string detail, string? param) => new()
    {
        Status = status,
        Title = TitleFor(status),
        Detail = detail,
        Type = ErrorTypeBase + code,
        Extensions = { ["code"] = code, ["param"] = param },
    };

    private static string DefaultCode(int status) => status switch
    {
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        429 => "rate_limited",
        _ => status >= 500 ? "internal_error" : "error",
    };

    private static string DefaultDetail(int status, HttpContext http) => status switch
    {
        404 => $"No route matches {http.Request.Method} {http.Request.Path}. See /swagger for the API reference.",
        405 => $"{http.Request.Method} is not allowed on {http.Request.Path}. See /swagger for the methods it accepts.",
        415 => "Send the request body as application/json.",
        _ => ReasonPhrases.GetReasonPhrase(status),
    };

    private static string TitleFor(int status) => status switch
    {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    };
}

/// <summary>Maps our exceptions, and the framework's bad-request exceptions, to 4xx problems.</summary>
internal sealed class AfnioExceptionHandler : IExceptionHandler
{
    private static readonly HashSet<string> ReadOnlyFields =
        ["id", "object", "created_at", "is_leaf", "grad_fn", "grad", "output_nr", "retain_grad"];

    public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken cancellationToken)
    {
        (int Status, string Code, string Detail, string? Param)? problem = exception switch
        {
            ApiException e => (e.Status, e.Code, e.Message, e.Param),
            AfnioException e => (e.Kind switch
            {
                ErrorKind.NotFound => 404,
                ErrorKind.Conflict => 409,
                ErrorKind.Upstream => 502,
                ErrorKind.TooLarge => 413,
                _ => 400,
            }, e.Code, e.Message, e.Param),
            BadHttpRequestException e => FromBadRequest(e),
            // Another request deleted a row this one was changing or pointing at.
            Microsoft.EntityFrameworkCore.DbUpdateConcurrencyException => (404, "not_found",
                "The object was deleted while this request ran.", null),
            Microsoft.EntityFrameworkCore.DbUpdateException { InnerException: Npgsql.PostgresException { SqlState: "23503" } } =>
                (404, "not_found", "An object this request refers to was deleted while it ran.", null),
            // PostgreSQL text cannot hold NUL; stored text never does, so the request carried it (a query filter, say).
            Npgsql.PostgresException { SqlState: "22021" } or Microsoft.EntityFrameworkCore.DbUpdateException { InnerException: Npgsql.PostgresException { SqlState: "22021" } } =>
                (400, "invalid_request", "The request holds a NUL character (\\u0000), which text cannot contain.", null),
            _ when DatabaseBusy(exception) => Busy(http),
            _ when DatabaseUnavailable(exception) is { } database => Unavailable(http, database),
            // A value too large or too deep for JSON (System.Text.Json's own limits) is the input's fault, not ours.
            _ when JsonLimit(exception) is { } limit => (413, "value_too_large",
                $"A value of this request is too large to be written as JSON: {limit.Message}", null),
            JsonException e => (400, "invalid_json", $"A JSON value of this request cannot be read: {e.Message}", null),
            _ => null,
        };

        if (problem is not { } p)
        {
            return false;
        }

        if (exception is ApiException { RetryAfterSeconds: { } retryAfter })
        {
            http.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        await Problems.WriteAsync(http, p.Status, p.Code, p.Detail, p.Param);
        return true;
    }

    /// <summary>System.Text.Json refusing a string longer than it can write (about 166 million characters).</summary>
    private static ArgumentException? JsonLimit(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is ArgumentException argument && argument.Message.StartsWith("The JSON value of length", StringComparison.Ordinal))
            {
                return argument;
            }
        }

        return null;
    }

    /// <summary>
    /// Every connection of this process's pool stayed in use for the acquire timeout, or the server
    /// has no slot left (53300): the service is overloaded, the database is fine. Clearing the pools
    /// here would only add connection churn to the overload.
    /// </summary>
    private static bool DatabaseBusy(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is Npgsql.PostgresException { SqlState: "53300" }
                || e is Npgsql.NpgsqlException { InnerException: TimeoutException } and not Npgsql.PostgresException
                    && e.Message.StartsWith("The connection pool has been exhausted", StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static (int, string, string, string?) Busy(HttpContext http)
    {
        http.Response.Headers.RetryAfter = "1";
        return (503, "database_busy", "The service has no free database connection right now (it is under heavy load). Retry the request after 1 s.", null);
    }

    /// <summary>A failure to reach the database (down, restarting, out of connections): worth retrying, not a bug.</summary>
    private static Npgsql.NpgsqlException? DatabaseUnavailable(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is Npgsql.NpgsqlException { IsTransient: true } npgsql
                && npgsql is not Npgsql.PostgresException { SqlState: "40001" or "40P01" })
            {
                return npgsql;
            }
        }

        return null;
    }

    private static (int, string, string, string?) Unavailable(HttpContext http, Npgsql.NpgsqlException exception)
    {
        // Pooled connections to a restarted server are all dead: drop them, so the next request opens a fresh one.
        if (exception is not Npgsql.PostgresException || exception is Npgsql.PostgresException { SqlState: var state } && state.StartsWith("57P", StringComparison.Ordinal))
        {
            Npgsql.NpgsqlConnection.ClearAllPools();
        }

        http.Response.Headers.RetryAfter = "1";
        return (503, "database_unavailable", "The database cannot be reached right now. Retry the request shortly.", null);
    }

    private static (int, string, string, string?) FromBadRequest(BadHttpRequestException e)
    {
        if (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (413, "payload_too_large", "The request body is larger than the limit of this server.", null);
        }

        if (e.StatusCode == StatusCodes.Status415UnsupportedMediaType)
        {
            return (415, "unsupported_media_type", "Send the request body as application/json.", null);
        }

        if (FindJsonException(e) is not { } json)
        {
            // Missing required body, unparsable route or query values.
            return (400, "invalid_request", e.Message, null);
        }

        var param = JsonPathToParam(json.Path);
        var message = json.Message;
        if (message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal))
        {
            var field = ExtractQuoted(message) ?? param ?? "?";
            // A nested field is named by its path (run_template.colour), a top-level one by its name.
            var where = param is not null && param.EndsWith("." + field, StringComparison.Ordinal) ? param : field;
            return ReadOnlyFields.Contains(field)
                ? (400, "read_only_field", $"The field '{where}' is read-only and cannot be set in a request.", where)
                : (400, "unknown_field", $"Unknown field '{where}'. Remove it, or check the spelling against the API reference.", where);
        }

        if (message.StartsWith("Duplicate property", StringComparison.Ordinal))
        {
            // The path names the object holding the key; the message names the key.
            var key = ExtractQuoted(message) ?? "?";
            var where = param is null || param == key ? key : $"{param}.{key}";
            return (400, "duplicate_field", $"The field '{where}' is given twice. Give each field once.", where);
        }

        if (message.Contains("missing required properties", StringComparison.Ordinal))
        {
            return (400, "missing_field", message, null);
        }

        if (IsSyntaxError(e))
        {
            return (400, "invalid_json", $"The request body is not valid JSON: {message}", null);
        }

        if (param is null)
        {
            return (400, "invalid_type", "The request body must be a JSON object.", null);
        }

        return (400, "invalid_type", $"The field '{param}' must be {ExpectedValue(message, param)}.", param);
    }

    /// <summary>
    /// Says what a field accepts, in JSON terms. System.Text.Json names either the field's type or,
    /// for record constructor parameters, the containing type; the path says which field.
    /// </summary>
    private static string ExpectedValue(string message, string param)
    {
        var match = System.Text.RegularExpressions.Regex.Match(message, @"could not be converted to ([\w.`+\[\]]+?)\. Path");
        var type = match.Success ? FindType(match.Groups[1].Value) : null;
        var field = param.Split('.')[^1];
        var property = type?.GetProperties().FirstOrDefault(p => JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name) == field);
        var expected = property?.PropertyType ?? type;
        expected = expected is null ? null : Nullable.GetUnderlyingType(expected) ?? expected;
        return expected switch
        {
            null => "of another type",
            _ when expected == typeof(bool) => "true or false",
            _ when expected == typeof(string) => "a string",
            _ when expected == typeof(int) || expected == typeof(long) => "an integer",
            _ when expected == typeof(double) => "a number",
            { IsEnum: true } => "one of: " + string.Join(", ", Enum.GetNames(expected).Select(JsonNamingPolicy.SnakeCaseLower.ConvertName)),
            _ when expected.IsAssignableTo(typeof(System.Collections.IEnumerable)) => "a list",
            _ => "a JSON object",
        };
    }

    private static Type? FindType(string fullName) =>
        fullName.StartsWith("System.Nullable`1[", StringComparison.Ordinal)
            ? FindType(fullName["System.Nullable`1[".Length..^1])
            : Type.GetType(fullName)
              ?? AppDomain.CurrentDomain.GetAssemblies()
                  .Where(a => a.GetName().Name?.StartsWith("Afnio", StringComparison.Ordinal) == true)
                  .Select(a => a.GetType(fullName)).FirstOrDefault(t => t is not null);

    private static bool IsSyntaxError(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e.GetType().Name == "JsonReaderException")
            {
                return true;
            }
        }

        return false;
    }

    private static JsonException? FindJsonException(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is JsonException json)
            {
                return json;
            }
        }

        return null;
    }

    private static string? JsonPathToParam(string? path) =>
        path is null or "$" ? null : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');

    private static string? ExtractQuoted(string message)
    {
        var start = message.IndexOf('\'', StringComparison.Ordinal);
        var end = start >= 0 ? message.IndexOf('\'', start + 1) : -1;
        return end > start ? message[(start + 1)..end] : null;
    }
}
