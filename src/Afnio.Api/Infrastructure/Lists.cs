using Afnio.Data;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Infrastructure;

/// <summary>The list envelope: <c>{object: "list", data, first_id, last_id, has_more}</c>.</summary>
public sealed record ListResponse<T>(IReadOnlyList<T> Data, string? FirstId, string? LastId, bool HasMore)
{
    [System.Text.Json.Serialization.JsonPropertyOrder(-1)]
    public string Object => "list";
}

/// <summary>Keyset paging parameters of every list call.</summary>
/// <param name="After">An id from an earlier page: the list continues after it.</param>
/// <param name="Limit">Page size, 1 to 100 (default 20).</param>
/// <param name="Order">"desc" (newest first, the default) or "asc".</param>
public sealed record PageQuery(
    [property: FromQuery(Name = "after")] string? After,
    [property: FromQuery(Name = "limit")] int? Limit,
    [property: FromQuery(Name = "order")] string? Order);

/// <summary>Keyset paging over time-ordered ids.</summary>
public static class Paging
{
    public const int DefaultLimit = 20;
    public const int MaxLimit = 100;

    /// <summary>Fetches one page (plus one row, to know whether more follow) ordered by id.</summary>
    public static async Task<(List<T> Rows, int Limit)> FetchPageAsync<T>(
        this IQueryable<T> query, string prefix, PageQuery page, CancellationToken ct)
        where T : class, IHasId
    {
        var limit = page.Limit switch
        {
            null => DefaultLimit,
            < 1 or > MaxLimit => throw ApiException.BadRequest("invalid_limit",
                $"limit must be between 1 and {MaxLimit}; got {page.Limit}.", "limit"),
            { } value => value,
        };
        var descending = page.Order switch
        {
            null or "desc" => true,
            "asc" => false,
            _ => throw ApiException.BadRequest("invalid_order", $"order must be 'asc' or 'desc'; got '{page.Order}'.", "order"),
        };
        if (page.After is not null)
        {
            if (!PrefixedId.TryParse(prefix, page.After, out var cursor))
            {
                throw ApiException.BadRequest("invalid_cursor", $"after must be a {prefix}_… id from an earlier page.", "after");
            }

            query = descending ? query.Where(e => e.Id < cursor) : query.Where(e => e.Id > cursor);
        }

        var ordered = descending ? query.OrderByDescending(e => e.Id) : query.OrderBy(e => e.Id);
        return (await ordered.Take(limit + 1).ToListAsync(ct), limit);
    }

    /// <summary>Builds the envelope from a page fetched with <c>limit + 1</c> rows.</summary>
    public static ListResponse<TResponse> ToList<TResponse>(IReadOnlyList<TResponse> rows, int limit, Func<TResponse, string> id)
    {
        var hasMore = rows.Count > limit;
        var page = hasMore ? rows.Take(limit).ToList() : rows;
        return new(page, page.Count > 0 ? id(page[0]) : null, page.Count > 0 ? id(page[^1]) : null, hasMore);
    }
}

/// <summary>Unix seconds, as every <c>created_at</c> is shown.</summary>
public static class UnixTime
{
    public static long Of(DateTimeOffset time) => time.ToUnixTimeSeconds();

    public static long? Of(DateTimeOffset? time) => time?.ToUnixTimeSeconds();
}
