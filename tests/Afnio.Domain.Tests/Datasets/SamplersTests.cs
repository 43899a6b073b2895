using Afnio.Domain.Common;
using Afnio.Domain.Datasets;

namespace Afnio.Domain.Tests.Datasets;

public sealed class SamplersTests
{
    private static readonly double[] SomeWeights = [0.5, 2.0, 0.0, 1.0, 3.0, 0.25];

    [Fact]
    public void SequentialSampler_VisitsItemsInOrder_EveryEpoch()
    {
        var sampler = new SequentialSampler(5);

        Assert.Equal(5, sampler.Count);
        Assert.Equal([0, 1, 2, 3, 4], sampler.Order(0));
        Assert.Equal([0, 1, 2, 3, 4], sampler.Order(7));
        Assert.Empty(new SequentialSampler(0).Order(0));
    }

    [Fact]
    public void RandomSampler_EpochIsPythonsShuffleSeededSeedPlusEpoch()
    {
        var sampler = new RandomSampler(12, 10);

        // x = list(range(12)); random.Random(10 + 0).shuffle(x); print(x)
        Assert.Equal([11, 8, 4, 2, 5, 3, 1, 10, 7, 6, 0, 9], sampler.Order(0));

        // x = list(range(12)); random.Random(10 + 3).shuffle(x); print(x)
        Assert.Equal([8, 7, 0, 10, 5, 1, 6, 9, 3, 2, 11, 4], sampler.Order(3));
    }

    [Fact]
    public void RandomSampler_IsDeterministicAndResumable_AndEpochsDiffer()
    {
        var running = new RandomSampler(200, 0);
        var epochs = Enumerable.Range(0, 5).Select(running.Order).ToList();

        // A sampler rebuilt after a restart gives the same order for any epoch, without replaying the earlier ones.
        Assert.Equal(epochs[4], new RandomSampler(200, 0).Order(4));
        Assert.Equal(epochs[2], running.Order(2));
        Assert.Equal(PythonShuffles.Shuffle200Seed42, new RandomSampler(200, 40).Order(2));
        Assert.Equal(5, epochs.Select(e => string.Join(',', e)).Distinct().Count());
        Assert.All(epochs, e => Assert.Equal(Enumerable.Range(0, 200), e.Order()));
    }

    [Fact]
    public void RandomSampler_SeedPlusEpoch_DoesNotOverflow()
    {
        // int.MaxValue + 2 is the Python integer 2**31 + 1, not the wrapped -2**31 + 1 (which seeds like 2**31 - 1).
        var order = new RandomSampler(200, int.MaxValue).Order(2);

        Assert.Equal(ShuffledRange(200, (1L << 31) + 1), order);
        Assert.NotEqual(ShuffledRange(200, unchecked(int.MaxValue + 2)), order);
    }

    [Fact]
    public void WeightedRandomSampler_WithReplacement_IsPythonsChoices()
    {
        var sampler = new WeightedRandomSampler(SomeWeights, 15, 7);

        Assert.Equal(15, sampler.Count);

        // w = [0.5, 2.0, 0.0, 1.0, 3.0, 0.25]; random.Random(7 + 0).choices(range(6), weights=w, k=15)
        Assert.Equal([1, 1, 4, 0, 4, 1, 0, 3, 0, 3, 0, 1, 3, 4, 1], sampler.Order(0));

        // random.Random(7 + 2).choices(range(6), weights=w, k=15)
        Assert.Equal([3, 3, 1, 4, 0, 3, 4, 1, 4, 4, 0, 3, 4, 3, 4], sampler.Order(2));
    }

    [Fact]
    public void WeightedRandomSampler_WithoutReplacement_DrawsAndRemoves_LikeThePythonRecipe()
    {
        // rng = random.Random(seed + epoch); pool = [i for i, w in enumerate(w) if w > 0]
        // [pool.pop(rng.choices(range(len(pool)), weights=[w[i] for i in pool])[0]) for _ in range(n)]
        Assert.Equal([1, 3, 4, 0, 5], new WeightedRandomSampler(SomeWeights, 5, 7, replacement: false).Order(0));
        Assert.Equal([1, 5, 3, 4], new WeightedRandomSampler(SomeWeights, 4, 7, replacement: false).Order(1));
    }

