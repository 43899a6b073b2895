using System.Text.Json;
using System.Text.RegularExpressions;

namespace Afnio.Domain.Pricing;

/// <summary>Tokens one language-model call used.</summary>
/// <param name="Input">Prompt tokens, cached ones included.</param>
/// <param name="CachedInput">Prompt tokens served from the provider's cache.</param>
/// <param name="Output">Completion tokens (reasoning included).</param>
/// <param name="Reasoning">Reasoning tokens, counted for reports; already part of <paramref name="Output"/>.</param>
public sealed record TokenUsage(long Input, long CachedInput, long Output, long Reasoning = 0);

/// <summary>A model's prices in USD per million tokens; null means the kind of token is not charged.</summary>
/// <param name="Input">Uncached prompt tokens.</param>
/// <param name="Cached">Cached prompt tokens.</param>
/// <param name="Output">Completion tokens.</param>
public sealed record ModelPrice(decimal? Input, decimal? Cached, decimal? Output);

/// <summary>
/// The price table (semantics §5.3): pricing keys with USD per million input, cached and output
/// tokens, and model names mapped to a key. A model is looked up by alias, then by its own name,
/// then without a trailing <c>-YYYY-MM-DD</c> snapshot date; a model not found costs nothing.
/// </summary>
public sealed partial class PriceTable
{
    private readonly Dictionary<string, ModelPrice> _pricing;
    private readonly Dictionary<string, string> _aliases;

    private PriceTable(Dictionary<string, ModelPrice> pricing, Dictionary<string, string> aliases) =>
        (_pricing, _aliases) = (pricing, aliases);

    /// <summary>The table that ships with the service (<c>Pricing/model_prices.json</c>).</summary>
    public static PriceTable Default { get; } = Load(typeof(PriceTable).Assembly.GetManifestResourceStream("Afnio.Domain.Pricing.model_prices.json")
        ?? throw new InvalidOperationException("The built-in price table is missing."));

    /// <summary>Reads a table in the <c>model_prices.json</c> format (<c>{"openai": {"pricing": …, "models": …}}</c>).</summary>
    public static PriceTable Load(Stream json)
    {
        using var document = JsonDocument.Parse(json);
        var pricing = new Dictionary<string, ModelPrice>(StringComparer.Ordinal);
        var aliases = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var provider in document.RootElement.EnumerateObject())
        {
            foreach (var entry in provider.Value.GetProperty("pricing").EnumerateObject())
            {
                pricing[entry.Name] = new ModelPrice(Price(entry.Value, "input"), Price(entry.Value, "cached"), Price(entry.Value, "output"));
            }

            if (provider.Value.TryGetProperty("models", out var models))
            {
                foreach (var alias in models.EnumerateObject())
                {
                    aliases[alias.Name] = alias.Value.GetString()!;
                }
            }
        }

        return new PriceTable(pricing, aliases);
    }

    /// <summary>A copy of this table with some prices replaced or added (configuration overrides).</summary>
    public PriceTable With(IReadOnlyDictionary<string, ModelPrice> overrides)
    {
        var pricing = new Dictionary<string, ModelPrice>(_pricing, StringComparer.Ordinal);
        var aliases = new Dictionary<string, string>(_aliases, StringComparer.Ordinal);
        foreach (var (model, price) in overrides)
        {
            pricing[model] = price;
            aliases[model] = model;
        }

        return new PriceTable(pricing, aliases);
    }

    /// <summary>The price of <paramref name="model"/>, or null when it has none.</summary>
    public ModelPrice? Find(string model)
    {
        foreach (var name in new[] { model, SnapshotDate().Replace(model, string.Empty) })
        {
            if (_aliases.TryGetValue(name, out var key) && _pricing.TryGetValue(key, out var aliased))
            {
                return aliased;
            }

            if (_pricing.TryGetValue(name, out var own))
            {
                return own;
            }
        }

        return null;
    }

    /// <summary>
    /// USD for one call: <c>(input − cached) × input price + cached × cached price + output × output price</c>,
    /// per million tokens, skipping prices that are null.
    /// </summary>
    public decimal Cost(string model, TokenUsage usage)
    {
        if (Find(model) is not { } price)
        {
            return 0m;
        }

        var cost = 0m;
        cost += (usage.Input - usage.CachedInput) * (price.Input ?? 0m);
        cost += usage.CachedInput * (price.Cached ?? 0m);
        cost += usage.Output * (price.Output ?? 0m);
        return cost / 1_000_000m;
    }

    private static decimal? Price(JsonElement entry, string name) =>
        entry.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDecimal() : null;

    [GeneratedRegex(@"-\d{4}-\d{2}-\d{2}$")]
    private static partial Regex SnapshotDate();
}
