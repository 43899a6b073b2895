using System.Text.Json;
using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Programs;

namespace Afnio.Domain.Tests.Programs;

public sealed class ProgramTests
{
    [Fact]
    public void TheQuickstartProgram_Parses_AndRoundTripsThroughItsJson()
    {
        var json = File.ReadAllText(Path.Combine(Datasets.RepoFiles.Root, "data", "facility-support", "program.json"));
        var program = ProgramParser.Parse(JsonDocument.Parse(json).RootElement);

        Assert.Equal("sentiment_task", Assert.Single(program.Parameters).Name);
        Assert.Equal("forward", Assert.Single(program.Steps).Model);
        Assert.Equal(["accuracy"], program.Metrics);
        var again = ProgramParser.Parse(JsonSerializer.SerializeToElement(program.ToJson()));
        Assert.Equal(program.ToJson().ToJsonString(), again.ToJson().ToJsonString());
    }

    [Theory]
    [InlineData("```json\n{\"sentiment\": \"Neutral \"}\n```", "neutral")]
    [InlineData("{\"sentiment\": \"POSITIVE\"}", "positive")]
    [InlineData("  {\"sentiment\": \"negative\"}  ", "negative")]
    public void TheQuickstartTransform_ReadsTheSentiment(string reply, string expected)
    {
        OutputTransform[] steps = [new OutputTransform.StripCodeFences(), new OutputTransform.ParseJson(), new OutputTransform.Field("sentiment"),
            new OutputTransform.Lowercase(), new OutputTransform.Trim()];
        Assert.Equal(expected, OutputTransform.Run(steps, reply));
    }

    [Theory]
    [InlineData("not json", "'parse_json': the text is not JSON")]
    [InlineData("{\"mood\": \"calm\"}", "'field': the value has no field 'sentiment'")]
    [InlineData("{\"sentiment\": 3}", "'lowercase' needs text")]
    public void ATransformThatCannotApply_SaysWhy(string reply, string message)
    {
        OutputTransform[] steps = [new OutputTransform.ParseJson(), new OutputTransform.Field("sentiment"), new OutputTransform.Lowercase()];
        var error = Assert.Throws<TransformFailedException>(() => OutputTransform.Run(steps, reply));
        Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FieldPath_ReadsInsideAJsonString_AndNamesTheItemWhenAFieldIsMissing()
    {
        var item = JsonNode.Parse("""{"fields": {"input": "hello"}, "answer": "{\"sentiment\": \"neutral\", \"n\": 2}"}""");
        Assert.Equal("hello", FieldPath.Read(item, new FieldMapping("m", "fields.input", null, ""), "item_1"));
        Assert.Equal("neutral", FieldPath.Read(item, new FieldMapping("s", "answer", "sentiment", ""), "item_1"));
        Assert.Equal("2", FieldPath.Read(item, new FieldMapping("n", "answer", "n", ""), "item_1"));
        var error = Assert.Throws<AfnioException>(() => FieldPath.Read(item, new FieldMapping("u", "answer", "urgency", ""), "item_1"));
        Assert.Equal("dataset_field_missing", error.Code);
        Assert.Contains("item_1", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A program without model calls: the parameter doubled by add, scored by exact match against a constant.</summary>
    private static ProgramDefinition Doubling() => ProgramParser.Parse(JsonDocument.Parse("""
        {
          "parameters": {"suffix": {"value": "!", "role": "suffix"}},
          "constants": {"gold": {"value": "!!", "role": "gold"}},
          "inputs": {"word": {"field": "w", "role": "word"}},
          "steps": [{"name": "joined", "op": "add", "args": {"x": {"ref": "suffix"}, "y": {"ref": "suffix"}}}],
          "loss": {"op": "exact_match_evaluator", "args": {"prediction": {"ref": "joined"}, "target": {"ref": "gold"}}},
          "metrics": ["accuracy"]
        }
        """).RootElement);

    [Fact]
    public async Task Forward_RecordsTheGraphWithStableIds_AndScoresTheBatch()
    {
        var executor = new ProgramExecutor(Doubling(), new Dictionary<string, Guid>());
        JsonNode?[] items = [JsonNode.Parse("""{"w": "a"}"""), JsonNode.Parse("""{"w": "b"}""")];
        var pass = await executor.ForwardAsync(new Dictionary<string, string> { ["suffix"] = "!" }, items, ["item_a", "item_b"],
            _ => OperationRegistry.Standard(NoLanguageModels.Instance), gradEnabled: true, CancellationToken.None);

        Assert.Equal(1.0, pass.ScoreValue);
        Assert.Equal(0.5, pass.Metrics(["accuracy"])["accuracy"]); // score ÷ batch size
        var add = pass.Nodes[ProgramIds.Of("node:joined")];
        Assert.Equal("AddBackward0", add.Name);
        Assert.Equal([ProgramIds.Of("accumulate:suffix"), ProgramIds.Of("accumulate:suffix")], add.NextFunctions.Select(e => e.NodeId));
        Assert.Equal(["word"], pass.Variables.Values.Where(v => v.Data.IsList).Select(v => v.Role));
        Assert.Equal(ProgramIds.Of("node:loss"), pass.Explanation.GradFnId);

        // The same batch gives the same ids; under no-grad nothing is recorded.
        var again = await executor.ForwardAsync(new Dictionary<string, string> { ["suffix"] = "!" }, items, ["item_a", "item_b"],
            _ => OperationRegistry.Standard(NoLanguageModels.Instance), gradEnabled: false, CancellationToken.None);
        Assert.Empty(again.Nodes);
        Assert.Equal(pass.Score.Id, again.Score.Id);
        Assert.Equal(1.0, again.ScoreValue);
    }
}
