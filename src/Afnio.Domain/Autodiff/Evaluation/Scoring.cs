using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff.Evaluation;

/// <summary>
/// A named function of the server-side catalogue that scores one (prediction, target) pair with
/// 1 (correct) or 0. It stands in for afnio's client-side <c>eval_fn</c> callables, which a server
/// cannot run.
/// </summary>
public sealed class EvalFunction
{
    private readonly Func<Scalar, Scalar, RegexScope, bool> _isCorrect;

    internal EvalFunction(string name, Func<Scalar, Scalar, bool> isCorrect)
        : this(name, (p, t, _) => isCorrect(p, t))
    {
    }

    internal EvalFunction(string name, Func<Scalar, Scalar, RegexScope, bool> isCorrect)
    {
        Name = name;
        _isCorrect = isCorrect;
    }

    /// <summary>The catalogue name, e.g. <c>exact</c>.</summary>
    public string Name { get; }

    /// <summary>Scores one pair: 1 when the prediction matches the target, else 0 (an evaluation of one item, under <see cref="RegexLimits.Default"/>).</summary>
    /// <exception cref="AfnioException"><c>invalid_eval_fn</c> when a regex target is not a valid pattern; <c>regex_budget_exceeded</c>.</exception>
    public int Score(Scalar prediction, Scalar target) => _isCorrect(prediction, target, new RegexScope(RegexLimits.Default)) ? 1 : 0;

    /// <summary>
    /// Scores every pair of one evaluation, in order. The pairs share one <see cref="RegexLimits.Budget"/>
    /// and one cache of compiled patterns; <paramref name="cancellationToken"/> is checked before each pair.
    /// </summary>
    /// <exception cref="AfnioException"><c>invalid_eval_fn</c> when a regex target is not a valid pattern; <c>regex_budget_exceeded</c>.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled between two pairs.</exception>
    public IReadOnlyList<int> ScoreAll(IReadOnlyList<(Scalar Prediction, Scalar Target)> pairs, RegexLimits? limits, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var scope = new RegexScope(limits ?? RegexLimits.Default);
        var scores = new int[pairs.Count];
        for (var i = 0; i < pairs.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            scores[i] = _isCorrect(pairs[i].Prediction, pairs[i].Target, scope) ? 1 : 0;
        }

        return scores;
    }
}

/// <summary>What the <c>regex</c> evaluation function may spend in one evaluation (one evaluator call, all its items).</summary>
/// <param name="Budget">
/// Wall-clock time for compiling and matching patterns, summed over the items. Past it the evaluation
/// fails with <c>regex_budget_exceeded</c>; one match on the backtracking engine is cut off at it too.
/// </param>
public sealed record RegexLimits(TimeSpan Budget)
{
    /// <summary>Two seconds.</summary>
    public static RegexLimits Default { get; } = new(TimeSpan.FromSeconds(2));
}

/// <summary>
/// The regex work of one evaluation: patterns compiled once per (pattern, options), preferring the
/// linear-time <see cref="RegexOptions.NonBacktracking"/> engine, and the time spent, against the budget.
/// </summary>
internal sealed class RegexScope(RegexLimits limits)
{
    // Distinct target patterns are each compiled (and paid for) once; past this many, they are not kept.
    private const int MaxCached = 1024;
    private readonly Dictionary<(string Pattern, RegexOptions Options), Regex> _cache = [];
    private TimeSpan _spent;

    /// <summary>Whether <paramref name="pattern"/> is found in <paramref name="input"/>; its compile and match time count against the budget.</summary>
    public bool IsMatch(string pattern, RegexOptions options, string input, string param)
    {
        var started = Stopwatch.GetTimestamp();
        bool found;
        try
        {
            if (!_cache.TryGetValue((pattern, options), out var regex))
            {
                regex = Scoring.CompileRegex(pattern, options, limits.Budget, param);
                if (_cache.Count < MaxCached)
                {
                    _cache[(pattern, options)] = regex;
                }
            }

            found = regex.IsMatch(input);
        }
        catch (RegexMatchTimeoutException)
        {
            throw BudgetExceeded(param);
        }

        _spent += Stopwatch.GetElapsedTime(started);
        return _spent <= limits.Budget ? found : throw BudgetExceeded(param);
    }