    [Fact]
    public void WeightedRandomSampler_WithoutReplacement_NeverRepeats_AndSkipsZeroWeights()
    {
        var weights = Enumerable.Range(0, 50).Select(i => i % 5 == 0 ? 0.0 : i).ToArray();
        var sampler = new WeightedRandomSampler(weights, 40, 3, replacement: false);

        for (var epoch = 0; epoch < 10; epoch++)
        {
            var order = sampler.Order(epoch);
            Assert.Equal(Enumerable.Range(0, 50).Where(i => i % 5 != 0), order.Order());
        }
    }

    [Fact]
    public void WeightedRandomSampler_IsDeterministic_AndEpochsDiffer()
    {
        var weights = Enumerable.Range(1, 30).Select(i => (double)i).ToArray();
        var a = new WeightedRandomSampler(weights, 30, 99);
        var b = new WeightedRandomSampler(weights, 30, 99);

        Assert.Equal(a.Order(3), b.Order(3));
        Assert.NotEqual(a.Order(3), a.Order(4));
        Assert.NotEqual(a.Order(3), new WeightedRandomSampler(weights, 30, 100).Order(3));
    }

    [Fact]
    public void WeightedRandomSampler_FollowsTheWeights()
    {
        var sampler = new WeightedRandomSampler([1.0, 3.0, 0.0], 40_000, 0);

        var order = sampler.Order(0);

        Assert.DoesNotContain(2, order);
        Assert.InRange(order.Count(i => i == 1) / 40_000.0, 0.74, 0.76);
    }

    [Fact]
    public void ClassBalancingWeights_AreOneOverClassSize_WithNullAsItsOwnClass()
    {
        string?[] labels = ["a", "b", "a", null, "a", "A", null, "b"];

        var weights = Sampler.ClassBalancingWeights(labels);

        Assert.Equal([1.0 / 3, 0.5, 1.0 / 3, 0.5, 1.0 / 3, 1.0, 0.5, 0.5], weights);
        Assert.Empty(Sampler.ClassBalancingWeights([]));
    }

    [Fact]
    public void ClassBalancing_OnSkewedLabels_DrawsClassesRoughlyEqually()
    {
        // 90 neutral, 9 negative, 1 unlabelled: uniform sampling would almost never show the last two.
        var labels = Enumerable.Repeat<string?>("neutral", 90).Concat(Enumerable.Repeat<string?>("negative", 9)).Append(null).ToList();
        const int draws = 30_000;

        var balanced = new WeightedRandomSampler(Sampler.ClassBalancingWeights(labels), draws, 1).Order(0);
        var uniform = new WeightedRandomSampler(Enumerable.Repeat(1.0, 100).ToArray(), draws, 1).Order(0);

        foreach (var label in new[] { "neutral", "negative", null })
        {
            Assert.InRange(Share(balanced, labels, label), 0.31, 0.36);
        }

        Assert.InRange(Share(uniform, labels, "neutral"), 0.88, 0.92);
    }

    [Fact]
    public void Order_RejectsNegativeEpochs()
    {
        var error = Assert.Throws<AfnioException>(() => new RandomSampler(3, 0).Order(-1));

        Assert.Equal("invalid_sampler", error.Code);
        Assert.Equal("epoch", error.Param);
    }

    public static TheoryData<double[], int, bool, string, string> BadWeightedArguments => new()
    {
        { [], 1, true, "weights", "got none" },
        { [1.0, -0.5], 1, true, "weights", "weight 1 is -0.5" },
        { [double.NaN, 1.0], 1, true, "weights", "weight 0 is nan" },
        { [1.0, double.PositiveInfinity], 1, true, "weights", "weight 1 is inf" },
        { [0.0, 0.0], 1, true, "weights", "all are 0" },
        { [double.MaxValue, double.MaxValue], 1, true, "weights", "finite sum" },
        { [1.0], 0, true, "num_samples", "at least 1; got 0" },
        { [1.0], -4, false, "num_samples", "at least 1; got -4" },
        { [1.0, 0.0, 2.0], 3, false, "num_samples", "(3) cannot exceed the number of items with a weight above 0 (2)" },
    };

