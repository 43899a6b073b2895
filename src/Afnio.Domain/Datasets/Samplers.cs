using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Datasets;

/// <summary>
/// Decides the order in which a data loader visits a dataset's items, with PyTorch's sampler
/// semantics. Unlike PyTorch, a sampler holds no hidden random state: <see cref="Order"/> is a pure
/// function of the constructor arguments and the epoch, so an interrupted training run resumes
/// with exactly the order it would have had.
/// </summary>
public abstract class Sampler
{
    /// <summary>The error code of an invalid sampler argument.</summary>
    protected const string InvalidSampler = "invalid_sampler";

    /// <summary>How many item indices every epoch yields.</summary>
    public abstract int Count { get; }

    /// <summary>The item indices of one epoch, in visiting order.</summary>
    /// <param name="epoch">The epoch, from 0.</param>
    /// <exception cref="AfnioException">The epoch is negative.</exception>
    public IReadOnlyList<int> Order(int epoch)
    {
        if (epoch < 0)
        {
            throw AfnioException.Invalid(InvalidSampler, $"The epoch must be 0 or more; got {epoch}.", "epoch");
        }

        return OrderOf(epoch);
    }

    /// <summary>
    /// Weights that make <see cref="WeightedRandomSampler"/> draw every class equally often:
    /// each item weighs <c>1 / (number of items with its label)</c>. Items without a label
    /// (<see langword="null"/>) form a class of their own. Labels compare ordinally.
    /// </summary>
    /// <param name="labels">Each item's label.</param>
    /// <returns>One weight per item, in item order.</returns>
    public static IReadOnlyList<double> ClassBalancingWeights(IReadOnlyList<string?> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var unlabelled = 0;
        foreach (var label in labels)
        {
            if (label is null)
            {
                unlabelled++;
            }
            else
            {
                counts[label] = counts.GetValueOrDefault(label) + 1;
            }
        }

        return labels.Select(label => 1.0 / (label is null ? unlabelled : counts[label])).ToArray();
    }

    /// <summary>
    /// Cuts an epoch's order into consecutive batches of <paramref name="batchSize"/> indices, like
    /// PyTorch's <c>BatchSampler</c>: the final batch may be shorter, and is dropped when
    /// <paramref name="dropLast"/> is set.
    /// </summary>
    /// <param name="order">The epoch's item indices, in visiting order.</param>
    /// <param name="batchSize">Indices per batch, at least 1.</param>
    /// <param name="dropLast">Whether to drop a final batch shorter than <paramref name="batchSize"/>.</param>
    /// <exception cref="AfnioException">The batch size is below 1.</exception>
    public static IReadOnlyList<IReadOnlyList<int>> Batches(IReadOnlyList<int> order, int batchSize, bool dropLast)
    {
        ArgumentNullException.ThrowIfNull(order);
        if (batchSize < 1)
        {
            throw AfnioException.Invalid("invalid_batch_size", $"The batch size must be at least 1; got {batchSize}.", "batch_size");
        }

        var batches = new List<IReadOnlyList<int>>();
        for (var start = 0; start < order.Count; start += batchSize)
        {
            var size = Math.Min(batchSize, order.Count - start);
            if (size < batchSize && dropLast)
            {
                break;
            }

            var batch = new int[size];
            for (var i = 0; i < size; i++)
            {
                batch[i] = order[start + i];
            }

            batches.Add(batch);
        }

        return batches;
    }

    /// <summary>The order of a valid epoch.</summary>
    /// <param name="epoch">The epoch, 0 or more.</param>
    protected abstract IReadOnlyList<int> OrderOf(int epoch);

    /// <summary>The per-epoch generator of the random samplers: <c>random.Random(seed + epoch)</c>.</summary>
    protected static PythonRandom RandomFor(int seed, int epoch) => new((long)seed + epoch);
}

/// <summary>Visits the items in dataset order, every epoch: <c>0, 1, …, count - 1</c>.</summary>
public sealed class SequentialSampler : Sampler
{
    private readonly int _count;

    /// <summary>Creates a sampler over <paramref name="count"/> items.</summary>
    /// <param name="count">How many items the dataset has.</param>
    public SequentialSampler(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        _count = count;
    }

    /// <inheritdoc/>
    public override int Count => _count;

    /// <inheritdoc/>
    protected override IReadOnlyList<int> OrderOf(int epoch) => Enumerable.Range(0, _count).ToArray();
}

/// <summary>
/// Visits every item once per epoch in a fresh random order. Epoch <c>e</c> is a permutation drawn
/// with a generator seeded <c>seed + e</c>; in Python:
/// <c>order = list(range(count)); random.Random(seed + e).shuffle(order)</c>.
/// </summary>
public sealed class RandomSampler : Sampler
{
    private readonly int _count;
    private readonly int _seed;

