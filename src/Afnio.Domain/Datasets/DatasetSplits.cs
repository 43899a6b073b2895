using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Datasets;

/// <summary>
/// Splits a dataset into named parts (train, validation, test, …) as lists of item indices. Pure
/// functions of their arguments: the random splits shuffle <c>range(count)</c> with
/// <see cref="PythonRandom"/>, so a split made here equals Python's
/// <c>random.Random(seed).shuffle(items)</c> followed by consecutive slices.
/// </summary>
public static class DatasetSplits
{
    /// <summary>The most parts one split may have.</summary>
    public const int MaxSplits = 10;

    /// <summary>How far the ratios may sum from 1.</summary>
    public const double RatioTolerance = 1e-6;

    private const string Code = "invalid_split";

    /// <summary>
    /// Shuffles the indices <c>0 … count - 1</c> with <c>PythonRandom(seed)</c> and cuts them in
    /// order: every part but the last gets <c>round(ratio × count)</c> items (halves away from
    /// zero), the last gets the rest.
    /// </summary>
    /// <param name="count">How many items the dataset has.</param>
    /// <param name="ratios">1 to <see cref="MaxSplits"/> positive fractions summing to 1.</param>
    /// <param name="seed">The shuffle seed.</param>
    /// <returns>One list of item indices per ratio, in shuffled order.</returns>
    /// <exception cref="AfnioException">A ratio is invalid, or a part would be empty.</exception>
    public static IReadOnlyList<IReadOnlyList<int>> ByRatios(int count, IReadOnlyList<double> ratios, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentNullException.ThrowIfNull(ratios);
        CheckPartCount(ratios.Count, "ratios");
        for (var i = 0; i < ratios.Count; i++)
        {
            if (!double.IsFinite(ratios[i]) || ratios[i] <= 0)
            {
                throw AfnioException.Invalid(Code,
                    $"Every split ratio must be a finite number above 0; ratio {i} is {Format(ratios[i])}.", "ratios");
            }
        }

        var sum = ratios.Sum();
        if (Math.Abs(sum - 1.0) > RatioTolerance)
        {
            throw AfnioException.Invalid(Code, $"The split ratios must sum to 1; they sum to {Format(sum)}.", "ratios");
        }

        var sizes = new int[ratios.Count];
        var taken = 0;
        for (var i = 0; i < ratios.Count - 1; i++)
        {
            sizes[i] = (int)Math.Round(ratios[i] * count, MidpointRounding.AwayFromZero);
            taken += sizes[i];
        }

        sizes[^1] = count - taken;
        for (var i = 0; i < sizes.Length; i++)
        {
            if (sizes[i] <= 0)
            {
                throw AfnioException.Invalid(Code,
                    $"Split {i} would be empty: ratio {Format(ratios[i])} of {count} items leaves it no item.", "ratios");
            }
        }

        return Cut(Shuffled(count, seed), sizes);
    }

    /// <summary>
    /// Shuffles the indices <c>0 … count - 1</c> with <c>PythonRandom(seed)</c> and cuts them in
    /// order into parts of exactly the given sizes.
    /// </summary>
    /// <param name="count">How many items the dataset has.</param>
    /// <param name="sizes">1 to <see cref="MaxSplits"/> sizes, each at least 1, summing to <paramref name="count"/>.</param>
    /// <param name="seed">The shuffle seed.</param>
    /// <returns>One list of item indices per size, in shuffled order.</returns>
    /// <exception cref="AfnioException">A size is invalid or the sizes do not add up to the item count.</exception>
    public static IReadOnlyList<IReadOnlyList<int>> BySizes(int count, IReadOnlyList<int> sizes, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentNullException.ThrowIfNull(sizes);
        CheckPartCount(sizes.Count, "sizes");
        long sum = 0;
        for (var i = 0; i < sizes.Count; i++)
        {
            if (sizes[i] <= 0)
            {
                throw AfnioException.Invalid(Code, $"Every split size must be at least 1; size {i} is {sizes[i]}.", "sizes");
            }

            sum += sizes[i];
        }

        if (sum != count)
        {
            throw AfnioException.Invalid(Code, $"The split sizes must sum to the {count} items of the dataset; they sum to {sum}.", "sizes");
        }

        return Cut(Shuffled(count, seed), sizes);
    }

    /// <summary>
    /// Splits by the value of one field: part <c>i</c> holds, in item order, the indices of the
    /// items whose value equals <c>names[i]</c> (ordinal comparison). Items with any other value,
    /// or none, belong to no part.
    /// </summary>
    /// <param name="values">Each item's value of the field, <see langword="null"/> when it has none.</param>
    /// <param name="names">1 to <see cref="MaxSplits"/> distinct values, one per part.</param>
    /// <returns>One list of item indices per name.</returns>
    /// <exception cref="AfnioException">The names are invalid, or no item has one of them.</exception>
    public static IReadOnlyList<IReadOnlyList<int>> ByField(IReadOnlyList<string?> values, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(names);
        CheckPartCount(names.Count, "names");
        var partOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < names.Count; i++)
        {
            if (names[i] is null)
            {
                throw AfnioException.Invalid(Code, $"Split name {i} is missing.", "names");
            }

            if (!partOf.TryAdd(names[i], i))
            {
                throw AfnioException.Invalid(Code, $"The split name '{names[i]}' appears more than once.", "names");
            }
        }

        var parts = names.Select(_ => new List<int>()).ToArray();
        for (var item = 0; item < values.Count; item++)
        {
            if (values[item] is { } value && partOf.TryGetValue(value, out var part))
            {
                parts[part].Add(item);
            }
        }

        for (var i = 0; i < parts.Length; i++)
        {
            if (parts[i].Count == 0)
            {
                throw AfnioException.Invalid(Code, $"Split '{names[i]}' would be empty: no item has that value.", "names");
            }
        }

        return parts;
    }

    private static void CheckPartCount(int parts, string param)
    {
        if (parts is < 1 or > MaxSplits)
        {
            throw AfnioException.Invalid(Code, $"A split has 1 to {MaxSplits} parts; got {parts}.", param);
        }
    }

    private static List<int> Shuffled(int count, int seed)
    {
        var order = Enumerable.Range(0, count).ToList();
        new PythonRandom(seed).Shuffle(order);
        return order;
    }

    private static List<int>[] Cut(List<int> order, IReadOnlyList<int> sizes)
    {
        var parts = new List<int>[sizes.Count];
        var start = 0;
        for (var i = 0; i < sizes.Count; i++)
        {
            parts[i] = order.GetRange(start, sizes[i]);
            start += sizes[i];
        }

        return parts;
    }

    private static string Format(double value) => PythonFloat.Repr(value);
}
