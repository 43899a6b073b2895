using Afnio.Domain.Datasets;

namespace Afnio.Domain.Tests.Datasets;

/// <summary>Every expected value below was printed by CPython 3.11; the snippet is next to it.</summary>
public sealed class PythonRandomTests
{
    // r = random.Random(seed); print([r.random() for _ in range(3)])
    [Theory]
    [InlineData(0L, 0.8444218515250481, 0.7579544029403025, 0.420571580830845)]
    [InlineData(1L, 0.13436424411240122, 0.8474337369372327, 0.763774618976614)]
    [InlineData(42L, 0.6394267984578837, 0.025010755222666936, 0.27502931836911926)]
    [InlineData((1L << 40) + 7, 0.6137037779936511, 0.8149162973309487, 0.9450115087592873)]
    public void Random_MatchesCPython(long seed, double first, double second, double third)
    {
        var r = new PythonRandom(seed);

        Assert.Equal([first, second, third], [r.Random(), r.Random(), r.Random()]);
    }

    // r = random.Random(seed); print([r.getrandbits(32) for _ in range(3)])
    // Negative seeds use their absolute value; 2**32 and beyond need a second key word.
    [Theory]
    [InlineData(-5L, 2675342405u, 1097127993u, 3185950873u)]
    [InlineData(long.MaxValue, 1359979423u, 2819855560u, 2711238091u)]
    [InlineData(long.MinValue, 2377109768u, 1691753470u, 4039908392u)]
    [InlineData(4294967296L, 485306839u, 1508871100u, 1794561286u)]
    [InlineData(4294967295L, 2728839433u, 2661025012u, 872737089u)]
    public void Seeding_MatchesCPython(long seed, uint first, uint second, uint third)
    {
        var r = new PythonRandom(seed);

        Assert.Equal([first, second, third], [r.NextUInt32(), r.NextUInt32(), r.NextUInt32()]);
    }

    [Fact]
    public void Outputs_StayExact_AcrossSeveralTwists()
    {
        // r = random.Random(0); v = [r.getrandbits(32) for _ in range(2000)]; print(v[-3:])
        var r = new PythonRandom(0);
        var outputs = Enumerable.Range(0, 2000).Select(_ => r.NextUInt32()).ToArray();

        Assert.Equal([3099354657u, 2063356109u, 3908016617u], outputs[^3..]);
    }