    private AfnioException BudgetExceeded(string param) => AfnioException.Invalid("regex_budget_exceeded",
        $"The regex evaluation used its budget of {limits.Budget.TotalMilliseconds:0} ms of matching for one evaluation (Afnio__Limits__RegexBudgetMs). " +
        "Score fewer items per call, or use a simpler pattern: patterns without backreferences, lookarounds, atomic groups or conditionals run in linear time.", param);
}

/// <summary>A named reduction of the per-pair scores of a batch (afnio's <c>reduction_fn</c>).</summary>
/// <param name="Name"><c>sum</c>, <c>mean</c>, <c>min</c> or <c>max</c>.</param>
public sealed record Reduction(string Name)
{
    /// <summary>
    /// Reduces the scores as Python would: <c>sum</c>, <c>min</c> and <c>max</c> of ints are ints,
    /// <c>mean</c> is always a float (<c>0.5</c>, <c>1.0</c>).
    /// </summary>
    public Scalar Reduce(IReadOnlyList<int> scores) => Reduce([.. scores.Select(s => Scalar.FromInt(s))]);

    /// <summary>
    /// Reduces int or float scores as Python would: a <c>sum</c> of ints is an int, with a float it is a
    /// float; <c>mean</c> is always a float; <c>min</c> and <c>max</c> keep the chosen score as it is.
    /// </summary>
    /// <exception cref="OverflowException">The sum does not fit a 64-bit int or a finite float.</exception>
    public Scalar Reduce(IReadOnlyList<Scalar> scores)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (scores.Count == 0)
        {
            throw new ArgumentException("There are no scores to reduce.", nameof(scores));
        }

        var floatSum = scores.Sum(s => s.AsFloat);
        if (!double.IsFinite(floatSum))
        {
            throw new OverflowException($"The scores are too large to {Name}.");
        }

        return Name switch
        {
            "sum" when scores.All(s => s.Kind is ScalarKind.Int or ScalarKind.Bool) => Scalar.FromInt(scores.Aggregate(0L, (sum, s) => checked(sum + s.AsInt))),
            "sum" => Scalar.FromFloat(floatSum),
            "mean" => Scalar.FromFloat(floatSum / scores.Count),
            "min" => scores.Aggregate((best, s) => s.AsFloat < best.AsFloat ? s : best),
            "max" => scores.Aggregate((best, s) => s.AsFloat > best.AsFloat ? s : best),
            _ => throw new InvalidOperationException($"Unknown reduction '{Name}'."),
        };
    }
}

/// <summary>
/// A named success condition (afnio's <c>success_fn</c>). When it holds at forward time, the
/// evaluator's backward gives the prediction an empty gradient and calls no model.
/// </summary>
/// <param name="Name"><c>all_correct</c>, <c>any_correct</c> or <c>score_at_least</c>.</param>
/// <param name="Threshold">For <c>score_at_least</c>: the lowest passing score.</param>
public sealed record SuccessCondition(string Name, double? Threshold = null)
{
    /// <summary>
    /// Whether the evaluation succeeded. <c>all_correct</c>: every score is 1; <c>any_correct</c>: some
    /// score is 1; <c>score_at_least</c>: the reduced score (or, without a reduction, the mean of the
    /// scores) is at least <see cref="Threshold"/>.
    /// </summary>
    /// <param name="scores">The per-pair scores (one for a scalar evaluation).</param>
    /// <param name="reduced">The reduced score, or null when the batch was not reduced.</param>
    public bool IsMet(IReadOnlyList<Scalar> scores, Scalar? reduced) => Name switch
    {
        "all_correct" => scores.All(s => s.AsFloat == 1),
        "any_correct" => scores.Any(s => s.AsFloat == 1),
        "score_at_least" => (reduced is { } r ? r.AsFloat : scores.Average(s => s.AsFloat)) >= Threshold!.Value,
        _ => throw new InvalidOperationException($"Unknown success condition '{Name}'."),
    };
}

