using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Afnio.Api.Tests.Sdk.Client;

/// <summary>
/// Compares what a client saw on the wire with the recorded session, call by call: the client's request,
/// the server's pushes in order (heartbeats aside), and the reply. Ids are compared as a consistent
/// one-to-one mapping from the recording's UUIDs to whatever this server uses; everything else must be
/// equal as Python sees JSON, except the keys a caller tolerates (with a reason each).
/// </summary>
public sealed partial class RecordedComparison
{
    private readonly Dictionary<string, string> _forward = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _backward = new(StringComparer.Ordinal);
    private readonly List<string> _mismatches = [];
    private readonly IReadOnlyList<Tolerance> _tolerated;

    private RecordedComparison(IReadOnlyList<Tolerance> tolerated) => _tolerated = tolerated;

    /// <summary>One client call: the request, the server's pushes before the reply, and the reply.</summary>
    public sealed record Exchange(string Method, JsonNode? Params, IReadOnlyList<(string Method, JsonNode? Params)> Pushes, JsonNode? Reply);

    public IReadOnlyList<string> Mismatches => _mismatches;

    /// <summary>How many recorded ids were matched with one of this server's.</summary>
    public int MappedIds => _forward.Count;

    /// <summary>
    /// Compares the frames with the recording. <paramref name="tolerated"/> names the values that may
    /// differ, such as a provider's base URL that is the test's own.
    /// </summary>
    public static RecordedComparison Compare(string recordingPath, IReadOnlyList<SdkFrame> frames, IReadOnlyList<Tolerance> tolerated)
    {
        var comparison = new RecordedComparison(tolerated);
        var recorded = FromRecording(recordingPath);
        var actual = FromFrames(frames);
        if (recorded.Count != actual.Count)
        {
            comparison._mismatches.Add($"{recorded.Count} calls recorded, {actual.Count} made: "
                + $"recorded {string.Join(",", recorded.Select(e => e.Method))}; made {string.Join(",", actual.Select(e => e.Method))}");
        }

        for (var i = 0; i < Math.Min(recorded.Count, actual.Count); i++)
        {
            comparison.CompareExchange(i, recorded[i], actual[i]);
        }

        return comparison;
    }

    public static List<Exchange> FromRecording(string path)
    {
        var exchanges = new List<Exchange>();
        string? method = null;
        JsonNode? parameters = null;
        List<(string, JsonNode?)> pushes = [];
        foreach (var line in File.ReadLines(path))
        {
            var entry = PyJson.Loads(line)!.AsObject();
            switch (entry["kind"]!.GetValue<string>())
            {
                case "c->s":
                    (method, parameters, pushes) = (entry["method"]!.GetValue<string>(), entry["params"], []);
                    break;
                case "s->c" when entry["method"]!.GetValue<string>() != "heartbeat":
                    pushes.Add((entry["method"]!.GetValue<string>(), entry["params"]));
                    break;
                case "reply":
                    exchanges.Add(new Exchange(method!, parameters, pushes, entry["resp"]));
                    break;
            }
        }

        return exchanges;
    }

    /// <summary>Client calls in the order made; calls must not overlap (the recorded program makes one at a time).</summary>
    public static List<Exchange> FromFrames(IReadOnlyList<SdkFrame> frames)
    {
        var exchanges = new List<Exchange>();
        string? method = null;
        string? id = null;
        JsonNode? parameters = null;
        List<(string, JsonNode?)> pushes = [];
        foreach (var frame in frames)
        {
            if (frame.Json is not JsonObject json)
            {
                continue;
            }

            if (frame.Direction == "out" && frame.Method is { } sent)
            {
                (method, id, parameters, pushes) = (sent, frame.Id, json["params"], []);
            }
            else if (frame.Direction == "in" && frame.Method is { } pushed && pushed != "heartbeat" && method is not null)
            {
                pushes.Add((pushed, json["params"]));
            }
            else if (frame.Direction == "in" && frame.Method is null && method is not null && frame.Id == id)
            {
                exchanges.Add(new Exchange(method, parameters, pushes, json));
                method = null;
            }
        }

        return exchanges;
    }