    [Theory]
    [MemberData(nameof(BadWeightedArguments))]
    public void WeightedRandomSampler_RejectsInvalidArguments(double[] weights, int numSamples, bool replacement, string param, string message)
    {
        var error = Assert.Throws<AfnioException>(() => new WeightedRandomSampler(weights, numSamples, 0, replacement));

        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.Equal("invalid_sampler", error.Code);
        Assert.Equal(param, error.Param);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WeightedRandomSampler_WithReplacement_MayAskForMoreSamplesThanItems()
    {
        Assert.Equal(10, new WeightedRandomSampler([1.0, 0.0, 2.0], 10, 0).Order(0).Count);
        Assert.Equal(2, new WeightedRandomSampler([1.0, 0.0, 2.0], 2, 0, replacement: false).Order(0).Count);
    }

    [Fact]
    public void WeightedRandomSampler_CopiesItsWeights()
    {
        double[] weights = [1.0, 1.0];
        var sampler = new WeightedRandomSampler(weights, 50, 0);
        var before = sampler.Order(0);

        weights[0] = 0.0;

        Assert.Equal(before, sampler.Order(0));
        Assert.Contains(0, before);
    }

    [Fact]
    public void Batches_CutInOrder_WithAShortLastBatch()
    {
        int[] order = [9, 4, 7, 1, 0, 3, 8];

        var batches = Sampler.Batches(order, 3, dropLast: false);

        Assert.Equal<IReadOnlyList<int>>([[9, 4, 7], [1, 0, 3], [8]], batches);
    }

    [Fact]
    public void Batches_DropLast_DropsOnlyAShortFinalBatch()
    {
        int[] seven = [9, 4, 7, 1, 0, 3, 8];
        int[] six = [9, 4, 7, 1, 0, 3];

        Assert.Equal<IReadOnlyList<int>>([[9, 4, 7], [1, 0, 3]], Sampler.Batches(seven, 3, dropLast: true));
        Assert.Equal<IReadOnlyList<int>>([[9, 4, 7], [1, 0, 3]], Sampler.Batches(six, 3, dropLast: true));
        Assert.Equal<IReadOnlyList<int>>([[9, 4, 7], [1, 0, 3]], Sampler.Batches(six, 3, dropLast: false));
    }

    [Fact]
    public void Batches_EdgeCases()
    {
        int[] three = [2, 0, 1];

        Assert.Empty(Sampler.Batches([], 4, dropLast: false));
        Assert.Empty(Sampler.Batches([], 4, dropLast: true));
        Assert.Empty(Sampler.Batches(three, 4, dropLast: true));
        Assert.Equal<IReadOnlyList<int>>([[2, 0, 1]], Sampler.Batches(three, 4, dropLast: false));
        Assert.Equal<IReadOnlyList<int>>([[2], [0], [1]], Sampler.Batches(three, 1, dropLast: true));
        Assert.Equal<IReadOnlyList<int>>([[2, 0, 1]], Sampler.Batches(three, 3, dropLast: true));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    public void Batches_RejectBatchSizesBelowOne(int batchSize)
    {
        var error = Assert.Throws<AfnioException>(() => Sampler.Batches([1, 2], batchSize, dropLast: false));

        Assert.Equal("invalid_batch_size", error.Code);
        Assert.Equal("batch_size", error.Param);
    }

    private static int[] ShuffledRange(int count, long seed)
    {
        var items = Enumerable.Range(0, count).ToArray();
        new PythonRandom(seed).Shuffle(items);
        return items;
    }

    private static double Share(IReadOnlyList<int> order, List<string?> labels, string? label) =>
        order.Count(i => labels[i] == label) / (double)order.Count;
}
