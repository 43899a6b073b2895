using System.Text.Json;
using System.Text.Json.Serialization;
using Afnio.Api.Runs;

namespace Afnio.Api.Schedules;

/// <summary>Creates a schedule: a training run started on a cron schedule, on the latest version of its dataset.</summary>
public sealed record CreateScheduleRequest
{
    public string? Name { get; init; }

    public string? Description { get; init; }

    /// <summary>Five fields (<c>0 2 * * *</c>: 02:00 every day), six with seconds first, or a macro such as <c>@daily</c>.</summary>
    public string? Cron { get; init; }

    /// <summary>The IANA time zone the cron is read in (default <c>UTC</c>), e.g. <c>Europe/Rome</c>.</summary>
    public string? Timezone { get; init; }

    /// <summary>The body of <c>POST /v1/runs</c> for a server-driven run, without a dataset version: each firing takes the latest.</summary>
    public CreateRunRequest? RunTemplate { get; init; }

    /// <summary>Whether it fires (default true).</summary>
    public bool? Enabled { get; init; }

    /// <summary>Fire even while the previous run is still active (default false: such a firing is skipped).</summary>
    public bool? AllowOverlap { get; init; }
}

/// <summary>Changes a schedule; fields left out stay.</summary>
public sealed record UpdateScheduleRequest
{
    public string? Name { get; init; }

    public string? Description { get; init; }

    public string? Cron { get; init; }

    public string? Timezone { get; init; }

    public CreateRunRequest? RunTemplate { get; init; }

    public bool? Enabled { get; init; }

    public bool? AllowOverlap { get; init; }
}

/// <summary>One planned time of a schedule and what became of it.</summary>
public sealed record ScheduleFiringResponse(
    [property: JsonPropertyOrder(-2)] string Id, string ScheduleId, long PlannedAt, string Trigger, string Outcome, string? RunId, string? RunStatus,
    string? ReasonCode, string? Reason, int Missed, long CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "schedule.firing";
}

/// <summary>A schedule with its next planned time and its most recent firings.</summary>
public sealed record ScheduleResponse(
    [property: JsonPropertyOrder(-2)] string Id, string Name, string? Description, string Cron, string Timezone, JsonElement RunTemplate,
    bool Enabled, bool AllowOverlap, long? NextRunAt, IReadOnlyList<ScheduleFiringResponse> RecentFirings, long CreatedAt, long UpdatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Object => "schedule";
}
