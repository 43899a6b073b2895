using Cronos;

namespace Afnio.Data.Schedules;

/// <summary>A schedule's cron expression read in its IANA time zone.</summary>
public sealed class ScheduleCron
{
    /// <summary>Firings closer together than this are refused: each one starts a training run.</summary>
    public static readonly TimeSpan MinimumInterval = TimeSpan.FromMinutes(1);

    /// <summary>Planned times missed for longer than this (the service was down) are not looked for.</summary>
    public static readonly TimeSpan LookBack = TimeSpan.FromDays(7);

    private readonly CronExpression _expression;

    private ScheduleCron(CronExpression expression, TimeZoneInfo zone) => (_expression, Zone) = (expression, zone);

    public TimeZoneInfo Zone { get; }

    /// <summary>
    /// Parses five fields (minute hour day month weekday), six (seconds first) or a macro such as
    /// <c>@daily</c>, and an IANA time zone. Returns null and the problem otherwise.
    /// </summary>
    public static ScheduleCron? TryParse(string cron, string timeZone, out string? cronError, out string? zoneError)
    {
        cronError = zoneError = null;
        CronExpression? expression = null;
        try
        {
            var normal = Normalize(cron);
            expression = CronExpression.Parse(normal, normal.Count(c => c == ' ') == 5 ? CronFormat.IncludeSeconds : CronFormat.Standard);
        }
        catch (CronFormatException e)
        {
            cronError = e.Message;
        }

        TimeZoneInfo? zone = null;
        if (!TimeZoneInfo.TryFindSystemTimeZoneById(timeZone, out zone) || !zone.HasIanaId)
        {
            zoneError = $"'{timeZone}' is not an IANA time zone (for example Europe/Rome, America/New_York or UTC).";
            zone = null;
        }

        return expression is null || zone is null ? null : new ScheduleCron(expression, zone);
    }

    /// <summary>The cron with its fields separated by single spaces, as it is stored and given to Hangfire.</summary>
    public static string Normalize(string cron) => string.Join(' ', cron.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    /// <summary>Reads a stored schedule's cron (validated when it was stored).</summary>
    public static ScheduleCron Of(Schedule schedule) => TryParse(schedule.Cron, schedule.TimeZone, out var cronError, out var zoneError)
        ?? throw new InvalidOperationException($"Schedule {schedule.Id} has an invalid cron or time zone: {cronError ?? zoneError}");

    /// <summary>The first planned time strictly after <paramref name="after"/>, or null if there is none.</summary>
    public DateTimeOffset? Next(DateTimeOffset after) => _expression.GetNextOccurrence(after.ToUniversalTime(), Zone)?.ToUniversalTime();

    /// <summary>The shortest gap between the next few planned times after <paramref name="now"/>.</summary>
    public TimeSpan? ShortestInterval(DateTimeOffset now)
    {
        var times = _expression.GetOccurrences(now.ToUniversalTime(), now.ToUniversalTime().AddYears(5), Zone).Take(20).ToList();
        return times.Count < 2 ? null : times.Zip(times.Skip(1), (a, b) => b - a).Min();
    }

    /// <summary>
    /// The latest planned time in (<paramref name="after"/>, <paramref name="now"/>] and how many earlier
    /// ones in that window it folds in (missed while nothing fired them).
    /// </summary>
    public (DateTimeOffset? Latest, int Missed) LatestDue(DateTimeOffset after, DateTimeOffset now)
    {
        var from = after > now - LookBack ? after : now - LookBack;
        DateTimeOffset? latest = null;
        var count = 0;
        foreach (var time in _expression.GetOccurrences(from.ToUniversalTime(), now.ToUniversalTime(), Zone, fromInclusive: false, toInclusive: true))
        {
            latest = time.ToUniversalTime();
            count++;
        }

        return (latest, Math.Max(0, count - 1));
    }
}