/// <summary>
/// The server-side catalogue that replaces afnio's Python callables (<c>eval_fn</c>, <c>reduction_fn</c>,
/// <c>success_fn</c>): evaluation functions, reductions and success conditions chosen by name. Each is
/// given in JSON either as its name (<c>"exact"</c>) or as an object with its name and parameters
/// (<c>{"name": "numeric", "tolerance": 0.01}</c>).
/// </summary>
public static class Scoring
{
    private const double DefaultTolerance = 1e-9;

    /// <summary>The evaluation functions, with the parameters each accepts.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> EvalFunctions { get; } =
        new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
        {
            ["exact"] = [],
            ["case_insensitive"] = [],
            ["contains"] = ["case_sensitive"],
            ["regex"] = ["pattern", "case_sensitive"],
            ["numeric"] = ["tolerance"],
            ["json_field"] = ["field"],
        };

    /// <summary><c>exact</c>: Python's <c>==</c> (see <see cref="PythonEquals"/>); the exact-match evaluator's function.</summary>
    public static EvalFunction Exact { get; } = new("exact", PythonEquals);

    /// <summary>The reduction names.</summary>
    public static IReadOnlyList<string> Reductions { get; } = ["sum", "mean", "min", "max"];

    /// <summary>The success conditions, with the parameters each accepts.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> SuccessConditions { get; } =
        new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
        {
            ["all_correct"] = [],
            ["any_correct"] = [],
            ["score_at_least"] = ["threshold"],
        };

    /// <summary>
    /// Reads an evaluation function: <c>exact</c> (Python <c>==</c> on the values), <c>case_insensitive</c>
    /// (string forms, trimmed, case folded), <c>contains</c> (the target is a substring of the prediction;
    /// <c>case_sensitive</c>, default true), <c>regex</c> (the <c>pattern</c> parameter, or else the target,
    /// found anywhere in the prediction; <c>case_sensitive</c>, default true), <c>numeric</c> (both are
    /// numbers, or strings that parse as numbers, within <c>tolerance</c>, default 1e-9) and <c>json_field</c>
    /// (the value at the dot path <c>field</c> of the prediction parsed as JSON equals the target, or the
    /// target's own field when the target is a JSON object or array).
    /// </summary>
    /// <exception cref="AfnioException">400 <c>unknown_eval_fn</c> or <c>invalid_eval_fn</c>.</exception>
    public static EvalFunction ParseEvalFn(JsonElement spec, string param = "eval_fn")
    {
        var (name, parameters) = ReadSpec(spec, param, "eval_fn", "evaluation function", EvalFunctions);
        return name switch
        {
            "exact" => Exact,
            "case_insensitive" => new EvalFunction(name, (p, t) =>
                string.Equals(p.ToPythonString().Trim(), t.ToPythonString().Trim(), StringComparison.OrdinalIgnoreCase)),
            "contains" => Contains(name, Bool(parameters, "case_sensitive", true, param, "eval_fn")),
            "regex" => RegexMatch(name, parameters, param),
            "numeric" => Numeric(name, parameters, param),
            _ => JsonField(name, parameters, param),
        };
    }

