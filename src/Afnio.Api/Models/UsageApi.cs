using Afnio.Api.Auth;
using Afnio.Api.Infrastructure;
using Afnio.Data;
using Afnio.Data.LanguageModels;
using Afnio.Domain.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Models;

/// <summary>Filters and grouping of <c>GET /v1/usage</c>.</summary>
/// <param name="GroupBy"><c>model</c> (model client), <c>job</c>, <c>model_name</c> (as the provider named it) or <c>day</c> (UTC); none gives the total only.</param>
/// <param name="ModelId">Only calls of this model client.</param>
/// <param name="JobId">Only calls made by this job.</param>
/// <param name="Since">Only calls at or after this unix time (seconds).</param>
/// <param name="Until">Only calls before this unix time (seconds).</param>
public sealed record UsageQuery(
    [property: FromQuery(Name = "group_by")] string? GroupBy,
    [property: FromQuery(Name = "model_id")] string? ModelId,
    [property: FromQuery(Name = "job_id")] string? JobId,
    [property: FromQuery(Name = "since")] long? Since,
    [property: FromQuery(Name = "until")] long? Until);

/// <summary>Usage and cost of the project's model calls, from the call journal.</summary>
public static class UsageApi
{
    public static RouteGroupBuilder MapUsage(this RouteGroupBuilder v1)
    {
        v1.MapGet("/usage", GetUsage).WithTags("Models").WithName("retrieveUsage")
            .WithDescription("Tokens and cost of every model call of the project (forward, backward, jobs), in total and grouped " +
                "by model client, job, model name or day. Unlike a model client's counters, this is never cleared.");
        return v1;
    }

    public static async Task<Ok<UsageReportResponse>> GetUsage(
        [AsParameters] UsageQuery query, AfnioDbContext db, ProjectContext project, CancellationToken ct)
    {
        var calls = db.ModelCalls.AsNoTracking().Where(c => c.ProjectId == project.ProjectId);
        if (query.ModelId is { } modelId)
        {
            var id = PrefixedId.TryParse(PrefixedId.Model, modelId, out var guid)
                ? guid
                : throw ApiException.BadRequest("invalid_id", $"model_id must be a model id (mdl_…); got '{modelId}'.", "model_id");
            calls = calls.Where(c => c.ModelId == id);
        }

        if (query.JobId is { } jobId)
        {
            var id = PrefixedId.TryParse(PrefixedId.Job, jobId, out var guid)
                ? guid
                : throw ApiException.BadRequest("invalid_id", $"job_id must be a job id (job_…); got '{jobId}'.", "job_id");
            calls = calls.Where(c => c.JobId == id);
        }

        if (query.Since is { } since)
        {
            var from = DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(since, 0, 253402300799));
            calls = calls.Where(c => c.CreatedAt >= from);
        }

        if (query.Until is { } until)
        {
            var to = DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(until, 0, 253402300799));
            calls = calls.Where(c => c.CreatedAt < to);
        }

        var groups = query.GroupBy switch
        {
            null => [],
            "model" => await SumAsync(calls.GroupBy(c => c.ModelId), k => k is { } g ? PrefixedId.Format(PrefixedId.Model, g) : null, ct),
            "job" => await SumAsync(calls.GroupBy(c => c.JobId), k => k is { } g ? PrefixedId.Format(PrefixedId.Job, g) : null, ct),
            "model_name" => await SumAsync(calls.GroupBy(c => c.Model), k => k, ct),
            // By the UTC date's parts: EF cannot read back a DateTime key computed from a timestamptz column.
            "day" => await SumAsync(calls.GroupBy(c => new { c.CreatedAt.UtcDateTime.Year, c.CreatedAt.UtcDateTime.Month, c.CreatedAt.UtcDateTime.Day }),
                k => new DateOnly(k.Year, k.Month, k.Day).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), ct),
            _ => throw ApiException.BadRequest("invalid_group_by", $"group_by must be one of model, job, model_name, day; got '{query.GroupBy}'.", "group_by"),
        };
        var total = (await SumAsync(calls.GroupBy(_ => 1), _ => (string?)null, ct)).SingleOrDefault()?.Usage ?? UsageResponse.Zero;
        return TypedResults.Ok(new UsageReportResponse(query.GroupBy, total, groups));
    }

    /// <summary>The usage of each job that made model calls (jobs without calls are left out).</summary>
    public static async Task<Dictionary<Guid, UsageResponse>> ByJobAsync(AfnioDbContext db, IReadOnlyCollection<Guid> jobIds, CancellationToken ct)
    {
        var groups = await SumAsync(db.ModelCalls.AsNoTracking().Where(c => c.JobId != null && jobIds.Contains(c.JobId.Value))
            .GroupBy(c => c.JobId!.Value), id => id.ToString("N"), ct);
        return groups.ToDictionary(g => Guid.ParseExact(g.Key!, "N"), g => g.Usage);
    }

    private static async Task<List<UsageGroup>> SumAsync<TKey>(
        IQueryable<IGrouping<TKey, ModelCall>> grouped, Func<TKey, string?> format, CancellationToken ct)
    {
        var rows = await grouped.Select(g => new
        {
            g.Key,
            Calls = g.LongCount(c => c.Status == ModelCallStatus.Succeeded),
            Prompt = g.Sum(c => c.PromptTokens),
            Cached = g.Sum(c => c.CachedTokens),
            Completion = g.Sum(c => c.CompletionTokens),
            Reasoning = g.Sum(c => c.ReasoningTokens),
            Cost = g.Sum(c => c.CostUsd),
        }).ToListAsync(ct);
        return [.. rows
            .Select(r => new UsageGroup(format(r.Key), UsageResponse.From(r.Calls, r.Prompt, r.Cached, r.Completion, r.Reasoning, r.Cost)))
            .OrderByDescending(g => g.Usage.Cost.Amount).ThenBy(g => g.Key, StringComparer.Ordinal)];
    }
}
