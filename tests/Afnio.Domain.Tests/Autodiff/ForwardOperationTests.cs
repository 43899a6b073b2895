using Afnio.Domain.Autodiff;
using Afnio.Domain.Common;

namespace Afnio.Domain.Tests.Autodiff;

public sealed class ForwardOperationTests
{
    [Theory]
    [InlineData("\"abc\"", "\"def\"", "\"abcdef\"")]
    [InlineData("1", "2", "3")]
    [InlineData("1", "2.5", "3.5")]
    [InlineData("\"n=\"", "3", "\"n=3\"")]
    [InlineData("2.0", "\"x\"", "\"2.0x\"")]
    [InlineData("[1, 2, 3]", "[4, 5, 6]", "[5,7,9]")]
    [InlineData("[\"a\", \"b\"]", "[\"c\", \"d\"]", "[\"ac\",\"bd\"]")]
    public async Task Add_FollowsTheReference(string x, string y, string expected)
    {
        var tape = new Tape();
        var a = tape.Leaf(x, "first");
        var b = tape.Leaf(y, "second");

        var output = Assert.Single(await tape.ApplyAsync("add", $"{{\"x\": \"{Tape.Id(a)}\", \"y\": \"{Tape.Id(b)}\"}}"));

        Assert.Equal(expected, tape[output].Data.ToJson());
        Assert.Equal("first and second", tape[output].Role);
    }

    [Theory]
    [InlineData("\"a\"", "[\"b\"]", "Cannot add a scalar .data to a list .data.")]
    [InlineData("[1, 2]", "[1, 2, 3]", "List .data fields must have the same length: 2 vs 3.")]
    [InlineData("null", "\"a\"", "unsupported operand type(s) for +: 'NoneType' and 'str'")]
    public async Task Add_RefusesMismatches(string x, string y, string message)
    {
        var tape = new Tape();
        var a = tape.Leaf(x, "x");
        var b = tape.Leaf(y, "y");

        var error = await Assert.ThrowsAsync<AfnioException>(() => tape.ApplyAsync("add", $"{{\"x\": \"{Tape.Id(a)}\", \"y\": \"{Tape.Id(b)}\"}}"));

        Assert.Equal(message, error.Message);
        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
    }

