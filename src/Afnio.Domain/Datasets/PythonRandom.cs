namespace Afnio.Domain.Datasets;

/// <summary>
/// A bit-exact port of CPython's <c>random.Random</c> (the Mersenne Twister MT19937) for integer
/// seeds, so that a split or a sampling order made here is the one Python gives for the same seed.
/// Only the methods the datasets need are ported; each documents the Python call it reproduces.
/// Not thread-safe, like its Python original.
/// </summary>
public sealed class PythonRandom
{
    private const int N = 624;
    private const int M = 397;
    private const uint MatrixA = 0x9908b0dfU;
    private const uint UpperMask = 0x80000000U;
    private const uint LowerMask = 0x7fffffffU;

    private readonly uint[] _mt = new uint[N];
    private int _mti;

    /// <summary>
    /// Seeds the generator as <c>random.Random(seed)</c> does for an <c>int</c>: the absolute value,
    /// split into 32-bit words from the least significant, is the key of MT19937's
    /// <c>init_by_array</c> (seed 0 gives the key <c>[0]</c>).
    /// </summary>
    /// <param name="seed">Any integer; its sign is ignored, as in CPython.</param>
    public PythonRandom(long seed)
    {
        // |long.MinValue| does not fit a long, so take the magnitude as unsigned.
        var magnitude = seed < 0 ? (ulong)(-(seed + 1)) + 1 : (ulong)seed;
        var high = (uint)(magnitude >> 32);
        uint[] key = high == 0 ? [(uint)magnitude] : [(uint)magnitude, high];
        InitByArray(key);
    }

    /// <summary>The next 32 random bits: MT19937's <c>genrand_uint32</c>.</summary>
    public uint NextUInt32()
    {
        if (_mti >= N)
        {
            Twist();
        }

        var y = _mt[_mti++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680U;
        y ^= (y << 15) & 0xefc60000U;
        y ^= y >> 18;
        return y;
    }

    /// <summary>Python's <c>random()</c>: a double in [0, 1) with 53 random bits (<c>genrand_res53</c>).</summary>
    public double Random()
    {
        var a = NextUInt32() >> 5;
        var b = NextUInt32() >> 6;
        return ((a * 67108864.0) + b) * (1.0 / 9007199254740992.0);
    }

    /// <summary>
    /// Python's <c>getrandbits(k)</c> for <paramref name="k"/> up to 64: 32-bit words from
    /// successive outputs, least significant word first, the last word keeping only its top bits.
    /// </summary>
    /// <param name="k">The number of bits, 0 to 64.</param>
    public ulong GetRandBits(int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, 64);
        if (k == 0)
        {
            return 0;
        }

        if (k <= 32)
        {
            return NextUInt32() >> (32 - k);
        }

        ulong low = NextUInt32();
        ulong high = NextUInt32() >> (64 - k);
        return (high << 32) | low;
    }

    /// <summary>
    /// Python's <c>_randbelow(n)</c> (<c>_randbelow_with_getrandbits</c>): draws
    /// <c>n.bit_length()</c> bits until the value is below <paramref name="n"/>.
    /// </summary>
    /// <param name="n">The exclusive upper bound; must be positive.</param>
    public int RandBelow(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        var k = 32 - int.LeadingZeroCount(n);
        var r = GetRandBits(k);
        while (r >= (ulong)n)
        {
            r = GetRandBits(k);
        }

        return (int)r;
    }

    /// <summary>
    /// Python's <c>shuffle(x)</c> (3.11 and later), in place: for <c>i</c> from the last index down
    /// to 1, swaps item <c>i</c> with item <c>_randbelow(i + 1)</c>.
    /// </summary>
    /// <param name="list">The list to shuffle.</param>
    public void Shuffle<T>(IList<T> list)
    {
        ArgumentNullException.ThrowIfNull(list);
        for (var i = list.Count - 1; i >= 1; i--)
        {
            var j = RandBelow(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }

    /// <summary>
    /// Python's <c>choices(range(n), weights=weights, k=k)</c>: <paramref name="k"/> indices drawn
    /// with replacement. The cumulative weights are summed left to right in doubles, and each draw
    /// is <c>bisect_right(cum_weights, random() * total, 0, n - 1)</c>.
    /// </summary>
    /// <param name="weights">One relative weight per index; at least one, with a positive, finite total.</param>
    /// <param name="k">How many indices to draw.</param>
    public IReadOnlyList<int> Choices(IReadOnlyList<double> weights, int k)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        var n = weights.Count;
        if (n == 0)
        {
            throw new ArgumentException("There must be at least one weight.", nameof(weights));
        }

        var cumulative = new double[n];
        var sum = 0.0;
        for (var i = 0; i < n; i++)
        {
            sum += weights[i];
            cumulative[i] = sum;
        }

        var total = cumulative[n - 1];
        if (total <= 0.0)
        {
            throw new ArgumentException("Total of weights must be greater than zero.", nameof(weights));
        }

        if (!double.IsFinite(total))
        {
            throw new ArgumentException("Total of weights must be finite.", nameof(weights));
        }

        var result = new int[k];
        for (var draw = 0; draw < k; draw++)
        {
            result[draw] = BisectRight(cumulative, Random() * total, n - 1);
        }

        return result;
    }

    /// <summary>Python's <c>bisect_right(a, x, 0, hi)</c>.</summary>
    private static int BisectRight(double[] a, double x, int hi)
    {
        var lo = 0;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (x < a[mid])
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return lo;
    }

    private void InitGenRand(uint s)
    {
        _mt[0] = s;
        for (var i = 1; i < N; i++)
        {
            _mt[i] = (1812433253U * (_mt[i - 1] ^ (_mt[i - 1] >> 30))) + (uint)i;
        }

        _mti = N;
    }

    private void InitByArray(uint[] key)
    {
        InitGenRand(19650218U);
        var i = 1;
        var j = 0;
        for (var k = Math.Max(N, key.Length); k > 0; k--)
        {
            _mt[i] = (_mt[i] ^ ((_mt[i - 1] ^ (_mt[i - 1] >> 30)) * 1664525U)) + key[j] + (uint)j;
            i++;
            j++;
            if (i >= N)
            {
                _mt[0] = _mt[N - 1];
                i = 1;
            }

            if (j >= key.Length)
            {
                j = 0;
            }
        }

        for (var k = N - 1; k > 0; k--)
        {
            _mt[i] = (_mt[i] ^ ((_mt[i - 1] ^ (_mt[i - 1] >> 30)) * 1566083941U)) - (uint)i;
            i++;
            if (i >= N)
            {
                _mt[0] = _mt[N - 1];
                i = 1;
            }
        }

        _mt[0] = 0x80000000U; // MSB is 1, assuring a non-zero initial array.
    }

    private void Twist()
    {
        int kk;
        uint y;
        for (kk = 0; kk < N - M; kk++)
        {
            y = (_mt[kk] & UpperMask) | (_mt[kk + 1] & LowerMask);
            _mt[kk] = _mt[kk + M] ^ (y >> 1) ^ ((y & 1U) * MatrixA);
        }

        for (; kk < N - 1; kk++)
        {
            y = (_mt[kk] & UpperMask) | (_mt[kk + 1] & LowerMask);
            _mt[kk] = _mt[kk + (M - N)] ^ (y >> 1) ^ ((y & 1U) * MatrixA);
        }

        y = (_mt[N - 1] & UpperMask) | (_mt[0] & LowerMask);
        _mt[N - 1] = _mt[M - 1] ^ (y >> 1) ^ ((y & 1U) * MatrixA);
        _mti = 0;
    }
}
