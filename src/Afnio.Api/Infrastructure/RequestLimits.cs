using System.Globalization;
using System.Text;
using System.Threading.RateLimiting;
using Afnio.Api.Auth;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Afnio.Api.Infrastructure;

public static class RequestLimits
{
    /// <summary>
    /// Refuses bodies over <see cref="AfnioOptions.MaxRequestBodyBytes"/> with 413 before reading
    /// them when the length is declared, and caps chunked bodies while they stream. Refuses a body
    /// in a charset .NET cannot decode with 415: reading it as JSON would throw a 500.
    /// </summary>
    public static IApplicationBuilder UseRequestBodyLimit(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        if (UndecodableCharset(http.Request) is { } charset)
        {
            await Problems.WriteAsync(http, StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                $"The request body's charset '{charset}' is not supported. Send the request body as application/json in UTF-8.");
            return;
        }

        var options = http.RequestServices.GetRequiredService<IOptions<AfnioOptions>>().Value;
        var limit = http.GetEndpoint()?.Metadata.GetMetadata<Datasets.LargeBody>() is null ? options.MaxRequestBodyBytes : options.MaxUploadBytes;
        if (http.Request.ContentLength > limit)
        {
            await Problems.WriteAsync(http, StatusCodes.Status413PayloadTooLarge, "payload_too_large",
                $"The request body has {http.Request.ContentLength} bytes; the limit is {limit} bytes.");
            return;
        }

        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = limit;
        }
        else if (http.Request.ContentLength is null)
        {
            // Hosts without the feature (in-memory test servers, some proxies) still get the cap.
            http.Request.Body = new LengthLimitedStream(http.Request.Body, limit);
        }

        await next(http);
    });

    /// <summary>The Content-Type's charset when <see cref="Encoding.GetEncoding(string)"/> rejects it, as ASP.NET's JSON reader would.</summary>
    private static string? UndecodableCharset(HttpRequest request)
    {
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(request.ContentType, out var type)
            || type.Charset is not { HasValue: true } charset || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        try
        {
            Encoding.GetEncoding(charset.Value!);
            return null;
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            return charset.Value;
        }
    }

    /// <summary>A token bucket per API key (per address for anonymous calls); 429 with Retry-After when empty.</summary>
    public static IServiceCollection AddAfnioRateLimits(this IServiceCollection services, AfnioOptions.RateLimitOptions options)
    {
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                if (http.Request.Path.StartsWithSegments("/healthz"))
                {
                    return RateLimitPartition.GetNoLimiter("health");
                }

                var partition = http.User.FindFirst(ApiKeyAuthenticationHandler.ApiKeyClaim)?.Value
                    ?? (http.User.IsInRole(ApiKeyAuthenticationHandler.AdminRole) ? "admin" : $"ip:{http.Connection.RemoteIpAddress}");
                return RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = options.TokenLimit,
                    TokensPerPeriod = options.TokensPerSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            o.OnRejected = async (ctx, _) =>
            {
                var seconds = ctx.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter)
                    ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds))
                    : 1;
                ctx.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                await Problems.WriteAsync(ctx.HttpContext, StatusCodes.Status429TooManyRequests, "rate_limited",
                    $"Too many requests for this API key. Retry after {seconds} s.");
            };
        });
        return services;
    }
}

/// <summary>A read-only stream that fails with 413 once more than <c>limit</c> bytes were read.</summary>
internal sealed class LengthLimitedStream(Stream inner, long limit) : Stream
{
    private long _read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int Count(int read)
    {
        _read += read;
        return _read > limit
            ? throw new BadHttpRequestException($"The request body is larger than {limit} bytes.", StatusCodes.Status413PayloadTooLarge)
            : read;
    }
}