    private void CompareExchange(int index, Exchange recorded, Exchange actual)
    {
        var at = $"call {index + 1} ({recorded.Method})";
        if (recorded.Method != actual.Method)
        {
            _mismatches.Add($"{at}: the client called {actual.Method}");
            return;
        }

        Match($"{at} request", $"{recorded.Method} request ", recorded.Params, actual.Params);
        var recordedPushes = string.Join(", ", recorded.Pushes.Select(p => p.Method));
        var actualPushes = string.Join(", ", actual.Pushes.Select(p => p.Method));
        if (recordedPushes != actualPushes)
        {
            _mismatches.Add($"{at}: pushes [{recordedPushes}] recorded, [{actualPushes}] received");
        }
        else
        {
            for (var p = 0; p < recorded.Pushes.Count; p++)
            {
                Match($"{at} push {p + 1} ({recorded.Pushes[p].Method})", $"{recorded.Method} {recorded.Pushes[p].Method} ", recorded.Pushes[p].Params, actual.Pushes[p].Params);
            }
        }

        var recordedReply = recorded.Reply!.DeepClone().AsObject();
        var actualReply = actual.Reply!.DeepClone().AsObject();
        recordedReply.Remove("id");
        actualReply.Remove("id");
        Match($"{at} reply", $"{recorded.Method} reply ", recordedReply, actualReply);
    }

    private void Match(string at, string site, JsonNode? recorded, JsonNode? actual, string path = "")
    {
        if (path.Length > 0 && _tolerated.Any(t => t.Matches(site + path)))
        {
            return;
        }

        switch (recorded)
        {
            case JsonObject r when actual is JsonObject a:
                foreach (var key in r.Select(kv => kv.Key).Union(a.Select(kv => kv.Key)))
                {
                    if (!r.ContainsKey(key) || !a.ContainsKey(key))
                    {
                        _mismatches.Add($"{at}: {path}.{key} is {(r.ContainsKey(key) ? "missing" : "not in the recording")}");
                        continue;
                    }

                    Match(at, site, r[key], a[key], $"{path}.{key}");
                }

                break;
            case JsonArray r when actual is JsonArray a:
                if (r.Count != a.Count)
                {
                    _mismatches.Add($"{at}: {path} has {a.Count} items, {r.Count} recorded");
                }

                for (var i = 0; i < Math.Min(r.Count, a.Count); i++)
                {
                    Match(at, site, r[i], a[i], $"{path}[{i}]");
                }

                break;
            case JsonValue r when r.GetValueKind() == JsonValueKind.String && Uuid().IsMatch(r.GetValue<string>())
                                  && actual is JsonValue a && a.GetValueKind() == JsonValueKind.String:
                MatchId(at, path, r.GetValue<string>(), a.GetValue<string>());
                break;
            default:
                if (PyJson.Dumps(recorded) != PyJson.Dumps(actual))
                {
                    _mismatches.Add($"{at}: {path} is {Show(actual)}, {Show(recorded)} recorded");
                }

                break;
        }
    }

    private void MatchId(string at, string path, string recorded, string actual)
    {
        if (_forward.TryGetValue(recorded, out var known))
        {
            if (known != actual)
            {
                _mismatches.Add($"{at}: {path} is {actual}, where the recording's {recorded} was {known} before");
            }

            return;
        }

        if (_backward.TryGetValue(actual, out var other))
        {
            _mismatches.Add($"{at}: {path} is {actual}, already seen for the recording's {other}, not {recorded}");
            return;
        }

        _forward[recorded] = actual;
        _backward[actual] = recorded;
    }

    /// <summary>
    /// Values allowed to differ: <paramref name="Site"/> is matched against
    /// "<c>{call method} {request|reply|push method} {path}</c>", e.g. <c>run_function reply .result.data</c>.
    /// </summary>
    public sealed record Tolerance(string Site, string Reason)
    {
        private readonly Regex _site = new(Site, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

        public bool Matches(string site) => _site.IsMatch(site);
    }

    private static string Show(JsonNode? node)
    {
        var text = PyJson.Dumps(node);
        return text.Length > 300 ? text[..300] + "…" : text;
    }

    [GeneratedRegex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    private static partial Regex Uuid();
}