    [Fact]
    public async Task Sum_WrapsStringsInItems_AndJoinsRoles()
    {
        var tape = new Tape();
        var ids = new[] { tape.Leaf("\"abc\"", "input1"), tape.Leaf("\"def\"", "input2"), tape.Leaf("\"ghi\"", "input3") };

        var output = Assert.Single(await tape.ApplyAsync("sum", $"{{\"x\": [{string.Join(",", ids.Select(i => $"\"{Tape.Id(i)}\""))}]}}"));

        Assert.Equal("\"<ITEM>abc</ITEM><ITEM>def</ITEM><ITEM>ghi</ITEM>\"", tape[output].Data.ToJson());
        Assert.Equal("input1 and input2 and input3", tape[output].Role);
    }

    [Fact]
    public async Task Sum_AddsNumericListsElementWise()
    {
        var tape = new Tape();
        var a = tape.Leaf("[1, 2, 3.5]", "a");
        var b = tape.Leaf("[4, 5, 6]", "b");

        var output = Assert.Single(await tape.ApplyAsync("sum", $"{{\"x\": [\"{Tape.Id(a)}\", \"{Tape.Id(b)}\"]}}"));

        Assert.Equal("[5.0,7.0,9.5]", tape[output].Data.ToJson());
    }

    [Fact]
    public async Task Split_FollowsPythonSplit_WithRoles()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"afnio is great!\"", "sentence", requiresGrad: true);

        var parts = await tape.ApplyAsync("split", $"{{\"x\": \"{Tape.Id(x)}\", \"sep\": \" \", \"maxsplit\": 1}}");

        Assert.Equal(["\"afnio\"", "\"is great!\""], parts.Select(p => tape[p].Data.ToJson()));
        Assert.Equal(["split part 0 of sentence", "split part 1 of sentence"], parts.Select(p => tape[p].Role));
        Assert.All(parts, p => Assert.True(tape[p].RequiresGrad));
        Assert.Equal([0, 1], parts.Select(p => tape[p].OutputNr));
        Assert.Single(parts.Select(p => tape[p].GradFnId).Distinct());
    }

    [Fact]
    public async Task Split_OfABatch_PadsShorterItems()
    {
        var tape = new Tape();
        var x = tape.Leaf("[\"afnio is great!\", \"Deep learning\"]", "sentences");

        var parts = await tape.ApplyAsync("split", $"{{\"x\": \"{Tape.Id(x)}\", \"maxsplit\": 2}}");

        Assert.Equal(["[\"afnio\",\"Deep\"]", "[\"is\",\"learning\"]", "[\"great!\",\"\"]"], parts.Select(p => tape[p].Data.ToJson()));
    }

    [Theory]
    [InlineData("  a  b c ", null, -1, new[] { "a", "b", "c" })]
    [InlineData("  a  b c ", null, 1, new[] { "a", "b c " })]
    [InlineData("a,,b", ",", -1, new[] { "a", "", "b" })]
    [InlineData("a b c", " ", -1, new[] { "a", "b", "c" })]
    [InlineData("", null, -1, new string[0])]
    [InlineData("", ",", -1, new[] { "" })]
    public void PythonSplit_MatchesCPython(string text, string? sep, int maxsplit, string[] expected) =>
        Assert.Equal(expected, Afnio.Domain.Autodiff.Ops.DataOps.PythonSplit(text, sep, maxsplit));

    [Fact]
    public async Task Edges_FollowArgumentOrder_WithNullForInputsWithoutGrad()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"abc\"", "x", requiresGrad: true);
        var y = tape.Leaf("\"def\"", "y");

        var output = Assert.Single(await tape.ApplyAsync("add", $"{{\"x\": \"{Tape.Id(x)}\", \"y\": \"{Tape.Id(y)}\"}}"));

        var node = tape.Nodes[tape[output].GradFnId!.Value];
        Assert.Equal("AddBackward0", node.Name);
        Assert.Equal(2, node.NextFunctions.Count);
        Assert.Equal(GraphNode.AccumulateGradName, tape.Nodes[node.NextFunctions[0].NodeId!.Value].Name);
        Assert.Equal(new GraphEdge(null, 0), node.NextFunctions[1]);
        Assert.False(tape[output].IsLeaf);
    }

    [Fact]
    public async Task AccumulateGrad_IsOnePerLeaf_ReusedAcrossOps()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"x\"", "x", requiresGrad: true);

        var first = Assert.Single(await tape.ApplyAsync("add", $"{{\"x\": \"{Tape.Id(x)}\", \"y\": \"{Tape.Id(x)}\"}}"));
        var second = Assert.Single(await tape.ApplyAsync("split", $"{{\"x\": \"{Tape.Id(x)}\"}}"));

        var accumulate = tape.Nodes.Values.Where(n => n.IsAccumulateGrad).ToList();
        Assert.Single(accumulate);
        Assert.All(tape.Nodes[tape[first].GradFnId!.Value].NextFunctions, e => Assert.Equal(accumulate[0].Id, e.NodeId));
        Assert.Equal(accumulate[0].Id, tape.Nodes[tape[second].GradFnId!.Value].NextFunctions[0].NodeId);
    }

    [Fact]
    public async Task NoGrad_GivesLeafOutputs_WithoutANode()
    {
        var tape = new Tape();
        var x = tape.Leaf("\"abc\"", "x", requiresGrad: true);

        var output = Assert.Single(await tape.ApplyAsync("add", $"{{\"x\": \"{Tape.Id(x)}\", \"y\": \"{Tape.Id(x)}\"}}", gradEnabled: false));

        Assert.False(tape[output].RequiresGrad);
        Assert.True(tape[output].IsLeaf);
        Assert.Null(tape[output].GradFnId);
        Assert.Empty(tape.Nodes);
    }

    [Fact]
    public async Task OutputsOfInputsWithoutGrad_AreLeaves()
    {
        var tape = new Tape();
        var x = tape.Leaf("1", "x");

        var output = Assert.Single(await tape.ApplyAsync("add", $"{{\"x\": \"{Tape.Id(x)}\", \"y\": \"{Tape.Id(x)}\"}}"));

        Assert.True(tape[output].IsLeaf);
        Assert.Empty(tape.Nodes);
    }

    [Fact]
    public void UnknownFunction_IsNotFound() =>
        Assert.Equal("function_not_found", Assert.Throws<AfnioException>(() => OperationRegistry.Basic().Get("multiply")).Code);
}