    /// <summary>Creates a sampler over <paramref name="count"/> items.</summary>
    /// <param name="count">How many items the dataset has.</param>
    /// <param name="seed">The base seed; epoch <c>e</c> shuffles with <c>seed + e</c>.</param>
    public RandomSampler(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        _count = count;
        _seed = seed;
    }

    /// <inheritdoc/>
    public override int Count => _count;

    /// <inheritdoc/>
    protected override IReadOnlyList<int> OrderOf(int epoch)
    {
        var order = Enumerable.Range(0, _count).ToArray();
        RandomFor(_seed, epoch).Shuffle(order);
        return order;
    }
}

/// <summary>
/// Draws <c>numSamples</c> item indices per epoch, each with probability proportional to its
/// weight, like PyTorch's <c>WeightedRandomSampler</c>. Epoch <c>e</c> uses a generator seeded
/// <c>seed + e</c>. With replacement, the order is Python's
/// <c>random.Random(seed + e).choices(range(n), weights=weights, k=num_samples)</c>. Without
/// replacement, items are drawn one at a time and not put back; in Python:
/// <code>
/// rng = random.Random(seed + e)
/// pool = [i for i, w in enumerate(weights) if w > 0]
/// order = [pool.pop(rng.choices(range(len(pool)), weights=[weights[i] for i in pool])[0])
///          for _ in range(num_samples)]
/// </code>
/// (each draw without replacement costs time proportional to the number of items).
/// </summary>
public sealed class WeightedRandomSampler : Sampler
{
    private readonly double[] _weights;
    private readonly int _numSamples;
    private readonly int _seed;
    private readonly bool _replacement;

    /// <summary>Creates a weighted sampler.</summary>
    /// <param name="weights">One weight per item: finite, 0 or more, at least one above 0. They need not sum to 1.</param>
    /// <param name="numSamples">Indices per epoch, at least 1; without replacement, at most the number of positive weights.</param>
    /// <param name="seed">The base seed; epoch <c>e</c> draws with <c>seed + e</c>.</param>
    /// <param name="replacement">Whether an item may be drawn more than once per epoch.</param>
    /// <exception cref="AfnioException">The weights or the sample count are invalid.</exception>
    public WeightedRandomSampler(IReadOnlyList<double> weights, int numSamples, int seed, bool replacement = true)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.Count == 0)
        {
            throw AfnioException.Invalid(InvalidSampler, "The weights must have one entry per item; got none.", "weights");
        }

        var positive = 0;
        var total = 0.0;
        for (var i = 0; i < weights.Count; i++)
        {
            var w = weights[i];
            if (!double.IsFinite(w) || w < 0)
            {
                throw AfnioException.Invalid(InvalidSampler,
                    $"Every weight must be a finite number of 0 or more; weight {i} is {PythonFloat.Repr(w)}.",
                    "weights");
            }

            positive += w > 0 ? 1 : 0;
            total += w;
        }

        if (positive == 0)
        {
            throw AfnioException.Invalid(InvalidSampler, "At least one weight must be above 0; all are 0.", "weights");
        }

        if (!double.IsFinite(total))
        {
            throw AfnioException.Invalid(InvalidSampler, "The weights must have a finite sum; they overflow.", "weights");
        }

        if (numSamples < 1)
        {
            throw AfnioException.Invalid(InvalidSampler, $"The number of samples must be at least 1; got {numSamples}.", "num_samples");
        }

        if (!replacement && numSamples > positive)
        {
            throw AfnioException.Invalid(InvalidSampler,
                $"Without replacement, the number of samples ({numSamples}) cannot exceed the number of items with a weight above 0 ({positive}).",
                "num_samples");
        }

        _weights = [.. weights];
        _numSamples = numSamples;
        _seed = seed;
        _replacement = replacement;
    }

    /// <inheritdoc/>
    public override int Count => _numSamples;

    /// <inheritdoc/>
    protected override IReadOnlyList<int> OrderOf(int epoch)
    {
        var rng = RandomFor(_seed, epoch);
        if (_replacement)
        {
            return rng.Choices(_weights, _numSamples);
        }

        var pool = new List<int>();
        for (var i = 0; i < _weights.Length; i++)
        {
            if (_weights[i] > 0)
            {
                pool.Add(i);
            }
        }

        var poolWeights = new List<double>(pool.Count);
        var order = new int[_numSamples];
        for (var draw = 0; draw < _numSamples; draw++)
        {
            poolWeights.Clear();
            foreach (var item in pool)
            {
                poolWeights.Add(_weights[item]);
            }

            var j = rng.Choices(poolWeights, 1)[0];
            order[draw] = pool[j];
            pool.RemoveAt(j);
        }

        return order;
    }
}
