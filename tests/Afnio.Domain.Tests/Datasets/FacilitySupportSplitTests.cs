using System.Text.Json;
using Afnio.Domain.Datasets;

namespace Afnio.Domain.Tests.Datasets;

/// <summary>
/// The split afnio and DSPy use for the Facility Support Analyzer dataset (data/facility-support):
/// <c>random.Random(0).shuffle(data)</c>, then 66 train, 66 validation and 68 test items.
/// </summary>
public sealed class FacilitySupportSplitTests
{
    private static readonly Lazy<IReadOnlyList<string>> Sentiments = new(LoadSentiments);

    [Fact]
    public void Dataset_Has200LabelledItems()
    {
        Assert.Equal(200, Sentiments.Value.Count);
        Assert.All(Sentiments.Value, s => Assert.Contains(s, new[] { "negative", "neutral", "positive" }));
    }

    [Fact]
    public void BySizesAndByRatios_GiveTheSameSplit()
    {
        var bySizes = DatasetSplits.BySizes(200, [66, 66, 68], 0);
        var byRatios = DatasetSplits.ByRatios(200, [0.33, 0.33, 0.34], 0);

        Assert.Equal([66, 66, 68], bySizes.Select(p => p.Count));
        Assert.Equal(bySizes, byRatios);
    }

    [Fact]
    public void Split_IsPythonsShuffleCutInOrder()
    {
        // idx = list(range(200)); random.Random(0).shuffle(idx); idx[:66], idx[66:132], idx[132:]
        var parts = DatasetSplits.BySizes(200, [66, 66, 68], 0);

        Assert.Equal(PythonShuffles.Shuffle200Seed0[..66], parts[0]);
        Assert.Equal(PythonShuffles.Shuffle200Seed0[66..132], parts[1]);
        Assert.Equal(PythonShuffles.Shuffle200Seed0[132..], parts[2]);
    }

    [Fact]
    public void Split_HasTheSentimentCountsOfTheDatasetReadme()
    {
        // Also checked with CPython 3.11:
        // d = json.load(open("dataset.json")); random.Random(0).shuffle(d)
        // Counter(json.loads(x["answer"])["sentiment"] for x in d[:66]) ... d[66:132] ... d[132:]
        foreach (var parts in new[]
                 {
                     DatasetSplits.BySizes(200, [66, 66, 68], 0),
                     DatasetSplits.ByRatios(200, [0.33, 0.33, 0.34], 0),
                 })
        {
            Assert.Equal((36, 20, 10), Count(parts[0]));
            Assert.Equal((39, 17, 10), Count(parts[1]));
            Assert.Equal((38, 24, 6), Count(parts[2]));
        }
    }

    private static (int Neutral, int Positive, int Negative) Count(IReadOnlyList<int> part)
    {
        var labels = part.Select(i => Sentiments.Value[i]).ToList();
        return (labels.Count(s => s == "neutral"), labels.Count(s => s == "positive"), labels.Count(s => s == "negative"));
    }

    private static List<string> LoadSentiments()
    {
        using var stream = File.OpenRead(RepoFiles.PathOf("data/facility-support/dataset.json"));
        using var doc = JsonDocument.Parse(stream);
        return doc.RootElement.EnumerateArray()
            .Select(item =>
            {
                Assert.Equal(JsonValueKind.String, item.GetProperty("fields").GetProperty("input").ValueKind);
                using var answer = JsonDocument.Parse(item.GetProperty("answer").GetString()!);
                return answer.RootElement.GetProperty("sentiment").GetString()!;
            })
            .ToList();
    }
}
