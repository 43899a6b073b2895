using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff.Evaluation;

/// <summary>
/// Runs afnio's Python callables (<c>eval_fn</c>, <c>reduction_fn</c>, <c>success_fn</c>) where they
/// live: in the client that sent them. Only the afnio protocol has such a client; over REST the
/// catalogue of <see cref="Scoring"/> stands in for them.
/// </summary>
public interface IClientCallables
{
    /// <summary>Calls the client's function <paramref name="callableId"/> with plain JSON arguments and returns its JSON result.</summary>
    /// <exception cref="AfnioException">The client failed to run it, or did not answer.</exception>
    ValueTask<JsonElement> CallAsync(string callableId, IReadOnlyList<JsonNode?> args, CancellationToken cancellationToken);
}

/// <summary>
/// An evaluator's function argument: a name of the server-side catalogue, or a client callable
/// <c>{"__callable__": true, "callable_id": "…"}</c> that only the afnio protocol can run.
/// </summary>
public static class ClientCallable
{
    /// <summary>True when <paramref name="spec"/> is a client callable reference.</summary>
    public static bool TryRead(JsonElement spec, out string callableId)
    {
        callableId = string.Empty;
        if (spec.ValueKind != JsonValueKind.Object || !spec.TryGetProperty("__callable__", out var flag) || flag.ValueKind != JsonValueKind.True)
        {
            return false;
        }

        if (!spec.TryGetProperty("callable_id", out var id) || id.ValueKind != JsonValueKind.String || id.GetString() is not { Length: > 0 and <= 200 } text)
        {
            throw AfnioException.Invalid("invalid_callable", "A callable reference needs a 'callable_id' string.");
        }

        callableId = text;
        return true;
    }

    /// <summary>Refuses a client callable where no client can run it (the REST API).</summary>
    public static IClientCallables Require(IClientCallables? callables, string param) =>
        callables ?? throw AfnioException.Invalid("callable_unavailable",
            $"'{param}' is a function of the afnio Python client, which only the afnio protocol (/ws/v0/rpc/) can call back. " +
            "Over REST, name a function of the server-side catalogue instead.", param);

    /// <summary>A value as JSON for a callable's argument.</summary>
    public static JsonNode? ToJson(Scalar value) => JsonNode.Parse(VariableData.Of(value).ToJson());

    /// <summary>A list of values as one JSON array argument.</summary>
    public static JsonNode ToJson(IEnumerable<Scalar> values) => new JsonArray([.. values.Select(ToJson)]);

    /// <summary>A callable's result as a score: an int, a float or a boolean (Python's <c>True</c> is 1 in a sum).</summary>
    public static Scalar ToScore(JsonElement result, string what) => result.ValueKind switch
    {
        JsonValueKind.True => Scalar.FromBool(true),
        JsonValueKind.False => Scalar.FromBool(false),
        JsonValueKind.Number when result.TryGetInt64(out var i) && result.GetRawText().AsSpan().IndexOfAny(".eE") < 0 => Scalar.FromInt(i),
        JsonValueKind.Number when double.IsFinite(result.GetDouble()) => Scalar.FromFloat(result.GetDouble()),
        _ => throw AfnioException.Invalid("invalid_callable_result",
            $"{what} returned {Shorten(result.GetRawText())}; it must return a number or a boolean."),
    };

    /// <summary>Python's <c>bool()</c> of a success function's result.</summary>
    public static bool ToBool(JsonElement result) => result.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False or JsonValueKind.Null => false,
        JsonValueKind.Number => result.GetDouble() != 0,
        JsonValueKind.String => result.GetString()!.Length > 0,
        JsonValueKind.Array => result.GetArrayLength() > 0,
        _ => result.EnumerateObject().Any(),
    };

    private static string Shorten(string text) => text.Length > 200 ? text[..200] + "…" : text;
}

