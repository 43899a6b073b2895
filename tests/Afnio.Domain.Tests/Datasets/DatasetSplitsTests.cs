using Afnio.Domain.Common;
using Afnio.Domain.Datasets;

namespace Afnio.Domain.Tests.Datasets;

public sealed class DatasetSplitsTests
{
    [Fact]
    public void ByRatios_CutsPythonsShuffleInOrder()
    {
        // x = list(range(10)); random.Random(42).shuffle(x) -> [7, 3, 2, 8, 5, 6, 9, 4, 0, 1]
        var parts = DatasetSplits.ByRatios(10, [0.6, 0.2, 0.2], 42);

        Assert.Equal([7, 3, 2, 8, 5, 6], parts[0]);
        Assert.Equal([9, 4], parts[1]);
        Assert.Equal([0, 1], parts[2]);
    }

    [Fact]
    public void ByRatios_RoundsHalvesAwayFromZero_AndGivesTheLastPartTheRest()
    {
        // 0.25 × 10 = 2.5 rounds to 3 (not to Python's banker's 2); the last part takes 10 − 6.
        var parts = DatasetSplits.ByRatios(10, [0.25, 0.25, 0.5], 0);

        Assert.Equal([3, 3, 4], parts.Select(p => p.Count));
        Assert.Equal(Enumerable.Range(0, 10), parts.SelectMany(p => p).Order());
    }

    [Fact]
    public void ByRatios_SingleRatio_IsTheWholeShuffle()
    {
        var parts = DatasetSplits.ByRatios(200, [1.0], 1);

        Assert.Equal(PythonShuffles.Shuffle200Seed1, Assert.Single(parts));
    }

    [Fact]
    public void ByRatios_AcceptsSumsWithinTolerance()
    {
        var parts = DatasetSplits.ByRatios(9, [1.0 / 3, 1.0 / 3, 1.0 / 3], 5);

        Assert.Equal([3, 3, 3], parts.Select(p => p.Count));
    }

    [Fact]
    public void Splits_AreDeterministicPerSeed_AndDifferAcrossSeeds()
    {
        Assert.Equal(DatasetSplits.BySizes(50, [25, 25], 3), DatasetSplits.BySizes(50, [25, 25], 3));
        Assert.NotEqual(DatasetSplits.BySizes(50, [25, 25], 3), DatasetSplits.BySizes(50, [25, 25], 4));
    }

    public static TheoryData<int, double[], string> BadRatios => new()
    {
        { 10, [], "1 to 10 parts" },
        { 100, Enumerable.Repeat(1.0 / 11, 11).ToArray(), "1 to 10 parts" },
        { 10, [0.5, 0.0, 0.5], "ratio 1 is 0.0" },
        { 10, [1.5, -0.5], "ratio 1 is -0.5" },
        { 10, [0.5, double.NaN], "ratio 1 is nan" },
        { 10, [0.5, 0.4], "sum to 0.9" },
        { 10, [0.5, 0.5, 0.1], "sum to 1.1" },
        { 10, [0.95, 0.05], "Split 1 would be empty" },
        { 1, [0.5, 0.5], "Split 1 would be empty" },
        { 0, [1.0], "Split 0 would be empty" },
        { 10, [0.04, 0.96], "Split 0 would be empty" },
    };

    [Theory]
    [MemberData(nameof(BadRatios))]
    public void ByRatios_RejectsInvalidRatios(int count, double[] ratios, string message)
    {
        var error = Assert.Throws<AfnioException>(() => DatasetSplits.ByRatios(count, ratios, 0));

        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.Equal("invalid_split", error.Code);
        Assert.Equal("ratios", error.Param);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BySizes_CutsExactSizes()
    {
        var parts = DatasetSplits.BySizes(10, [1, 2, 7], 1);

        // x = list(range(10)); random.Random(1).shuffle(x) -> [6, 8, 9, 7, 5, 3, 0, 4, 1, 2]
        Assert.Equal([6], parts[0]);
        Assert.Equal([8, 9], parts[1]);
        Assert.Equal([7, 5, 3, 0, 4, 1, 2], parts[2]);
    }

    public static TheoryData<int, int[], string> BadSizes => new()
    {
        { 10, [], "1 to 10 parts" },
        { 11, Enumerable.Repeat(1, 11).ToArray(), "1 to 10 parts" },
        { 10, [5, 0, 5], "size 1 is 0" },
        { 10, [11, -1], "size 1 is -1" },
        { 10, [5, 4], "sum to the 10 items of the dataset; they sum to 9" },
        { 10, [5, 6], "they sum to 11" },
        { 10, [int.MaxValue, int.MaxValue], $"they sum to {2L * int.MaxValue}" },
    };

    [Theory]
    [MemberData(nameof(BadSizes))]
    public void BySizes_RejectsInvalidSizes(int count, int[] sizes, string message)
    {
        var error = Assert.Throws<AfnioException>(() => DatasetSplits.BySizes(count, sizes, 0));

        Assert.Equal("invalid_split", error.Code);
        Assert.Equal("sizes", error.Param);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ByField_GroupsIndicesInItemOrder_AndLeavesOthersOut()
    {
        string?[] values = ["test", "train", null, "train", "other", "val", "test", "Train", "train"];

        var parts = DatasetSplits.ByField(values, ["train", "val", "test"]);

        Assert.Equal([1, 3, 8], parts[0]);
        Assert.Equal([5], parts[1]);
        Assert.Equal([0, 6], parts[2]);
    }

    [Theory]
    [InlineData(new string[0], "1 to 10 parts")]
    [InlineData(new[] { "train", "test", "train" }, "'train' appears more than once")]
    [InlineData(new[] { "train", "missing" }, "Split 'missing' would be empty")]
    public void ByField_RejectsInvalidNames(string[] names, string message)
    {
        string?[] values = ["train", "test", "train"];

        var error = Assert.Throws<AfnioException>(() => DatasetSplits.ByField(values, names));

        Assert.Equal("invalid_split", error.Code);
        Assert.Equal("names", error.Param);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NegativeCount_IsAProgrammingError()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetSplits.ByRatios(-1, [1.0], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetSplits.BySizes(-1, [1], 0));
    }
}