    /// <summary>Reads a reduction: <c>sum</c>, <c>mean</c>, <c>min</c>, <c>max</c>, or JSON null for none.</summary>
    /// <exception cref="AfnioException">400 <c>unknown_reduction</c> or <c>invalid_reduction</c>.</exception>
    public static Reduction? ParseReduction(JsonElement spec, string param = "reduction")
    {
        if (spec.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var catalogue = Reductions.ToDictionary(r => r, _ => (IReadOnlyList<string>)[], StringComparer.Ordinal);
        var (name, _) = ReadSpec(spec, param, "reduction", "reduction", catalogue);
        return new Reduction(name);
    }

    /// <summary>Reads a success condition, or JSON null for none.</summary>
    /// <exception cref="AfnioException">400 <c>unknown_success_condition</c> or <c>invalid_success_condition</c>.</exception>
    public static SuccessCondition? ParseSuccess(JsonElement spec, string param = "success")
    {
        if (spec.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var (name, parameters) = ReadSpec(spec, param, "success_condition", "success condition", SuccessConditions);
        if (name != "score_at_least")
        {
            return new SuccessCondition(name);
        }

        return parameters.TryGetValue("threshold", out var threshold) && threshold.ValueKind == JsonValueKind.Number
            && double.IsFinite(threshold.GetDouble())
            ? new SuccessCondition(name, threshold.GetDouble())
            : throw AfnioException.Invalid("invalid_success_condition",
                "score_at_least needs a numeric 'threshold', e.g. {\"name\": \"score_at_least\", \"threshold\": 0.8}.", param);
    }

    /// <summary>
    /// Python's <c>==</c> on two values: numbers compare by value across int and float (and booleans
    /// count as 0 and 1), strings compare exactly, <c>None == None</c>, anything else is unequal.
    /// </summary>
    public static bool PythonEquals(Scalar a, Scalar b)
    {
        if (IsNumeric(a) && IsNumeric(b))
        {
            if (a.Kind != ScalarKind.Float && b.Kind != ScalarKind.Float)
            {
                return a.AsInt == b.AsInt;
            }

            // An int equals a float only when the float is exactly that integer (2**53 + 1 != 2.0**53).
            return a.Kind == ScalarKind.Float && b.Kind == ScalarKind.Float
                ? a.AsFloat == b.AsFloat
                : IntEqualsFloat(a.Kind == ScalarKind.Float ? b.AsInt : a.AsInt, a.Kind == ScalarKind.Float ? a.AsFloat : b.AsFloat);
        }

        return a.Kind == b.Kind && a.Kind switch
        {
            ScalarKind.Str => string.Equals(a.AsStr, b.AsStr, StringComparison.Ordinal),
            ScalarKind.Null => true,
            _ => false,
        };
    }

    /// <summary>Strips an optional Markdown code fence (<c>```json … ```</c>) around a model's JSON reply.</summary>
    public static string StripCodeFence(string text)
    {
        var trimmed = text.Trim();
        if (!trimmed.StartsWith("```", StringComparison.Ordinal))
        {
            return trimmed;
        }

        var firstLineEnd = trimmed.IndexOf('\n', StringComparison.Ordinal);
        if (firstLineEnd < 0)
        {
            return trimmed.Trim('`').Trim();
        }

        var body = trimmed[(firstLineEnd + 1)..].TrimEnd();
        return (body.EndsWith("```", StringComparison.Ordinal) ? body[..^3] : body).Trim();
    }

    private static EvalFunction Contains(string name, bool caseSensitive) => new(name, (p, t) =>
        p.ToPythonString().Contains(t.ToPythonString(), caseSensitive ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase));

    private static EvalFunction RegexMatch(string name, IReadOnlyDictionary<string, JsonElement> parameters, string param)
    {
        var options = RegexOptions.CultureInvariant
            | (Bool(parameters, "case_sensitive", true, param, "eval_fn") ? RegexOptions.None : RegexOptions.IgnoreCase);
        string? fixedPattern = null;
        if (parameters.TryGetValue("pattern", out var pattern))
        {
            fixedPattern = pattern.ValueKind == JsonValueKind.String
                ? pattern.GetString()!
                : throw AfnioException.Invalid("invalid_eval_fn", "regex 'pattern' must be a string.", param);
            // Refused when the function is read, before any item is scored.
            CompileRegex(fixedPattern, options, RegexLimits.Default.Budget, param);
        }

        return new EvalFunction(name, (p, t, scope) =>
            scope.IsMatch(fixedPattern ?? t.ToPythonString(), options, p.ToPythonString(), fixedPattern is null ? "target" : param));
    }

    /// <summary>
    /// Compiles on the NonBacktracking engine, whose matching time is linear in the input; only a
    /// pattern that engine refuses (backreferences, lookarounds, atomic groups, conditionals, \G, or an
    /// automaton too large) runs on the backtracking engine, cut off at <paramref name="timeout"/>.
    /// </summary>
    internal static Regex CompileRegex(string pattern, RegexOptions options, TimeSpan timeout, string param)
    {
        try
        {
            try
            {
                return new Regex(pattern, options | RegexOptions.NonBacktracking, timeout);
            }
            catch (NotSupportedException)
            {
                return new Regex(pattern, options, timeout);
            }
        }
        catch (ArgumentException e)
        {
            throw AfnioException.Invalid("invalid_eval_fn", $"'{pattern}' is not a valid .NET regular expression: {e.Message}", param);
        }
    }

    private static EvalFunction Numeric(string name, IReadOnlyDictionary<string, JsonElement> parameters, string param)
    {
        var tolerance = DefaultTolerance;
        if (parameters.TryGetValue("tolerance", out var value))
        {
            tolerance = value.ValueKind == JsonValueKind.Number && value.GetDouble() is var t && double.IsFinite(t) && t >= 0
                ? t
                : throw AfnioException.Invalid("invalid_eval_fn", "numeric 'tolerance' must be a number greater than or equal to 0.", param);
        }

        return new EvalFunction(name, (p, t) =>
            AsNumber(p) is { } x && AsNumber(t) is { } y && Math.Abs(x - y) <= tolerance);
    }

    private static double? AsNumber(Scalar value) => value.Kind switch
    {
        ScalarKind.Int or ScalarKind.Float => value.AsFloat,
        ScalarKind.Str when double.TryParse(value.AsStr.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
            && double.IsFinite(d) => d,
        _ => null,
    };

    private static EvalFunction JsonField(string name, IReadOnlyDictionary<string, JsonElement> parameters, string param)
    {
        if (!parameters.TryGetValue("field", out var fieldValue) || fieldValue.ValueKind != JsonValueKind.String
            || fieldValue.GetString() is not { Length: > 0 } field)
        {
            throw AfnioException.Invalid("invalid_eval_fn",
                "json_field needs a 'field': a dot path such as \"answer\" or \"result.items.0.label\".", param);
        }

        var path = field.Split('.');
        return new EvalFunction(name, (p, t) =>
        {
            if (p.Kind != ScalarKind.Str || ParseJson(p.AsStr) is not { } prediction || Lookup(prediction, path) is not { } actual)
            {
                return false;
            }

            // A target that is JSON text is compared as JSON: an object or array by the same field, a scalar as its value.
            var target = t.Kind == ScalarKind.Str && ParseJson(t.AsStr) is { } parsed ? parsed : ParseJson(VariableData.Of(t).ToJson())!.Value;
            var expected = target.ValueKind is JsonValueKind.Object or JsonValueKind.Array ? Lookup(target, path) : target;
            return expected is { } e && JsonEquals(actual, e);
        });
    }

    private static JsonElement? ParseJson(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(StripCodeFence(text));
            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static JsonElement? Lookup(JsonElement root, string[] path)
    {
        var current = root;
        foreach (var segment in path)
        {
            if (current.ValueKind == JsonValueKind.Object && current.TryGetProperty(segment, out var child))
            {
                current = child;
            }
            else if (current.ValueKind == JsonValueKind.Array
                && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < current.GetArrayLength())
            {
                current = current[index];
            }
            else
            {
                return null;
            }
        }

        return current;
    }

    // Python's == on parsed JSON values (json.loads gives int, float, bool, str, None, list, dict).
    private static bool JsonEquals(JsonElement a, JsonElement b)
    {
        if (JsonScalar(a) is { } x && JsonScalar(b) is { } y)
        {
            return PythonEquals(x, y);
        }

        return (a.ValueKind, b.ValueKind) switch
        {
            (JsonValueKind.Array, JsonValueKind.Array) => a.GetArrayLength() == b.GetArrayLength()
                && a.EnumerateArray().Zip(b.EnumerateArray()).All(pair => JsonEquals(pair.First, pair.Second)),
            (JsonValueKind.Object, JsonValueKind.Object) => ObjectEquals(a, b),
            _ => false,
        };
    }

    private static bool ObjectEquals(JsonElement a, JsonElement b)
    {
        // Duplicate keys: the last one wins, as in json.loads.
        var left = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in a.EnumerateObject())
        {
            left[p.Name] = p.Value;
        }

        var right = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in b.EnumerateObject())
        {
            right[p.Name] = p.Value;
        }

        return left.Count == right.Count
            && left.All(kv => right.TryGetValue(kv.Key, out var other) && JsonEquals(kv.Value, other));
    }

    private static Scalar? JsonScalar(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => Scalar.FromStr(e.GetString()!),
        JsonValueKind.True => Scalar.FromBool(true),
        JsonValueKind.False => Scalar.FromBool(false),
        JsonValueKind.Null => Scalar.Null,
        JsonValueKind.Number when e.TryGetInt64(out var i) && e.GetRawText().AsSpan().IndexOfAny(".eE") < 0 => Scalar.FromInt(i),
        JsonValueKind.Number when double.IsFinite(e.GetDouble()) => Scalar.FromFloat(e.GetDouble()),
        _ => null,
    };

    private static bool IsNumeric(Scalar s) => s.Kind is ScalarKind.Int or ScalarKind.Float or ScalarKind.Bool;

    private static bool IntEqualsFloat(long i, double f) =>
        f == Math.Floor(f) && f >= -9.2233720368547758E+18 && f < 9.2233720368547758E+18 && (long)f == i;

    private static bool Bool(IReadOnlyDictionary<string, JsonElement> parameters, string name, bool fallback, string param, string kind)
    {
        if (!parameters.TryGetValue(name, out var value))
        {
            return fallback;
        }

        return value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : throw AfnioException.Invalid($"invalid_{kind}", $"'{name}' must be true or false.", param);
    }

    private static (string Name, IReadOnlyDictionary<string, JsonElement> Parameters) ReadSpec(
        JsonElement spec, string param, string kind, string what, IReadOnlyDictionary<string, IReadOnlyList<string>> catalogue)
    {
        string? name;
        var parameters = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        switch (spec.ValueKind)
        {
            case JsonValueKind.String:
                name = spec.GetString();
                break;
            case JsonValueKind.Object:
                name = spec.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
                if (name is null)
                {
                    throw AfnioException.Invalid($"invalid_{kind}", $"'{param}' needs a string 'name'. Available {what}s: {Names(catalogue)}.", param);
                }

                foreach (var p in spec.EnumerateObject().Where(p => p.Name != "name"))
                {
                    parameters[p.Name] = p.Value.Clone();
                }

                break;
            default:
                throw AfnioException.Invalid($"invalid_{kind}",
                    $"'{param}' must be a name or an object {{\"name\": …, <parameters>}}. Available {what}s: {Names(catalogue)}.", param);
        }

        if (name is null || !catalogue.TryGetValue(name, out var accepted))
        {
            throw AfnioException.Invalid($"unknown_{kind}", $"Unknown {what} '{name}'. Available {what}s: {Names(catalogue)}.", param);
        }

        if (parameters.Keys.FirstOrDefault(k => !accepted.Contains(k)) is { } unknown)
        {
            throw AfnioException.Invalid($"invalid_{kind}",
                accepted.Count == 0
                    ? $"'{name}' takes no parameters; got '{unknown}'."
                    : $"'{name}' takes the parameters {string.Join(", ", accepted)}; got '{unknown}'.", param);
        }

        return (name, parameters);
    }

    private static string Names(IReadOnlyDictionary<string, IReadOnlyList<string>> catalogue) => string.Join(", ", catalogue.Keys);
}