/// <summary>Scores one (prediction, target) pair: a catalogue function, or the client's <c>eval_fn</c>.</summary>
public abstract record PairScorer
{
    /// <summary>A catalogue function (<see cref="Scoring.ParseEvalFn"/>): 1 or 0 per pair.</summary>
    /// <param name="Function">The function.</param>
    public sealed record Catalogue(EvalFunction Function) : PairScorer;

    /// <summary>The client's <c>eval_fn(prediction, target)</c>, called once per pair.</summary>
    /// <param name="CallableId">The client's id of the function.</param>
    public sealed record Client(string CallableId) : PairScorer;

    /// <summary>Reads <c>eval_fn</c>: a catalogue spec or a client callable.</summary>
    public static PairScorer Read(JsonElement spec, IClientCallables? callables, string param = "eval_fn")
    {
        if (ClientCallable.TryRead(spec, out var id))
        {
            ClientCallable.Require(callables, param);
            return new Client(id);
        }

        return new Catalogue(Scoring.ParseEvalFn(spec, param));
    }

    /// <summary>
    /// One score per pair, in order. Client calls are sent together and answered in order; a catalogue
    /// function scores the pairs as one evaluation under <paramref name="regexLimits"/> (default
    /// <see cref="RegexLimits.Default"/>), checking <paramref name="cancellationToken"/> between pairs.
    /// </summary>
    public async ValueTask<IReadOnlyList<Scalar>> ScoreAsync(
        IReadOnlyList<(Scalar Prediction, Scalar Target)> pairs, IClientCallables? callables, CancellationToken cancellationToken,
        RegexLimits? regexLimits = null)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        if (this is Catalogue catalogue)
        {
            return [.. catalogue.Function.ScoreAll(pairs, regexLimits, cancellationToken).Select(s => Scalar.FromInt(s))];
        }

        var client = (Client)this;
        var host = ClientCallable.Require(callables, "eval_fn");
        var results = await Task.WhenAll(pairs.Select(p =>
            host.CallAsync(client.CallableId, [ClientCallable.ToJson(p.Prediction), ClientCallable.ToJson(p.Target)], cancellationToken).AsTask()));
        return [.. results.Select(r => ClientCallable.ToScore(r, "eval_fn"))];
    }
}

/// <summary>Reduces a batch's scores: a catalogue reduction, or the client's <c>reduction_fn</c>.</summary>
public abstract record ScoreReduction
{
    /// <summary>A catalogue reduction: sum, mean, min or max.</summary>
    /// <param name="Reduction">The reduction.</param>
    public sealed record Catalogue(Reduction Reduction) : ScoreReduction;

    /// <summary>The client's <c>reduction_fn(scores)</c>, called once with the list of scores.</summary>
    /// <param name="CallableId">The client's id of the function.</param>
    public sealed record Client(string CallableId) : ScoreReduction;

    /// <summary>The default of afnio's evaluators when no reduction is given: Python's <c>sum</c>, on the server.</summary>
    public static ScoreReduction Sum { get; } = new Catalogue(new Reduction("sum"));

    /// <summary>Reads a reduction: a catalogue name, a client callable, or JSON null for none.</summary>
    public static ScoreReduction? Read(JsonElement spec, IClientCallables? callables, string param = "reduction")
    {
        if (ClientCallable.TryRead(spec, out var id))
        {
            ClientCallable.Require(callables, param);
            return new Client(id);
        }

        return Scoring.ParseReduction(spec, param) is { } reduction ? new Catalogue(reduction) : null;
    }

    /// <summary>The reduced score.</summary>
    /// <exception cref="AfnioException">The scores overflow, or the client's function returned something other than a number.</exception>
    public async ValueTask<Scalar> ReduceAsync(IReadOnlyList<Scalar> scores, IClientCallables? callables, CancellationToken cancellationToken)
    {
        if (this is Catalogue catalogue)
        {
            try
            {
                return catalogue.Reduction.Reduce(scores);
            }
            catch (OverflowException e)
            {
                throw AfnioException.Invalid("invalid_scores", $"The scores cannot be reduced: {e.Message}");
            }
        }

        var host = ClientCallable.Require(callables, "reduction_fn");
        return ClientCallable.ToScore(
            await host.CallAsync(((Client)this).CallableId, [ClientCallable.ToJson(scores)], cancellationToken), "reduction_fn");
    }
}

