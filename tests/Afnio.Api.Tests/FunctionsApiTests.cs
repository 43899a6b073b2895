using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>Forward operations over REST, with the reference's examples (semantics §2.1–2.3), and the graph they record.</summary>
public sealed class FunctionsApiTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task Add_ConcatenatesStrings_JoinsRoles_AndRecordsANodeWithOneEdgePerArgument()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("abc", "first input", requiresGrad: true);
        var y = await project.VariableAsync("def", "second input");

        var result = await project.CallAsync("add", new { x, y });

        Assert.Equal("function_result", result.GetProperty("object").GetString());
        var output = result.GetProperty("outputs")[0];
        Assert.Equal("abcdef", output.GetProperty("data").GetString());
        Assert.Equal("first input and second input", output.GetProperty("role").GetString());
        Assert.True(output.GetProperty("requires_grad").GetBoolean());
        Assert.False(output.GetProperty("is_leaf").GetBoolean());
        Assert.Equal(0, output.GetProperty("output_nr").GetInt32());
        var node = result.GetProperty("node");
        Assert.Equal("AddBackward0", node.GetProperty("name").GetString());
        Assert.Equal(node.GetProperty("id").GetString(), output.GetProperty("grad_fn").GetString());

        // Add(x✓, y✗) → [AccumulateGrad, None]
        var edges = node.GetProperty("next_functions");
        Assert.Equal(2, edges.GetArrayLength());
        var accumulate = await project.Client.GetJsonAsync($"/v1/nodes/{edges[0].GetProperty("node_id").GetString()}");
        Assert.Equal("AccumulateGrad", accumulate.GetProperty("name").GetString());
        Assert.Equal(x, accumulate.GetProperty("variable_id").GetString());
        Assert.Equal(JsonValueKind.Null, edges[1].GetProperty("node_id").ValueKind);
        Assert.Equal(0, edges[1].GetProperty("output_nr").GetInt32());
    }

    [Fact]
    public async Task Add_NumbersAndListsElementWise_AndRefusesMismatches()
    {
        var project = await app.CreateProjectAsync();
        var a = await project.VariableAsync(new[] { 1, 2, 3 }, "a");
        var b = await project.VariableAsync(new[] { 4, 5, 6 }, "b");
        var shorter = await project.VariableAsync(new[] { 1, 2 }, "c");
        var scalar = await project.VariableAsync(7, "d");

        var sum = await project.CallAsync("add", new { x = a, y = b });
        Assert.Equal("[5,7,9]", sum.GetProperty("outputs")[0].GetProperty("data").GetRawText());
        Assert.Equal(JsonValueKind.Null, sum.GetProperty("node").ValueKind); // no input requires grad: a leaf, no node
        Assert.True(sum.GetProperty("outputs")[0].GetProperty("is_leaf").GetBoolean());

        using var lengths = await project.Client.PostAsJsonAsync("/v1/functions/add", new { x = a, y = shorter });
        await lengths.AssertProblemAsync(400, "length_mismatch");
        using var mixed = await project.Client.PostAsJsonAsync("/v1/functions/add", new { x = scalar, y = a });
        var problem = await mixed.AssertProblemAsync(400, "invalid_operands");
        Assert.Contains("Cannot add a scalar .data to a list .data.", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Sum_WrapsStringsInItems_AndJoinsEveryRole()
    {
        var project = await app.CreateProjectAsync();
        var inputs = new[]
        {
            await project.VariableAsync("abc", "input1", requiresGrad: true),
            await project.VariableAsync("def", "input2"),
            await project.VariableAsync("ghi", "input3", requiresGrad: true),
        };

        var result = await project.CallAsync("sum", new { x = inputs });

        var output = result.GetProperty("outputs")[0];
        Assert.Equal("<ITEM>abc</ITEM><ITEM>def</ITEM><ITEM>ghi</ITEM>", output.GetProperty("data").GetString());
        Assert.Equal("input1 and input2 and input3", output.GetProperty("role").GetString());
        var node = result.GetProperty("node");
        Assert.Equal("SumBackward0", node.GetProperty("name").GetString());
        var edges = node.GetProperty("next_functions").EnumerateArray().Select(e => e.GetProperty("node_id").ValueKind).ToList();
        Assert.Equal([JsonValueKind.String, JsonValueKind.Null, JsonValueKind.String], edges);
    }

    [Fact]
    public async Task Split_FollowsPythonSplit_PadsBatches_AndNumbersOutputs()
    {
        var project = await app.CreateProjectAsync();
        var text = await project.VariableAsync("afnio is great!", "sentence", requiresGrad: true);
        var batch = await project.VariableAsync(new[] { "afnio is great!", "Deep learning" }, "batch");

        var parts = await project.CallAsync("split", new { x = text, sep = " ", maxsplit = 1 });
        var outputs = parts.GetProperty("outputs").EnumerateArray().ToList();
        Assert.Equal(["afnio", "is great!"], outputs.Select(o => o.GetProperty("data").GetString()));
        Assert.Equal(["split part 0 of sentence", "split part 1 of sentence"], outputs.Select(o => o.GetProperty("role").GetString()));
        Assert.Equal([0, 1], outputs.Select(o => o.GetProperty("output_nr").GetInt32()));
        Assert.All(outputs, o => Assert.Equal(parts.GetProperty("node").GetProperty("id").GetString(), o.GetProperty("grad_fn").GetString()));
        Assert.Equal(1, parts.GetProperty("node").GetProperty("next_functions").GetArrayLength()); // sep is a plain string: no edge

        var padded = await project.CallAsync("split", new { x = batch, maxsplit = 2 });
        Assert.Equal(
            ["[\"afnio\",\"Deep\"]", "[\"is\",\"learning\"]", "[\"great!\",\"\"]"],
            padded.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("data").GetRawText()));
    }

    [Fact]
    public async Task GradDisabled_GivesLeafOutputsAndNoNode()
    {
        var project = await app.CreateProjectAsync();
        var x = await project.VariableAsync("abc", "x", requiresGrad: true);
        var y = await project.VariableAsync("def", "y", requiresGrad: true);

        var result = await project.CallAsync("add", new { x, y, grad_enabled = false });

        var output = result.GetProperty("outputs")[0];
        Assert.Equal(JsonValueKind.Null, result.GetProperty("node").ValueKind);
        Assert.False(output.GetProperty("requires_grad").GetBoolean());
        Assert.True(output.GetProperty("is_leaf").GetBoolean());
        Assert.Equal(JsonValueKind.Null, output.GetProperty("grad_fn").ValueKind);
        await using var db = app.CreateDbContext();
        Assert.True(Domain.Common.PrefixedId.TryParse("var", x, out var xId));
        Assert.False(await db.Nodes.AnyAsync(n => n.VariableId == xId)); // not even an AccumulateGrad node
    }

    [Fact]
    public async Task ALeafKeepsOneAccumulateGradNode_AcrossOperations_EvenWhenCalledConcurrently()
    {
        var project = await app.CreateProjectAsync();
        var shared = await project.VariableAsync("p", "prompt", requiresGrad: true);
        var other = await project.VariableAsync("q", "other");

        var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => project.CallAsync("add", new { x = shared, y = other })));

        var accumulateIds = results.Select(r => r.GetProperty("node").GetProperty("next_functions")[0].GetProperty("node_id").GetString()).Distinct().ToList();
        Assert.Single(accumulateIds);
        await using var db = app.CreateDbContext();
        Assert.True(Domain.Common.PrefixedId.TryParse("var", shared, out var sharedId));
        Assert.Equal(1, await db.Nodes.CountAsync(n => n.VariableId == sharedId));
    }

    [Fact]
    public async Task NonLeafInputs_LeadToTheirGradFn_AtTheirOutputNr()
    {
        var project = await app.CreateProjectAsync();
        var text = await project.VariableAsync("a b", "words", requiresGrad: true);
        var split = await project.CallAsync("split", new { x = text, sep = " " });
        var second = split.GetProperty("outputs")[1].GetProperty("id").GetString()!;
        var suffix = await project.VariableAsync("!", "suffix");

        var result = await project.CallAsync("add", new { x = second, y = suffix });

        var edge = result.GetProperty("node").GetProperty("next_functions")[0];
        Assert.Equal(split.GetProperty("node").GetProperty("id").GetString(), edge.GetProperty("node_id").GetString());
        Assert.Equal(1, edge.GetProperty("output_nr").GetInt32());
    }

    [Fact]
    public async Task VariableGraph_ListsEveryNodeAndEdge_AsJsonAndMermaid()
    {
        var project = await app.CreateProjectAsync();
        var a = await project.VariableAsync("a", "a", requiresGrad: true);
        var v1 = await project.VariableAsync("1", "v1", requiresGrad: true);
        var b = await project.OutputAsync("add", new { x = a, y = v1 });
        var e = await project.OutputAsync("add", new { x = a, y = b });

        var graph = await project.Client.GetJsonAsync($"/v1/variables/{e}/graph");

        Assert.Equal("graph", graph.GetProperty("object").GetString());
        var names = graph.GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("name").GetString()).ToList();
        Assert.Equal(["AddBackward0", "AccumulateGrad", "AddBackward0", "AccumulateGrad"], names); // a's node appears once
        Assert.Equal(graph.GetProperty("nodes")[0].GetProperty("id").GetString(), graph.GetProperty("root_node_id").GetString());
        Assert.Equal(4, graph.GetProperty("edges").GetArrayLength());

        using var mermaid = await project.Client.GetAsync($"/v1/variables/{e}/graph?format=mermaid");
        Assert.Equal("text/plain", mermaid.Content.Headers.ContentType?.MediaType);
        var text = await mermaid.Content.ReadAsStringAsync();
        Assert.StartsWith("flowchart TD\n", text);
        Assert.Contains("AddBackward0", text);
        Assert.Contains($"AccumulateGrad<br/>{a}<br/>a", text);
        Assert.Equal(4, text.Split('\n').Count(l => l.Contains("-->|0|", StringComparison.Ordinal)));

        // A leaf without grad has no graph.
        var plain = await project.VariableAsync("x", "plain");
        var empty = await project.Client.GetJsonAsync($"/v1/variables/{plain}/graph");
        Assert.Equal(0, empty.GetProperty("nodes").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, empty.GetProperty("root_node_id").ValueKind);
    }

    [Theory]
    [InlineData("/v1/functions/multiply", "{\"x\":\"var_00000000000000000000000000000000\"}", 404, "function_not_found")]
    [InlineData("/v1/functions/add", "[1,2]", 400, "invalid_arguments")]
    [InlineData("/v1/functions/add", "{\"x\":\"var_00000000000000000000000000000000\"}", 400, "missing_field")]
    [InlineData("/v1/functions/add", "{\"x\":1,\"y\":2}", 400, "invalid_id")]
    [InlineData("/v1/functions/add", "{\"x\":\"a\",\"y\":\"b\",\"z\":1}", 400, "unknown_field")]
    [InlineData("/v1/functions/add", "{\"x\":\"var_00000000000000000000000000000000\",\"y\":\"var_00000000000000000000000000000000\",\"grad_enabled\":\"yes\"}", 400, "invalid_type")]
    [InlineData("/v1/functions/add", "{\"x\":\"var_00000000000000000000000000000000\",\"y\":\"var_00000000000000000000000000000000\"}", 404, "variable_not_found")]
    [InlineData("/v1/functions/sum", "{\"x\":\"var_00000000000000000000000000000000\"}", 400, "invalid_type")]
    [InlineData("/v1/functions/split", "{\"x\":\"var_00000000000000000000000000000000\",\"maxsplit\":[1]}", 404, "variable_not_found")]
    [InlineData("/v1/functions/add", "{\"x\":", 400, "invalid_json")]
    public async Task BadCalls_GiveProblems(string path, string body, int status, string code)
    {
        var project = await app.CreateProjectAsync();
        using var response = await project.Client.SendRawAsync(HttpMethod.Post, path, body);
        await response.AssertProblemAsync(status, code);
    }

    [Fact]
    public async Task OtherProjectsVariablesAndNodes_AreNotFound()
    {
        var mine = await app.CreateProjectAsync();
        var theirs = await app.CreateProjectAsync();
        var foreign = await theirs.VariableAsync("x", "x", requiresGrad: true);
        var foreignNode = (await theirs.CallAsync("add", new { x = foreign, y = foreign })).GetProperty("node").GetProperty("id").GetString();
        var own = await mine.VariableAsync("y", "y");

        using var call = await mine.Client.PostAsJsonAsync("/v1/functions/add", new { x = own, y = foreign });
        var problem = await call.AssertProblemAsync(404, "variable_not_found");
        Assert.Equal("y", problem.GetProperty("param").GetString());
        using var node = await mine.Client.GetAsync($"/v1/nodes/{foreignNode}");
        await node.AssertProblemAsync(404, "node_not_found");
        using var graph = await mine.Client.GetAsync($"/v1/variables/{foreign}/graph");
        await graph.AssertProblemAsync(404, "variable_not_found");
        using var backward = await mine.Client.PostAsJsonAsync("/v1/backward", new { variables = new[] { foreign } });
        await backward.AssertProblemAsync(404, "variable_not_found");
    }
}
