using System.Text;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

/// <summary>
/// Optimizer resources over REST: bad input on every endpoint answers a 4xx problem with a stable code
/// and changes nothing; create, list, get, delete, param_groups, clear_grad and the state dict do what
/// afnio's TGD does. No test here calls a model: a step without gradients makes no model call.
/// </summary>
[Collection(WorkerHosts.Name)]
public sealed class OptimizerInputTests(ModelWorkerApp app) : IClassFixture<ModelWorkerApp>
{
    private const string UnknownVariable = "var_0000000000007000800000000000000a";
    private const string UnknownModel = "mdl_0000000000007000800000000000000a";
    private const string UnknownOptimizer = "opt_0000000000007000800000000000000a";

    // ---- create: bad input ----

    /// <summary>
    /// Placeholders: {M} a model, {P} and {Q} text parameters, {N} a variable that is no parameter,
    /// {X} a parameter holding a number, {U} an unknown variable id, {UM} an unknown model id.
    /// </summary>
    [Theory]
    [InlineData("""{"model_id": "{M}", "params": ["{P}"]}""", 400, "missing_field", "type")]
    [InlineData("""{"type": "adam", "model_id": "{M}", "params": ["{P}"]}""", 400, "unsupported_optimizer", "type")]
    [InlineData("""{"type": 5, "model_id": "{M}", "params": ["{P}"]}""", 400, "invalid_type", "type")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "param_groups": [{"params": ["{Q}"]}]}""", 400, "invalid_params", "params")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": []}""", 400, "empty_parameter_list", "params")]
    [InlineData("""{"type": "tgd", "model_id": "{M}"}""", 400, "empty_parameter_list", "params")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "param_groups": []}""", 400, "empty_parameter_list", "param_groups")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "param_groups": [{"params": ["{P}"]}, {"params": []}]}""", 400, "empty_parameter_list", "param_groups[1].params")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{N}"]}""", 400, "not_a_parameter", "params[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}", "{X}"]}""", 400, "unsupported_parameter_type", "params[1]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}", "{P}"]}""", 400, "duplicate_parameter", "params[1]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "param_groups": [{"params": ["{P}", "{Q}"]}, {"params": ["{Q}"]}]}""", 400, "duplicate_parameter", "param_groups[1].params[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["nope"]}""", 400, "invalid_id", "params[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{M}"]}""", 400, "invalid_id", "params[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": [7]}""", 400, "invalid_type", "params[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": "{P}"}""", 400, "invalid_type", "params")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}", "{U}"]}""", 404, "variable_not_found", "params[1]")]
    [InlineData("""{"type": "tgd", "params": ["{P}"]}""", 400, "missing_field", "model_id")]
    [InlineData("""{"type": "tgd", "model_id": "{P}", "params": ["{P}"]}""", 400, "invalid_id", "model_id")]
    [InlineData("""{"type": "tgd", "model_id": "{UM}", "params": ["{P}"]}""", 404, "model_not_found", "model_id")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "param_groups": [{"params": ["{P}"], "model_id": "{UM}"}]}""", 404, "model_not_found", "param_groups[0].model_id")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "momentum": -1}""", 400, "invalid_momentum", "momentum")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "momentum": 101}""", 400, "invalid_momentum", "momentum")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "param_groups": [{"params": ["{P}"], "momentum": 101}]}""", 400, "invalid_momentum", "param_groups[0].momentum")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "momentum": "three"}""", 400, "invalid_type", "momentum")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "momentum": 1.5}""", 400, "invalid_type", "momentum")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "completion_args": [1]}""", 400, "invalid_type", "completion_args")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "completion_args": "gpt-4o"}""", 400, "invalid_type", "completion_args")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "completion_args": {"stream": true}}""", 400, "unsupported_argument", "completion_args.stream")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "inputs": {"feedback": "x"}}""", 400, "reserved_input", "inputs.feedback")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "inputs": {"variable_value": "x"}}""", 400, "reserved_input", "inputs.variable_value")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "inputs": "x"}""", 400, "invalid_type", "inputs")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "inputs": {"a b": "x"}}""", 400, "invalid_input_name", "inputs.a b")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "inputs": {"k": 1}}""", 400, "invalid_type", "inputs.k")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "inputs": {"k": "\ud800"}}""", 400, "invalid_input", "inputs.k")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "inputs": {"k": "a\u0000"}}""", 400, "invalid_input", "inputs.k")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "inputs": {"k": "{U}"}}""", 404, "variable_not_found", "inputs.k")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "messages": []}""", 400, "invalid_messages", "messages")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "messages": [{"role": "system"}]}""", 400, "missing_field", "messages[0].content")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "messages": [{"content": ["{N}"]}]}""", 400, "missing_field", "messages[0].role")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "messages": [{"role": "system", "content": ["nope"]}]}""", 400, "invalid_id", "messages[0].content[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "messages": [{"role": "system", "content": ["{U}"]}]}""", 404, "variable_not_found", "messages[0].content[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "constraints": [""]}""", 400, "invalid_constraint", "constraints[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "constraints": ["{U}"]}""", 404, "variable_not_found", "constraints[0]")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "lr": 0.1}""", 400, "unknown_field", "lr")]
    [InlineData("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"]""", 400, "invalid_json", null)]
    [InlineData("""{"type": "tgd",}""", 400, "invalid_json", null)]
    [InlineData("""["{P}"]""", 400, "invalid_type", null)]
    [InlineData(null, 400, "invalid_request", null)]
    public async Task Create_RefusesBadInput_AndStoresNothing(string? body, int status, string code, string? param)
    {
        var scene = await SceneAsync();

        using var response = await scene.Project.Client.SendRawAsync(HttpMethod.Post, "/v1/optimizers", body is null ? null : scene.Fill(body));

        var problem = await response.AssertProblemAsync(status, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        await AssertNoOptimizersAsync(scene.Project);
    }

    [Fact]
    public async Task Create_RefusesAMomentumWrittenAsAString()
    {
        // Booleans and strings are never read from another JSON type; a number is not read from a string either.
        var scene = await SceneAsync();

        using var response = await scene.Project.Client.SendRawAsync(HttpMethod.Post, "/v1/optimizers",
            scene.Fill("""{"type": "tgd", "model_id": "{M}", "params": ["{P}"], "momentum": "3"}"""));

        var problem = await response.AssertProblemAsync(400, "invalid_type");
        Assert.Equal("momentum", problem.GetProperty("param").GetString());
        await AssertNoOptimizersAsync(scene.Project);
    }

    [Fact]
    public async Task Create_RefusesAnEmptyParameterList_WithAfniosWording()
    {
        var scene = await SceneAsync();

        foreach (var body in new object[]
        {
            new { type = "tgd", model_id = scene.Model, @params = Array.Empty<string>() },
            new { type = "tgd", model_id = scene.Model, param_groups = Array.Empty<object>() },
        })
        {
            using var response = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", body);
            var problem = await response.AssertProblemAsync(400, "empty_parameter_list");
            Assert.Equal("optimizer got an empty parameter list", problem.GetProperty("detail").GetString());
        }

        await AssertNoOptimizersAsync(scene.Project);
    }

    [Fact]
    public async Task Create_RefusesMoreThanAHundredGroups_AndSettingsTooLargeToCopyIntoEveryGroup()
    {
        var scene = await SceneAsync();

        using var many = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            param_groups = Enumerable.Range(0, 101).Select(_ => new { @params = new[] { scene.P } }),
        });
        await many.AssertProblemAsync(400, "too_many_param_groups");

        // ~95 KB of constraints in the defaults, copied into 45 groups: more than one optimizer stores.
        var parameters = new List<string>();
        for (var i = 0; i < 45; i++)
        {
            parameters.Add(await ParameterAsync(scene.Project, $"p{i}", "prompt"));
        }

        using var large = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            constraints = Enumerable.Range(0, 95).Select(_ => new string('c', 1000)),
            param_groups = parameters.Select(p => new { @params = new[] { p } }),
        });
        await large.AssertProblemAsync(400, "optimizer_too_large");
        await AssertNoOptimizersAsync(scene.Project);
    }

    [Fact]
    public async Task Create_RefusesANonLeaf()
    {
        var scene = await SceneAsync();
        var nonLeaf = await scene.Project.OutputAsync("add", new { x = scene.P, y = scene.Q });
        Assert.False((await scene.Project.Client.GetJsonAsync($"/v1/variables/{nonLeaf}")).GetProperty("is_leaf").GetBoolean());

        using var response = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, @params = new[] { scene.P, nonLeaf } });

        var problem = await response.AssertProblemAsync(400, "non_leaf_parameter");
        Assert.Equal("can't optimize a non-leaf Variable", problem.GetProperty("detail").GetString());
        Assert.Equal("params[1]", problem.GetProperty("param").GetString());
        await AssertNoOptimizersAsync(scene.Project);
    }

    [Fact]
    public async Task Create_RefusesANonLeafParameter()
    {
        // The API makes no non-leaf Parameter (operation outputs are plain variables): mark one in the database.
        var scene = await SceneAsync();
        var nonLeaf = await scene.Project.OutputAsync("add", new { x = scene.P, y = scene.Q });
        Assert.True(Domain.Common.PrefixedId.TryParse(Domain.Common.PrefixedId.Variable, nonLeaf, out var guid));
        await using (var db = app.CreateDbContext())
        {
            Assert.Equal(1, await db.Variables.Where(v => v.Id == guid).ExecuteUpdateAsync(s => s.SetProperty(v => v.IsParameter, true)));
        }

        using var response = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, param_groups = new[] { new { @params = new[] { nonLeaf } } } });

        var problem = await response.AssertProblemAsync(400, "non_leaf_parameter");
        Assert.Equal("can't optimize a non-leaf Variable", problem.GetProperty("detail").GetString());
        Assert.Equal("param_groups[0].params[0]", problem.GetProperty("param").GetString());
        await AssertNoOptimizersAsync(scene.Project);
    }

    [Fact]
    public async Task Create_RefusesAParameterInTwoGroups_WithAfniosWording()
    {
        var scene = await SceneAsync();

        using var response = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            param_groups = new object[] { new { @params = new[] { scene.P } }, new { @params = new[] { scene.Q, scene.P } } },
        });

        var problem = await response.AssertProblemAsync(400, "duplicate_parameter");
        Assert.Equal("some parameters appear in more than one parameter group", problem.GetProperty("detail").GetString());
        Assert.Equal("param_groups[1].params[1]", problem.GetProperty("param").GetString());
        await AssertNoOptimizersAsync(scene.Project);
    }

    [Fact]
    public async Task Create_RefusesVariablesAndModelsOfAnotherProject()
    {
        var scene = await SceneAsync();
        var other = await SceneAsync();

        using var foreignParameter = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, @params = new[] { scene.P, other.P } });
        var problem = await foreignParameter.AssertProblemAsync(404, "variable_not_found");
        Assert.Equal("params[1]", problem.GetProperty("param").GetString());

        using var foreignModel = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = other.Model, @params = new[] { scene.P } });
        problem = await foreignModel.AssertProblemAsync(404, "model_not_found");
        Assert.Equal("model_id", problem.GetProperty("param").GetString());

        using var foreignMessage = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            @params = new[] { scene.P },
            messages = new[] { new { role = "system", content = new[] { other.N } } },
        });
        problem = await foreignMessage.AssertProblemAsync(404, "variable_not_found");
        Assert.Equal("messages[0].content[0]", problem.GetProperty("param").GetString());

        await AssertNoOptimizersAsync(scene.Project);
        await AssertNoOptimizersAsync(other.Project);
    }

    [Fact]
    public async Task Create_CustomMessages_NeedEveryPlaceholderAsAnInputOrAReservedName()
    {
        var scene = await SceneAsync();
        var unknown = await scene.Project.VariableAsync("Rewrite {variable_value} using {unknown}.", "optimizer system prompt");
        var known = await scene.Project.VariableAsync("Rewrite it with {feedback}, in the style of {myInput}.", "optimizer system prompt");

        using var refused = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            @params = new[] { scene.P },
            messages = new[] { new { role = "system", content = new[] { known } }, new { role = "user", content = new[] { unknown } } },
            inputs = new Dictionary<string, string> { ["myInput"] = "Hemingway" },
        });
        var problem = await refused.AssertProblemAsync(400, "missing_input");
        Assert.Equal("messages[1]", problem.GetProperty("param").GetString());
        Assert.Contains("'{unknown}'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        using var missingInput = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            @params = new[] { scene.P },
            messages = new[] { new { role = "system", content = new[] { known } } },
        });
        problem = await missingInput.AssertProblemAsync(400, "missing_input");
        Assert.Contains("'{myInput}'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await AssertNoOptimizersAsync(scene.Project);

        var created = await scene.Project.Client.PostJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            @params = new[] { scene.P },
            messages = new[] { new { role = "system", content = new[] { known } } },
            inputs = new Dictionary<string, string> { ["myInput"] = "Hemingway" },
        });

        foreach (var settings in new[] { created.GetProperty("defaults"), created.GetProperty("param_groups")[0] })
        {
            var message = Assert.Single(settings.GetProperty("messages").EnumerateArray());
            Assert.Equal("system", message.GetProperty("role").GetString());
            Assert.Equal([known], Strings(message.GetProperty("content")));
            Assert.Equal("""{"myInput":"Hemingway"}""", settings.GetProperty("inputs").GetRawText());
        }

        var fetched = await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{Id(created)}");
        Assert.Equal("""{"myInput":"Hemingway"}""", fetched.GetProperty("param_groups")[0].GetProperty("inputs").GetRawText());
        var stateDict = await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{Id(created)}/state_dict");
        Assert.Equal("""{"myInput":"Hemingway"}""", stateDict.GetProperty("param_groups")[0].GetProperty("inputs").GetRawText());
    }

    [Fact]
    public async Task Create_OversizedBody_Answers413_AndStoresNothing()
    {
        var scene = await SceneAsync();

        using var response = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            @params = new[] { scene.P },
            constraints = new[] { new string('x', 1024 * 1024 + 1) },
        });

        await response.AssertProblemAsync(413, "payload_too_large");
        await AssertNoOptimizersAsync(scene.Project);
    }

    // ---- create: success ----

    [Fact]
    public async Task Create_FillsEveryGroupWithTheDefaults_AndAGroupOverrideChangesOnlyItsGroup()
    {
        var scene = await SceneAsync();
        var third = await ParameterAsync(scene.Project, "Answer in one word.", "instruction prompt");

        using var response = await scene.Project.Client.PostAsJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            momentum = 2,
            constraints = new[] { "Keep it polite." },
            completion_args = new { model = "gpt-4o", temperature = 0 },
            param_groups = new object[]
            {
                new { @params = new[] { scene.P, scene.Q } },
                new { @params = new[] { third }, momentum = 5 },
            },
        });
        var created = await HttpJson.EnsureSuccessAsync(response);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var id = Id(created);
        Assert.StartsWith("opt_", id, StringComparison.Ordinal);
        Assert.Equal($"/v1/optimizers/{id}", response.Headers.Location?.OriginalString);
        Assert.Equal("optimizer", created.GetProperty("object").GetString());
        Assert.Equal("tgd", created.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Array, created.GetProperty("state").ValueKind);
        Assert.Equal(0, created.GetProperty("state").GetArrayLength());
        Assert.True(created.GetProperty("created_at").GetInt64() > 0);

        var defaults = created.GetProperty("defaults");
        AssertSettings(defaults, scene.Model, momentum: 2);
        var groups = created.GetProperty("param_groups");
        Assert.Equal(2, groups.GetArrayLength());
        Assert.Equal([scene.P, scene.Q], Strings(groups[0].GetProperty("params")));
        AssertSettings(groups[0], scene.Model, momentum: 2);
        Assert.Equal([third], Strings(groups[1].GetProperty("params")));
        AssertSettings(groups[1], scene.Model, momentum: 5);

        var fetched = await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}");
        Assert.Equal(created.GetRawText(), fetched.GetRawText());
    }

    [Fact]
    public async Task Create_WithPlainParams_MakesOneGroupEqualToTheDefaults()
    {
        var scene = await SceneAsync();

        var created = await scene.Project.Client.PostJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, @params = new[] { scene.Q, scene.P } });

        var group = Assert.Single(created.GetProperty("param_groups").EnumerateArray());
        Assert.Equal([scene.Q, scene.P], Strings(group.GetProperty("params")));
        var defaults = created.GetProperty("defaults");
        Assert.Equal(scene.Model, defaults.GetProperty("model_id").GetString());
        Assert.Equal(JsonValueKind.Null, defaults.GetProperty("messages").ValueKind);
        Assert.Equal("{}", defaults.GetProperty("inputs").GetRawText());
        Assert.Equal("[]", defaults.GetProperty("constraints").GetRawText());
        Assert.Equal(0, defaults.GetProperty("momentum").GetInt32());
        Assert.Equal("{}", defaults.GetProperty("completion_args").GetRawText());
        foreach (var name in new[] { "model_id", "messages", "inputs", "constraints", "momentum", "completion_args" })
        {
            Assert.Equal(defaults.GetProperty(name).GetRawText(), group.GetProperty(name).GetRawText());
        }

        Assert.Empty(created.GetProperty("state").EnumerateArray());
    }

    // ---- get, list, delete ----

    [Fact]
    public async Task Optimizers_Unknown_Malformed_OrOfAnotherProject_AreNotFound()
    {
        var owner = await SceneAsync();
        var other = await SceneAsync();
        var id = Id(await CreateAsync(owner));

        foreach (var (client, path) in new[]
        {
            (other.Project.Client, id), (owner.Project.Client, UnknownOptimizer), (owner.Project.Client, "nope"),
            (owner.Project.Client, owner.P),
        })
        {
            await (await client.GetAsync($"/v1/optimizers/{path}")).AssertProblemAsync(404, "optimizer_not_found");
            await (await client.DeleteAsync($"/v1/optimizers/{path}")).AssertProblemAsync(404, "optimizer_not_found");
            await (await client.GetAsync($"/v1/optimizers/{path}/state_dict")).AssertProblemAsync(404, "optimizer_not_found");
            await (await client.PutAsJsonAsync($"/v1/optimizers/{path}/state_dict", new { state = new { }, param_groups = new[] { new { @params = new[] { 0 } } } }))
                .AssertProblemAsync(404, "optimizer_not_found");
            await (await client.PostAsJsonAsync($"/v1/optimizers/{path}/param_groups", new { @params = new[] { owner.Q } }))
                .AssertProblemAsync(404, "optimizer_not_found");
            await (await client.PostAsync($"/v1/optimizers/{path}/clear_grad", null)).AssertProblemAsync(404, "optimizer_not_found");
            await (await client.PostAsync($"/v1/optimizers/{path}/step", null)).AssertProblemAsync(404, "optimizer_not_found");
        }

        Assert.Empty((await other.Project.Client.GetJsonAsync("/v1/optimizers")).GetProperty("data").EnumerateArray());
        var unchanged = await owner.Project.Client.GetJsonAsync($"/v1/optimizers/{id}");
        Assert.Equal([owner.P], Strings(Assert.Single(unchanged.GetProperty("param_groups").EnumerateArray()).GetProperty("params")));
    }

    [Fact]
    public async Task List_PagesThroughTheCreatedOptimizers()
    {
        var scene = await SceneAsync();
        var third = await ParameterAsync(scene.Project, "third", "prompt");
        var ids = new[]
        {
            Id(await CreateAsync(scene, scene.P)),
            Id(await CreateAsync(scene, scene.Q)),
            Id(await CreateAsync(scene, third)),
        };

        var first = await scene.Project.Client.GetJsonAsync("/v1/optimizers?limit=2&order=asc");
        Assert.Equal("list", first.GetProperty("object").GetString());
        Assert.Equal(ids[..2], first.GetProperty("data").EnumerateArray().Select(Id));
        Assert.True(first.GetProperty("has_more").GetBoolean());
        Assert.Equal(ids[1], first.GetProperty("last_id").GetString());

        var second = await scene.Project.Client.GetJsonAsync($"/v1/optimizers?limit=2&order=asc&after={ids[1]}");
        var last = Assert.Single(second.GetProperty("data").EnumerateArray());
        Assert.Equal(ids[2], Id(last));
        Assert.False(second.GetProperty("has_more").GetBoolean());
        Assert.Equal([third], Strings(last.GetProperty("param_groups")[0].GetProperty("params")));

        var newestFirst = await scene.Project.Client.GetJsonAsync("/v1/optimizers");
        Assert.Equal(Enumerable.Reverse(ids), newestFirst.GetProperty("data").EnumerateArray().Select(Id));

        await (await scene.Project.Client.GetAsync("/v1/optimizers?limit=0")).AssertProblemAsync(400, "invalid_limit");
        await (await scene.Project.Client.GetAsync($"/v1/optimizers?after={scene.P}")).AssertProblemAsync(400, "invalid_cursor");
    }

    [Fact]
    public async Task Delete_RemovesTheOptimizer_AndKeepsItsParameters()
    {
        var scene = await SceneAsync();
        var id = Id(await CreateAsync(scene, scene.P, scene.Q));

        using var deleted = await scene.Project.Client.DeleteAsync($"/v1/optimizers/{id}");

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        await (await scene.Project.Client.GetAsync($"/v1/optimizers/{id}")).AssertProblemAsync(404, "optimizer_not_found");
        await (await scene.Project.Client.DeleteAsync($"/v1/optimizers/{id}")).AssertProblemAsync(404, "optimizer_not_found");
        await AssertNoOptimizersAsync(scene.Project);
        Assert.Equal("You are a helpful assistant.", (await scene.Project.Client.GetJsonAsync($"/v1/variables/{scene.P}")).GetProperty("data").GetString());
        // Its parameters are free again: a new optimizer may take them.
        await CreateAsync(scene, scene.P, scene.Q);
    }

    // ---- param_groups ----

    [Fact]
    public async Task AddParamGroup_FillsTheNewGroupWithTheDefaults()
    {
        var scene = await SceneAsync();
        var created = await scene.Project.Client.PostJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            momentum = 3,
            constraints = new[] { "No emojis." },
            @params = new[] { scene.P },
        });
        var id = Id(created);

        using var response = await scene.Project.Client.PostAsJsonAsync($"/v1/optimizers/{id}/param_groups",
            new { @params = new[] { scene.Q }, completion_args = new { temperature = 1 } });
        var group = await HttpJson.EnsureSuccessAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal([scene.Q], Strings(group.GetProperty("params")));
        Assert.Equal(scene.Model, group.GetProperty("model_id").GetString());
        Assert.Equal(JsonValueKind.Null, group.GetProperty("messages").ValueKind);
        Assert.Equal("{}", group.GetProperty("inputs").GetRawText());
        Assert.Equal("""["No emojis."]""", group.GetProperty("constraints").GetRawText());
        Assert.Equal(3, group.GetProperty("momentum").GetInt32());
        Assert.Equal("""{"temperature":1}""", group.GetProperty("completion_args").GetRawText());

        var fetched = await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}");
        var groups = fetched.GetProperty("param_groups");
        Assert.Equal(2, groups.GetArrayLength());
        Assert.Equal(created.GetProperty("param_groups")[0].GetRawText(), groups[0].GetRawText());
        Assert.Equal(group.GetRawText(), groups[1].GetRawText());
        Assert.Equal(created.GetProperty("defaults").GetRawText(), fetched.GetProperty("defaults").GetRawText());
        Assert.Equal([0, 1], (await StateDictAsync(scene.Project, id)).GetProperty("param_groups")
            .EnumerateArray().SelectMany(g => g.GetProperty("params").EnumerateArray()).Select(i => i.GetInt32()));
    }

    [Fact]
    public async Task AddParamGroup_RefusesBadGroups_AndChangesNothing()
    {
        var scene = await SceneAsync();
        var other = await SceneAsync();
        var id = Id(await CreateAsync(scene, scene.P));
        var before = (await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetRawText();

        var cases = new (object Body, int Status, string Code, string Param)[]
        {
            (new { @params = new[] { scene.P } }, 400, "duplicate_parameter", "params[0]"),
            (new { @params = new[] { scene.Q, scene.Q } }, 400, "duplicate_parameter", "params[1]"),
            (new { @params = Array.Empty<string>() }, 400, "empty_parameter_list", "params"),
            (new { momentum = 1 }, 400, "empty_parameter_list", "params"),
            (new { @params = new[] { scene.N } }, 400, "not_a_parameter", "params[0]"),
            (new { @params = new[] { scene.X } }, 400, "unsupported_parameter_type", "params[0]"),
            (new { @params = new[] { "nope" } }, 400, "invalid_id", "params[0]"),
            (new { @params = new[] { UnknownVariable } }, 404, "variable_not_found", "params[0]"),
            (new { @params = new[] { other.P } }, 404, "variable_not_found", "params[0]"),
            (new { @params = new[] { scene.Q }, model_id = UnknownModel }, 404, "model_not_found", "model_id"),
            (new { @params = new[] { scene.Q }, model_id = other.Model }, 404, "model_not_found", "model_id"),
            (new { @params = new[] { scene.Q }, momentum = -1 }, 400, "invalid_momentum", "momentum"),
            (new { @params = new[] { scene.Q }, completion_args = new { stream = true } }, 400, "unsupported_argument", "completion_args.stream"),
            (new { @params = new[] { scene.Q }, inputs = new { feedback = "x" } }, 400, "reserved_input", "inputs.feedback"),
            (new { @params = new[] { scene.Q }, messages = Array.Empty<object>() }, 400, "invalid_messages", "messages"),
            (new { @params = new[] { scene.Q }, type = "tgd" }, 400, "unknown_field", "type"),
        };
        foreach (var (body, status, code, param) in cases)
        {
            using var response = await scene.Project.Client.PostAsJsonAsync($"/v1/optimizers/{id}/param_groups", body);
            var problem = await response.AssertProblemAsync(status, code);
            Assert.Equal(param, problem.GetProperty("param").GetString());
        }

        using var malformed = await scene.Project.Client.SendRawAsync(HttpMethod.Post, $"/v1/optimizers/{id}/param_groups", "{\"params\": [");
        await malformed.AssertProblemAsync(400, "invalid_json");
        Assert.Equal(before, (await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetRawText());
    }

    [Fact]
    public async Task AddParamGroup_RefusesAParameterOfAnotherGroup_WithAfniosWording()
    {
        var scene = await SceneAsync();
        var id = Id(await CreateAsync(scene, scene.P));

        using var response = await scene.Project.Client.PostAsJsonAsync($"/v1/optimizers/{id}/param_groups", new { @params = new[] { scene.Q, scene.P } });

        var problem = await response.AssertProblemAsync(400, "duplicate_parameter");
        Assert.Equal("some parameters appear in more than one parameter group", problem.GetProperty("detail").GetString());
        Assert.Equal("params[1]", problem.GetProperty("param").GetString());
        Assert.Single((await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetProperty("param_groups").EnumerateArray());
    }

    // ---- clear_grad ----

    [Fact]
    public async Task ClearGrad_EmptiesTheGradientsOfEveryParameter_AndOnlyThose()
    {
        var scene = await SceneAsync();
        var third = await ParameterAsync(scene.Project, "third", "prompt");
        var outside = await ParameterAsync(scene.Project, "not optimized", "prompt");
        var created = await scene.Project.Client.PostJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            param_groups = new object[] { new { @params = new[] { scene.P } }, new { @params = new[] { scene.Q, third } } },
        });
        var id = Id(created);
        await AppendGradAsync(scene.Project, scene.P, "Be shorter.");
        await AppendGradAsync(scene.Project, scene.P, "Be friendlier.");
        await AppendGradAsync(scene.Project, scene.Q, "Mention the deadline.");
        await AppendGradAsync(scene.Project, outside, "Kept.");

        using var response = await scene.Project.Client.PostAsync($"/v1/optimizers/{id}/clear_grad", null);
        var cleared = await HttpJson.EnsureSuccessAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("optimizer.clear_grad", cleared.GetProperty("object").GetString());
        Assert.Equal("Gradients cleared successfully.", cleared.GetProperty("message").GetString());
        Assert.Equal(3, cleared.GetProperty("parameters").GetInt32());
        Assert.Equal(3, cleared.GetProperty("gradients_removed").GetInt32());
        foreach (var parameter in new[] { scene.P, scene.Q, third })
        {
            Assert.Empty((await scene.Project.GradListAsync(parameter)).EnumerateArray());
            Assert.Empty((await scene.Project.Client.GetJsonAsync($"/v1/variables/{parameter}")).GetProperty("grad").EnumerateArray());
        }

        Assert.Equal(["Kept."], await scene.Project.GradTextsAsync(outside));

        using var again = await scene.Project.Client.PostAsync($"/v1/optimizers/{id}/clear_grad", null);
        Assert.Equal(0, (await HttpJson.EnsureSuccessAsync(again)).GetProperty("gradients_removed").GetInt32());
    }

    // ---- state_dict ----

    [Fact]
    public async Task StateDict_OfAFreshOptimizer_NumbersParametersAcrossGroups()
    {
        var scene = await SceneAsync();
        var third = await ParameterAsync(scene.Project, "third", "prompt");
        var created = await scene.Project.Client.PostJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            momentum = 2,
            param_groups = new object[] { new { @params = new[] { scene.P, scene.Q } }, new { @params = new[] { third }, constraints = new[] { "Short." } } },
        });
        var id = Id(created);

        var stateDict = await StateDictAsync(scene.Project, id);

        Assert.Equal("optimizer.state_dict", stateDict.GetProperty("object").GetString());
        Assert.Equal(id, stateDict.GetProperty("optimizer_id").GetString());
        Assert.Equal("{}", stateDict.GetProperty("state").GetRawText());
        var groups = stateDict.GetProperty("param_groups");
        Assert.Equal(2, groups.GetArrayLength());
        Assert.Equal("[0,1]", groups[0].GetProperty("params").GetRawText());
        Assert.Equal("[2]", groups[1].GetProperty("params").GetRawText());
        for (var g = 0; g < 2; g++)
        {
            var group = created.GetProperty("param_groups")[g];
            foreach (var name in new[] { "model_id", "messages", "inputs", "constraints", "momentum", "completion_args" })
            {
                Assert.Equal(group.GetProperty(name).GetRawText(), groups[g].GetProperty(name).GetRawText());
            }
        }

        Assert.Equal("""["Short."]""", groups[1].GetProperty("constraints").GetRawText());
        Assert.Equal(2, groups[1].GetProperty("momentum").GetInt32());
    }

    /// <summary>
    /// The optimizer has one group [{P}, {Q}] with momentum 2. Placeholders: {S} and {G} existing
    /// variables (a snapshot and a gradient), {U} an unknown variable id, {UM} an unknown model id.
    /// </summary>
    [Theory]
    [InlineData("""{"state": {}, "param_groups": []}""", 400, "state_dict_group_count", "param_groups")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 1]}, {"params": [2]}]}""", 400, "state_dict_group_count", "param_groups")]
    [InlineData("""{"state": {}}""", 400, "missing_field", "param_groups")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0]}]}""", 400, "state_dict_group_size", "param_groups[0].params")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 1, 2]}]}""", 400, "state_dict_group_size", "param_groups[0].params")]
    [InlineData("""{"state": {}, "param_groups": [{"momentum": 1}]}""", 400, "state_dict_group_size", "param_groups[0].params")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 0]}]}""", 400, "duplicate_parameter", "param_groups[0].params[1]")]
    [InlineData("""{"state": {}, "param_groups": [{"params": ["a", "b"]}]}""", 400, "invalid_type", "param_groups[0].params[0]")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 1], "momentum": 101}]}""", 400, "invalid_momentum", "param_groups[0].momentum")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 1], "model_id": "{UM}"}]}""", 404, "model_not_found", "param_groups[0].model_id")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 1], "completion_args": {"stream": true}}]}""", 400, "unsupported_argument", "param_groups[0].completion_args.stream")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 1], "inputs": {"feedback": "x"}}]}""", 400, "reserved_input", "param_groups[0].inputs.feedback")]
    [InlineData("""{"state": {"x": {}}, "param_groups": [{"params": [0, 1]}]}""", 400, "unknown_parameter_index", "state.x")]
    [InlineData("""{"state": {"2": {}}, "param_groups": [{"params": [0, 1]}]}""", 400, "unknown_parameter_index", "state.2")]
    [InlineData("""{"state": {"-1": {}}, "param_groups": [{"params": [0, 1]}]}""", 400, "unknown_parameter_index", "state.-1")]
    [InlineData("""{"state": {"01": {}}, "param_groups": [{"params": [0, 1]}]}""", 400, "unknown_parameter_index", "state.01")]
    [InlineData("""{"state": {"0": {"momentum_buffer": [{"snapshot_id": "{S}", "gradient_ids": ["{G}"]}, {"snapshot_id": "{S}", "gradient_ids": []}]}}, "param_groups": [{"params": [0, 1], "momentum": 1}]}""", 400, "momentum_buffer_too_long", "state.0.momentum_buffer")]
    [InlineData("""{"state": {"1": {"momentum_buffer": [{"snapshot_id": "{S}", "gradient_ids": ["{G}"]}]}}, "param_groups": [{"params": [0, 1], "momentum": 0}]}""", 400, "momentum_buffer_too_long", "state.1.momentum_buffer")]
    [InlineData("""{"state": {"0": {"momentum_buffer": [{"snapshot_id": "{U}", "gradient_ids": ["{G}"]}]}}, "param_groups": [{"params": [0, 1]}]}""", 404, "variable_not_found", "state.0.momentum_buffer[0].snapshot_id")]
    [InlineData("""{"state": {"0": {"momentum_buffer": [{"snapshot_id": "{S}", "gradient_ids": ["{G}", "{U}"]}]}}, "param_groups": [{"params": [0, 1]}]}""", 404, "variable_not_found", "state.0.momentum_buffer[0].gradient_ids[1]")]
    [InlineData("""{"state": {"0": {"momentum_buffer": [{"snapshot_id": "nope", "gradient_ids": []}]}}, "param_groups": [{"params": [0, 1]}]}""", 400, "invalid_id", "state.0.momentum_buffer[0].snapshot_id")]
    [InlineData("""{"state": {"0": {"momentum_buffer": [{"snapshot_id": "{S}"}]}}, "param_groups": [{"params": [0, 1]}]}""", 400, "missing_field", "state.0.momentum_buffer[0].gradient_ids")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 1]}], "lr": 1}""", 400, "unknown_field", "lr")]
    [InlineData("""{"state": {}, "param_groups": [{"params": [0, 1]}""", 400, "invalid_json", null)]
    public async Task LoadStateDict_RefusesBadStateDicts_AndLeavesTheOptimizerUnchanged(string body, int status, string code, string? param)
    {
        var scene = await SceneAsync();
        var id = Id(await scene.Project.Client.PostJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, momentum = 2, @params = new[] { scene.P, scene.Q } }));
        var snapshot = await scene.Project.VariableAsync("old value", "snapshot");
        var gradient = await scene.Project.VariableAsync("Be shorter.", "gradient");
        // A loaded buffer, so a refused load visibly keeps it.
        await scene.Project.Client.PutJsonAsync($"/v1/optimizers/{id}/state_dict", new
        {
            state = new Dictionary<string, object> { ["1"] = new { momentum_buffer = new[] { new { snapshot_id = snapshot, gradient_ids = new[] { gradient } } } } },
            param_groups = new[] { new { @params = new[] { 0, 1 } } },
        });
        var before = (await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetRawText();
        var stateDictBefore = (await StateDictAsync(scene.Project, id)).GetRawText();

        var raw = scene.Fill(body).Replace("{S}", snapshot, StringComparison.Ordinal).Replace("{G}", gradient, StringComparison.Ordinal);
        using var response = await scene.Project.Client.SendRawAsync(HttpMethod.Put, $"/v1/optimizers/{id}/state_dict", raw);

        var problem = await response.AssertProblemAsync(status, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        Assert.Equal(before, (await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetRawText());
        Assert.Equal(stateDictBefore, (await StateDictAsync(scene.Project, id)).GetRawText());
    }

    [Fact]
    public async Task LoadStateDict_RefusesMismatchedGroups_WithAfniosWording()
    {
        var scene = await SceneAsync();
        var id = Id(await CreateAsync(scene, scene.P, scene.Q));

        using var count = await scene.Project.Client.PutAsJsonAsync($"/v1/optimizers/{id}/state_dict",
            new { state = new { }, param_groups = new[] { new { @params = new[] { 0, 1 } }, new { @params = new[] { 2 } } } });
        var problem = await count.AssertProblemAsync(400, "state_dict_group_count");
        Assert.Equal("Loaded state dict has a different number of parameter groups.", problem.GetProperty("detail").GetString());

        using var size = await scene.Project.Client.PutAsJsonAsync($"/v1/optimizers/{id}/state_dict",
            new { state = new { }, param_groups = new[] { new { @params = new[] { 0 } } } });
        problem = await size.AssertProblemAsync(400, "state_dict_group_size");
        Assert.Equal("Loaded state dict contains a parameter group that doesn't match the size of optimizer's group.",
            problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task LoadStateDict_RefusesVariablesOfAnotherProject()
    {
        var scene = await SceneAsync();
        var other = await SceneAsync();
        var id = Id(await scene.Project.Client.PostJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, momentum = 1, @params = new[] { scene.P } }));

        using var response = await scene.Project.Client.PutAsJsonAsync($"/v1/optimizers/{id}/state_dict", new
        {
            state = new Dictionary<string, object> { ["0"] = new { momentum_buffer = new[] { new { snapshot_id = other.N, gradient_ids = Array.Empty<string>() } } } },
            param_groups = new[] { new { @params = new[] { 0 } } },
        });

        var problem = await response.AssertProblemAsync(404, "variable_not_found");
        Assert.Equal("state.0.momentum_buffer[0].snapshot_id", problem.GetProperty("param").GetString());
        Assert.Empty((await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetProperty("state").EnumerateArray());
    }

    [Fact]
    public async Task LoadStateDict_ReplacesTheGroupSettings()
    {
        var scene = await SceneAsync();
        var secondModel = await app.RegisterModelAsync(scene.Project);
        var third = await ParameterAsync(scene.Project, "third", "prompt");
        var created = await scene.Project.Client.PostJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            momentum = 1,
            param_groups = new object[] { new { @params = new[] { scene.P, scene.Q } }, new { @params = new[] { third } } },
        });
        var id = Id(created);

        using var response = await scene.Project.Client.PutAsJsonAsync($"/v1/optimizers/{id}/state_dict", new
        {
            state = new { },
            param_groups = new object[]
            {
                new { @params = new[] { 0, 1 } },
                new { @params = new[] { 2 }, model_id = secondModel, momentum = 4, constraints = new[] { "Stay under 20 words." }, completion_args = new { temperature = 0.5 } },
            },
        });
        var loaded = await HttpJson.EnsureSuccessAsync(response);

        Assert.Equal("optimizer", loaded.GetProperty("object").GetString());
        var fetched = await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}");
        Assert.Equal(loaded.GetRawText(), fetched.GetRawText());
        var groups = fetched.GetProperty("param_groups");
        Assert.Equal(created.GetProperty("param_groups")[0].GetRawText(), groups[0].GetRawText());
        Assert.Equal([third], Strings(groups[1].GetProperty("params")));
        Assert.Equal(secondModel, groups[1].GetProperty("model_id").GetString());
        Assert.Equal(4, groups[1].GetProperty("momentum").GetInt32());
        Assert.Equal("""["Stay under 20 words."]""", groups[1].GetProperty("constraints").GetRawText());
        Assert.Equal("""{"temperature":0.5}""", groups[1].GetProperty("completion_args").GetRawText());
        Assert.Equal(created.GetProperty("defaults").GetRawText(), fetched.GetProperty("defaults").GetRawText());

        var stateDict = await StateDictAsync(scene.Project, id);
        Assert.Equal(4, stateDict.GetProperty("param_groups")[1].GetProperty("momentum").GetInt32());
        Assert.Equal(secondModel, stateDict.GetProperty("param_groups")[1].GetProperty("model_id").GetString());
    }

    [Fact]
    public async Task LoadStateDict_LoadsMomentumBuffers_IntoTheOptimizersState()
    {
        var scene = await SceneAsync();
        var id = Id(await scene.Project.Client.PostJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, momentum = 2, @params = new[] { scene.P, scene.Q } }));
        var snapshot = await ParameterAsync(scene.Project, "You are an assistant.", "system prompt");
        var gradients = new[]
        {
            await scene.Project.VariableAsync("Be warmer.", "feedback"),
            await scene.Project.VariableAsync("Be concise.", "feedback"),
        };

        await scene.Project.Client.PutJsonAsync($"/v1/optimizers/{id}/state_dict", new
        {
            state = new Dictionary<string, object> { ["0"] = new { momentum_buffer = new[] { new { snapshot_id = snapshot, gradient_ids = gradients } } } },
            param_groups = new[] { new { @params = new[] { 0, 1 } } },
        });

        var fetched = await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}");
        var state = Assert.Single(fetched.GetProperty("state").EnumerateArray());
        Assert.Equal(scene.P, state.GetProperty("param_id").GetString());
        var entry = Assert.Single(state.GetProperty("momentum_buffer").EnumerateArray());
        Assert.Equal(snapshot, entry.GetProperty("snapshot_id").GetString());
        Assert.Equal(gradients, Strings(entry.GetProperty("gradient_ids")));

        var stateDict = await StateDictAsync(scene.Project, id);
        var saved = Assert.Single(stateDict.GetProperty("state").EnumerateObject());
        Assert.Equal("0", saved.Name);
        var savedEntry = Assert.Single(saved.Value.GetProperty("momentum_buffer").EnumerateArray());
        Assert.Equal(snapshot, savedEntry.GetProperty("snapshot_id").GetString());
        Assert.Equal(gradients, Strings(savedEntry.GetProperty("gradient_ids")));

        // Loading a state dict without state forgets the buffers, as load_state_dict replaces the state.
        await scene.Project.Client.PutJsonAsync($"/v1/optimizers/{id}/state_dict",
            new { state = new { }, param_groups = new[] { new { @params = new[] { 0, 1 } } } });
        Assert.Empty((await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetProperty("state").EnumerateArray());
        Assert.Equal("{}", (await StateDictAsync(scene.Project, id)).GetProperty("state").GetRawText());
    }

    [Fact]
    public async Task LoadStateDict_OfWhatGetReturned_LeavesTheOptimizerUnchanged()
    {
        var scene = await SceneAsync();
        var third = await ParameterAsync(scene.Project, "third", "prompt");
        var known = await scene.Project.VariableAsync("Improve it using {feedback} and {myInput}.", "optimizer prompt");
        var id = Id(await scene.Project.Client.PostJsonAsync("/v1/optimizers", new
        {
            type = "tgd",
            model_id = scene.Model,
            momentum = 2,
            completion_args = new { model = "gpt-4o" },
            param_groups = new object[]
            {
                new { @params = new[] { scene.P, scene.Q }, constraints = new[] { "Short." } },
                new
                {
                    @params = new[] { third },
                    messages = new[] { new { role = "system", content = new[] { known } } },
                    inputs = new Dictionary<string, string> { ["myInput"] = "plain words" },
                },
            },
        }));
        var snapshot = await scene.Project.VariableAsync("older", "snapshot");
        await scene.Project.Client.PutJsonAsync($"/v1/optimizers/{id}/state_dict", new
        {
            state = new Dictionary<string, object> { ["2"] = new { momentum_buffer = new[] { new { snapshot_id = snapshot, gradient_ids = Array.Empty<string>() } } } },
            param_groups = new object[]
            {
                new { @params = new[] { 0, 1 }, constraints = new[] { "Short." } },
                new
                {
                    @params = new[] { 2 },
                    messages = new[] { new { role = "system", content = new[] { known } } },
                    inputs = new Dictionary<string, string> { ["myInput"] = "plain words" },
                },
            },
        });
        var before = (await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetRawText();
        var saved = System.Text.Json.Nodes.JsonNode.Parse((await StateDictAsync(scene.Project, id)).GetRawText())!.AsObject();
        Assert.Single(saved["state"]!.AsObject());

        // What GET returns loads back as it is, object and optimizer_id included (they are ignored).
        Assert.Equal("optimizer.state_dict", saved["object"]!.GetValue<string>());
        using var response = await scene.Project.Client.SendRawAsync(HttpMethod.Put, $"/v1/optimizers/{id}/state_dict", saved.ToJsonString());

        Assert.Equal(before, (await HttpJson.EnsureSuccessAsync(response)).GetRawText());
        Assert.Equal(before, (await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetRawText());
    }

    [Fact]
    public async Task LoadStateDict_MapsSavedIndicesInOrder_OntoTheOptimizersParameters()
    {
        var scene = await SceneAsync();
        var id = Id(await scene.Project.Client.PostJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, momentum = 1, @params = new[] { scene.P, scene.Q } }));
        var snapshot = await scene.Project.VariableAsync("older", "snapshot");

        // Saved indices 7 and 3 stand for the first and second parameter, whatever their numbers.
        await scene.Project.Client.PutJsonAsync($"/v1/optimizers/{id}/state_dict", new
        {
            state = new Dictionary<string, object> { ["3"] = new { momentum_buffer = new[] { new { snapshot_id = snapshot, gradient_ids = Array.Empty<string>() } } } },
            param_groups = new[] { new { @params = new[] { 7, 3 } } },
        });

        var state = Assert.Single((await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetProperty("state").EnumerateArray());
        Assert.Equal(scene.Q, state.GetProperty("param_id").GetString());
        var stateDict = await StateDictAsync(scene.Project, id);
        Assert.Equal("1", Assert.Single(stateDict.GetProperty("state").EnumerateObject()).Name);
        Assert.Equal("[0,1]", stateDict.GetProperty("param_groups")[0].GetProperty("params").GetRawText());
    }

    // ---- step ----

    [Fact]
    public async Task Step_WithoutGradients_KeepsEveryParameter_WithoutCallingAModel()
    {
        var scene = await SceneAsync();
        var id = Id(await CreateAsync(scene, scene.P, scene.Q));

        using var response = await scene.Project.Client.PostAsync($"/v1/optimizers/{id}/step", null);
        var job = await HttpJson.EnsureSuccessAsync(response);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var jobId = Id(job);
        Assert.Equal($"/v1/jobs/{jobId}", response.Headers.Location?.OriginalString);
        Assert.Equal("optimizer_step", job.GetProperty("type").GetString());
        var finished = await scene.Project.WaitForJobAsync(jobId);
        Assert.Equal("succeeded", finished.GetProperty("status").GetString());
        var result = finished.GetProperty("result");
        Assert.Equal("Optimizer step executed successfully.", result.GetProperty("message").GetString());
        Assert.Equal(id, result.GetProperty("optimizer_id").GetString());
        Assert.Equal(0, result.GetProperty("updated").GetInt32());
        Assert.Equal(0, result.GetProperty("kept").GetInt32());
        Assert.Equal(2, result.GetProperty("without_gradients").GetInt32());
        Assert.Empty(result.GetProperty("parameters").EnumerateArray());

        Assert.Equal("You are a helpful assistant.", (await scene.Project.Client.GetJsonAsync($"/v1/variables/{scene.P}")).GetProperty("data").GetString());
        Assert.Empty((await scene.Project.Client.GetJsonAsync($"/v1/optimizers/{id}")).GetProperty("state").EnumerateArray());
        // The finished step holds no lock: the optimizer can be changed and deleted.
        await scene.Project.Client.PutJsonAsync($"/v1/optimizers/{id}/state_dict", new { state = new { }, param_groups = new[] { new { @params = new[] { 0, 1 } } } });
        Assert.Equal(HttpStatusCode.NoContent, (await scene.Project.Client.DeleteAsync($"/v1/optimizers/{id}")).StatusCode);
    }

    // ---- helpers ----

    /// <summary>A fresh project with a model, two text parameters, a non-parameter and a parameter holding a number.</summary>
    private async Task<Scene> SceneAsync()
    {
        var project = await app.CreateProjectAsync();
        var model = await app.RegisterModelAsync(project);
        var p = await ParameterAsync(project, "You are a helpful assistant.", "system prompt");
        var q = await ParameterAsync(project, "Summarize the text.", "instruction prompt");
        var n = await project.VariableAsync("plain text", "not a parameter", requiresGrad: true);
        var x = await ParameterAsync(project, 3, "a number");
        return new Scene(project, model, p, q, n, x);
    }

    private static async Task<string> ParameterAsync(TestProject project, object data, string role)
    {
        var created = await project.Client.PostJsonAsync("/v1/variables", new { data, role, is_parameter = true });
        Assert.True(created.GetProperty("is_parameter").GetBoolean());
        Assert.True(created.GetProperty("requires_grad").GetBoolean());
        return Id(created);
    }

    private static async Task AppendGradAsync(TestProject project, string parameter, string text)
    {
        var gradient = await project.VariableAsync(text, "feedback");
        await project.Client.PostJsonAsync($"/v1/variables/{parameter}/grad", new { variable_id = gradient });
    }

    /// <summary>An optimizer over the given parameters (the scene's first one by default), with every default.</summary>
    private static Task<JsonElement> CreateAsync(Scene scene, params string[] parameters) =>
        scene.Project.Client.PostJsonAsync("/v1/optimizers",
            new { type = "tgd", model_id = scene.Model, @params = parameters.Length == 0 ? [scene.P] : parameters });

    private static Task<JsonElement> StateDictAsync(TestProject project, string id) =>
        project.Client.GetJsonAsync($"/v1/optimizers/{id}/state_dict");

    private static async Task AssertNoOptimizersAsync(TestProject project) =>
        Assert.Empty((await project.Client.GetJsonAsync("/v1/optimizers")).GetProperty("data").EnumerateArray());

    private static void AssertSettings(JsonElement settings, string model, int momentum)
    {
        Assert.Equal(model, settings.GetProperty("model_id").GetString());
        Assert.Equal(JsonValueKind.Null, settings.GetProperty("messages").ValueKind);
        Assert.Equal("{}", settings.GetProperty("inputs").GetRawText());
        Assert.Equal("""["Keep it polite."]""", settings.GetProperty("constraints").GetRawText());
        Assert.Equal(momentum, settings.GetProperty("momentum").GetInt32());
        Assert.Equal("""{"model":"gpt-4o","temperature":0}""", settings.GetProperty("completion_args").GetRawText());
    }

    private static string Id(JsonElement resource) => resource.GetProperty("id").GetString()!;

    private static List<string> Strings(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString()!)];

    private sealed record Scene(TestProject Project, string Model, string P, string Q, string N, string X)
    {
        /// <summary>Replaces the placeholders of a raw body with this scene's ids.</summary>
        public string Fill(string body) => new StringBuilder(body)
            .Replace("{UM}", UnknownModel).Replace("{U}", UnknownVariable).Replace("{M}", Model)
            .Replace("{P}", P).Replace("{Q}", Q).Replace("{N}", N).Replace("{X}", X)
            .ToString();
    }
}