/// <summary>Decides whether an evaluation succeeded: a catalogue condition, or the client's <c>success_fn</c>.</summary>
public abstract record SuccessTest
{
    /// <summary>A catalogue condition.</summary>
    /// <param name="Condition">The condition.</param>
    public sealed record Catalogue(SuccessCondition Condition) : SuccessTest;

    /// <summary>The client's <c>success_fn(scores)</c>, called once with the list of scores; its truth value decides.</summary>
    /// <param name="CallableId">The client's id of the function.</param>
    public sealed record Client(string CallableId) : SuccessTest;

    /// <summary>Reads a success test: a catalogue spec, a client callable, or JSON null for none.</summary>
    public static SuccessTest? Read(JsonElement spec, IClientCallables? callables, string param = "success")
    {
        if (ClientCallable.TryRead(spec, out var id))
        {
            ClientCallable.Require(callables, param);
            return new Client(id);
        }

        return Scoring.ParseSuccess(spec, param) is { } condition ? new Catalogue(condition) : null;
    }

    /// <summary>Whether the evaluation succeeded, given the per-pair scores and the reduced score (null when not reduced).</summary>
    public async ValueTask<bool> IsMetAsync(IReadOnlyList<Scalar> scores, Scalar? reduced, IClientCallables? callables, CancellationToken cancellationToken)
    {
        if (this is Catalogue catalogue)
        {
            return catalogue.Condition.IsMet(scores, reduced);
        }

        var host = ClientCallable.Require(callables, "success_fn");
        return ClientCallable.ToBool(await host.CallAsync(((Client)this).CallableId, [ClientCallable.ToJson(scores)], cancellationToken));
    }
}

/// <summary>An evaluator's text argument (a purpose): a plain string, or a variable whose data is read at forward time.</summary>
public static class PurposeText
{
    /// <summary>Reads a purpose: a string, a variable id, or absent/null for <paramref name="fallback"/>.</summary>
    public static Argument Read(JsonElement arguments, string name, string? fallback)
    {
        if (!arguments.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return fallback is null
                ? throw AfnioException.Invalid("missing_field", $"'{name}' is required: a string that says what the function is for.", name)
                : new Argument.Literal(JsonSerializer.SerializeToElement(fallback));
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            throw AfnioException.Invalid("invalid_type", $"'{name}' must be a string or a variable id (var_…).", name);
        }

        return PrefixedId.TryParse(PrefixedId.Variable, value.GetString(), out var id)
            ? new Argument.Var(id)
            : new Argument.Literal(JsonSerializer.SerializeToElement(StorableText.Check(value.GetString()!, "invalid_type", name)));
    }

    /// <summary>The purpose's text: the string, or the variable's data as Python's <c>str()</c> prints it.</summary>
    public static string Text(Argument purpose, IReadOnlyDictionary<Guid, VariableSnapshot> variables) => purpose switch
    {
        Argument.Var v => variables[v.Id].Data.IsList
            ? variables[v.Id].Data.ToString()
            : variables[v.Id].Data.Scalar.Kind == ScalarKind.Str ? variables[v.Id].Data.Scalar.AsStr : variables[v.Id].Data.Scalar.ToPythonString(),
        Argument.Literal l => l.Value.GetString()!,
        _ => throw new InvalidOperationException("A purpose is a variable or a literal."),
    };

    /// <summary>The variable behind a purpose, if it is one (it takes an edge, never a gradient).</summary>
    public static Guid? VariableOf(Argument purpose) => purpose is Argument.Var v ? v.Id : null;
}
