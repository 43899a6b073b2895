using Afnio.Domain.Pricing;

namespace Afnio.Domain.Tests.Pricing;

/// <summary>The reference's price table and cost formula (semantics §5.3, appendix B).</summary>
public sealed class PriceTableTests
{
    [Fact]
    public void TheDocumentedExample_Gpt4o_1000PromptWith200Cached_And500Completion_Costs0_00725()
    {
        Assert.Equal(0.00725m, PriceTable.Default.Cost("gpt-4o", new TokenUsage(Input: 1000, CachedInput: 200, Output: 500)));
    }

    [Theory]
    [InlineData("gpt-4o", 2.5, 1.25, 10.0)]
    [InlineData("gpt-4.1-nano", 0.1, 0.025, 0.4)]
    [InlineData("gpt-4o-mini", 0.15, 0.075, 0.6)]
    [InlineData("o3", 2.0, 0.5, 8.0)]
    [InlineData("gpt-4o-2024-08-06", 2.5, 1.25, 10.0)] // a dated snapshot maps to its family
    [InlineData("o1-preview-2024-09-12", 15.0, 7.5, 60.0)]
    [InlineData("gpt-4o-2024-05-13", 5.0, null, 15.0)] // a snapshot priced on its own
    public void Prices_FollowTheTable(string model, double input, double? cached, double output)
    {
        var price = PriceTable.Default.Find(model);

        Assert.NotNull(price);
        Assert.Equal((decimal)input, price.Input);
        Assert.Equal(cached is null ? null : (decimal)cached, price.Cached);
        Assert.Equal((decimal)output, price.Output);
    }

    [Fact]
    public void NullPrices_AreNotCharged()
    {
        // o1-pro has no cached price: cached tokens are free. gpt-image-1 has no output price.
        Assert.Equal((800 * 150m + 0m + 100 * 600m) / 1_000_000m,
            PriceTable.Default.Cost("o1-pro", new TokenUsage(1000, 200, 100)));
        Assert.Equal((900 * 5m + 100 * 1.25m) / 1_000_000m, PriceTable.Default.Cost("gpt-image-1", new TokenUsage(1000, 100, 5000)));
    }

    [Theory]
    [InlineData("gpt-5")]
    [InlineData("gpt-3.5-turbo")]
    [InlineData("llama-3.1-8b-instruct")]
    public void UnknownModels_CostNothing(string model)
    {
        Assert.Null(PriceTable.Default.Find(model));
        Assert.Equal(0m, PriceTable.Default.Cost(model, new TokenUsage(1_000_000, 0, 1_000_000)));
    }

    [Fact]
    public void NewSnapshotsOfAKnownFamily_AreFoundByDroppingTheDate()
    {
        Assert.Equal(PriceTable.Default.Find("gpt-4.1-mini"), PriceTable.Default.Find("gpt-4.1-mini-2026-11-01"));
    }

    [Fact]
    public void Overrides_ReplaceOrAddPrices_WithoutChangingTheDefault()
    {
        var table = PriceTable.Default.With(new Dictionary<string, ModelPrice>
        {
            ["gpt-4o"] = new(1m, null, 2m),
            ["my-local-llama"] = new(0.01m, 0m, 0.02m),
        });

        Assert.Equal((1000 * 1m + 500 * 2m) / 1_000_000m, table.Cost("gpt-4o", new TokenUsage(1000, 0, 500)));
        Assert.Equal((1000 * 0.01m + 500 * 0.02m) / 1_000_000m, table.Cost("my-local-llama", new TokenUsage(1000, 0, 500)));
        Assert.Equal(0.00725m, PriceTable.Default.Cost("gpt-4o", new TokenUsage(1000, 200, 500)));
    }

    [Fact]
    public void TheShippedTable_HasEveryPricingKeyAndAlias()
    {
        using var stream = typeof(PriceTable).Assembly.GetManifestResourceStream("Afnio.Domain.Pricing.model_prices.json")!;
        using var document = System.Text.Json.JsonDocument.Parse(stream);
        var openai = document.RootElement.GetProperty("openai");
        Assert.Equal(25, openai.GetProperty("pricing").EnumerateObject().Count());
        Assert.Equal(53, openai.GetProperty("models").EnumerateObject().Count());
    }
}
