using System.Text.Json;
using System.Text.Json.Serialization;
using Afnio.Data.Jobs;
using Afnio.Domain.Common;

namespace Afnio.Api.Jobs;

public sealed record JobProgress(int Completed, int Total);

public sealed record JobError(string Code, string Message);

/// <summary>A background job. <c>result</c> is set when it succeeds, <c>error</c> when it fails.</summary>
public sealed record JobResponse(
    [property: JsonPropertyOrder(-2)] string Id,
    string Type,
    JobStatus Status,
    JobProgress Progress,
    JsonElement? Result,
    JobError? Error,
    long CreatedAt,
    long? StartedAt,
    long? FinishedAt,
    Models.UsageResponse? Usage)
{
    [JsonPropertyOrder(-1)]
    public string Object => "job";

    /// <summary>The job as the API shows it; <paramref name="usage"/> is its model usage, null when it made no calls.</summary>
    public static JobResponse From(Job job, Models.UsageResponse? usage = null)
    {
        JsonElement? result = job.Result is { } json ? JsonSerializer.Deserialize<JsonElement>(json) : null;
        return new(PrefixedId.Format(PrefixedId.Job, job.Id), job.Type, job.Status,
            new JobProgress(job.ProgressCompleted, job.ProgressTotal), result,
            job.ErrorCode is { } code ? new JobError(code, job.ErrorMessage ?? string.Empty) : null,
            job.CreatedAt.ToUnixTimeSeconds(), job.StartedAt?.ToUnixTimeSeconds(), job.FinishedAt?.ToUnixTimeSeconds(), usage);
    }
}