    [Fact]
    public void GetRandBits_MatchesCPython_UpTo64Bits()
    {
        // r = random.Random(42); print([(k, r.getrandbits(k)) for k in [0, 1, 5, 31, 32, 33, 40, 63, 64]])
        var r = new PythonRandom(42);
        int[] ks = [0, 1, 5, 31, 32, 33, 40, 63, 64];

        var bits = ks.Select(r.GetRandBits).ToArray();

        Assert.Equal(
            [0UL, 1UL, 3UL, 53710184UL, 3184935163UL, 1181241943UL, 151282538206UL, 945351111358374057UL, 13662908291426823533UL],
            bits);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(65)]
    public void GetRandBits_RejectsWidthsOutside0To64(int k) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new PythonRandom(0).GetRandBits(k));

    [Fact]
    public void RandBelow_MatchesCPython()
    {
        // r = random.Random(7); print([r._randbelow(n) for n in [1, 2, 3, 7, 10, 100, 1000, 2**31 - 1]])
        var r = new PythonRandom(7);
        int[] bounds = [1, 2, 3, 7, 10, 100, 1000, int.MaxValue];

        Assert.Equal([0, 0, 1, 5, 0, 9, 840, 1150797845], bounds.Select(r.RandBelow).ToArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void RandBelow_RejectsNonPositiveBounds(int n) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new PythonRandom(0).RandBelow(n));

    // x = list(range(10)); random.Random(seed).shuffle(x); print(x)
    [Theory]
    [InlineData(0L, new[] { 7, 8, 1, 5, 3, 4, 2, 0, 9, 6 })]
    [InlineData(1L, new[] { 6, 8, 9, 7, 5, 3, 0, 4, 1, 2 })]
    [InlineData(42L, new[] { 7, 3, 2, 8, 5, 6, 9, 4, 0, 1 })]
    [InlineData((1L << 40) + 7, new[] { 0, 5, 2, 3, 6, 1, 8, 4, 7, 9 })]
    public void Shuffle10_MatchesCPython(long seed, int[] expected)
    {
        var items = Enumerable.Range(0, 10).ToList();

        new PythonRandom(seed).Shuffle(items);

        Assert.Equal(expected, items);
    }

    public static TheoryData<long, int[]> Shuffles200 => new()
    {
        { 0L, PythonShuffles.Shuffle200Seed0 },
        { 1L, PythonShuffles.Shuffle200Seed1 },
        { 42L, PythonShuffles.Shuffle200Seed42 },
        { (1L << 40) + 7, PythonShuffles.Shuffle200SeedLarge },
    };

    [Theory]
    [MemberData(nameof(Shuffles200))]
    public void Shuffle200_MatchesCPython(long seed, int[] expected)
    {
        var items = Enumerable.Range(0, 200).ToArray();

        new PythonRandom(seed).Shuffle(items);

        Assert.Equal(expected, items);
    }

    [Fact]
    public void Shuffle_OfEmptyAndSingleItemLists_DrawsNothing()
    {
        var r = new PythonRandom(0);
        var empty = new List<int>();
        var single = new List<string> { "only" };

        r.Shuffle(empty);
        r.Shuffle(single);

        Assert.Empty(empty);
        Assert.Equal(["only"], single);
        Assert.Equal(0.8444218515250481, r.Random()); // still the first output of seed 0
    }

    [Fact]
    public void Choices_MatchesCPython()
    {
        // r = random.Random(3); print(r.choices(range(4), weights=[0.1, 0.2, 0.3, 0.4], k=20))
        var picks = new PythonRandom(3).Choices([0.1, 0.2, 0.3, 0.4], 20);

        Assert.Equal([1, 2, 2, 3, 3, 0, 0, 3, 1, 1, 3, 2, 3, 2, 3, 1, 3, 3, 2, 3], picks);
    }

    [Fact]
    public void Choices_WithZeroWeights_MatchesCPython()
    {
        // r = random.Random(11); print(r.choices(range(5), weights=[0.0, 1.5, 0.0, 2.5, 0.0], k=20))
        var picks = new PythonRandom(11).Choices([0.0, 1.5, 0.0, 2.5, 0.0], 20);

        Assert.Equal([3, 3, 3, 3, 3, 3, 1, 3, 3, 3, 1, 1, 1, 3, 3, 1, 3, 3, 3, 3], picks);
    }

    [Fact]
    public void Choices_AccumulatesWeightsAsFloats_LikeCPython()
    {
        // 0.1 + 0.1 + 0.1 is 0.30000000000000004: the boundaries are the float sums, not exact tenths.
        // r = random.Random(5); print(r.choices(range(10), weights=[0.1] * 10, k=50))
        var picks = new PythonRandom(5).Choices(Enumerable.Repeat(0.1, 10).ToArray(), 50);

        Assert.Equal(
            [
                6, 7, 7, 9, 7, 9, 0, 4, 9, 6, 9, 1, 4, 2, 5, 5, 0, 2, 2, 9, 7, 1, 7, 1, 6,
                1, 0, 8, 2, 2, 9, 8, 2, 9, 5, 6, 2, 9, 6, 9, 8, 2, 3, 1, 1, 0, 3, 6, 0, 6,
            ],
            picks);
    }

    [Theory]
    [InlineData(new double[0])]
    [InlineData(new[] { 0.0, 0.0 })]
    [InlineData(new[] { 1.0, -1.0 })]
    [InlineData(new[] { 1.0, double.PositiveInfinity })]
    [InlineData(new[] { 1.0, double.NaN })]
    public void Choices_RejectsWeightsPythonRejects(double[] weights) =>
        Assert.Throws<ArgumentException>(() => new PythonRandom(0).Choices(weights, 1));
}
