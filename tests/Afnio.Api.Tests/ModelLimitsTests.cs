using Afnio.Data.LanguageModels;

namespace Afnio.Api.Tests;

public sealed class ModelLimitsTests
{
    private static ResolvedModel Model(int maxConcurrency, int? requestsPerMinute) =>
        new(Guid.NewGuid(), null, null, null, [], maxConcurrency, requestsPerMinute);

    [Fact]
    public async Task RequestsPerMinute_HoldBackTheRequestOverTheLimit_ForThatModelOnly()
    {
        using var limits = new ModelLimits();
        var limited = Model(10, 2);
        (await limits.AcquireAsync(limited, default)).Dispose();
        (await limits.AcquireAsync(limited, default)).Dispose();
        using var give = new CancellationTokenSource();

        var third = limits.AcquireAsync(limited, give.Token);
        (await limits.AcquireAsync(Model(10, 2), default).WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
        await Task.Delay(300);

        Assert.False(third.IsCompleted, "a third request in the same minute went through");
        await give.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
    }

    [Fact]
    public async Task Slots_AreSharedByEveryCallerOfAModel_AndGivenBackOnDispose()
    {
        using var limits = new ModelLimits();
        var model = Model(2, null);
        var first = await limits.AcquireAsync(model, default);
        var second = await limits.AcquireAsync(model, default);

        var third = limits.AcquireAsync(model, default);
        await Task.Delay(100);
        Assert.False(third.IsCompleted);

        first.Dispose();
        first.Dispose(); // twice gives back one slot, not two
        (await third.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
        var fourth = await limits.AcquireAsync(model, default).WaitAsync(TimeSpan.FromSeconds(5));
        var fifth = limits.AcquireAsync(model, default);
        await Task.Delay(100);
        Assert.False(fifth.IsCompleted, "a disposed lease was released twice");
        second.Dispose();
        fourth.Dispose();
        (await fifth.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }
}

public sealed class ModelOptionsTests
{
    [Fact]
    public void PriceOverrides_ReplaceOneModel_AndAddNewOnes_KeepingTheRest()
    {
        var table = new ModelOptions
        {
            Prices = new()
            {
                ["gpt-4o"] = new PriceOverride { Input = 1m, Cached = null, Output = 2m },
                ["my-local-model"] = new PriceOverride { Input = 0.5m, Output = 0.5m },
            },
        }.BuildPriceTable();
        var usage = new Domain.Pricing.TokenUsage(1_000_000, 200_000, 1_000_000);

        Assert.Equal(0.8m + 2m, table.Cost("gpt-4o", usage)); // cached tokens are free when the cached price is null
        Assert.Equal(0.4m + 0.5m, table.Cost("my-local-model", usage));
        Assert.Equal(0.08m + 0.005m + 0.4m, table.Cost("gpt-4.1-nano", usage));
    }

    [Fact]
    public void APriceFile_ReplacesTheShippedTable()
    {
        var path = Path.Combine(Path.GetTempPath(), $"afnio-prices-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"openai": {"pricing": {"house": {"input": 3.0, "cached": 1.0, "output": 6.0}}, "models": {"house-2026-01-01": "house"}}}""");
        try
        {
            var table = new ModelOptions { PriceFile = path }.BuildPriceTable();
            Assert.Equal(3m + 6m, table.Cost("house-2026-01-01", new Domain.Pricing.TokenUsage(1_000_000, 0, 1_000_000)));
            Assert.Equal(0m, table.Cost("gpt-4o", new Domain.Pricing.TokenUsage(1_000_000, 0, 1_000_000)));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
