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
