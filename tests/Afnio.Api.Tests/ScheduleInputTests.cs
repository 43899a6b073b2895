using System.Text.Json.Nodes;
using Hangfire;
using Microsoft.Extensions.DependencyInjection;

namespace Afnio.Api.Tests;

/// <summary>
/// Schedules check their cron, time zone and run template (exactly as POST /v1/runs would) when
/// they are made or changed: a mistake is a precise 400 or 404 that stores nothing, starts no run
/// and queues no job.
/// </summary>
public sealed class ScheduleInputTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    private const string UnknownSchedule = "sched_0000000000007000800000000000000a";

    [Fact]
    public async Task AValidSchedule_IsCreated_WithTheNextTwoOClockInRome_AndStartsNothing()
    {
        var (project, template) = await SetUpAsync();

        using var response = await project.Client.PostAsJsonAsync("/v1/schedules",
            new { name = "nightly", description = "train on the latest data", cron = "0 2 * * *", timezone = "Europe/Rome", run_template = template });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var schedule = await HttpJson.EnsureSuccessAsync(response);
        var id = schedule.GetProperty("id").GetString()!;
        Assert.StartsWith("sched_", id, StringComparison.Ordinal);
        Assert.Equal($"/v1/schedules/{id}", response.Headers.Location?.OriginalString);
        Assert.Equal("schedule", schedule.GetProperty("object").GetString());
        Assert.Equal("nightly", schedule.GetProperty("name").GetString());
        Assert.Equal("train on the latest data", schedule.GetProperty("description").GetString());
        Assert.Equal("0 2 * * *", schedule.GetProperty("cron").GetString());
        Assert.Equal("Europe/Rome", schedule.GetProperty("timezone").GetString());
        Assert.True(schedule.GetProperty("enabled").GetBoolean());
        Assert.False(schedule.GetProperty("allow_overlap").GetBoolean());
        Assert.Empty(schedule.GetProperty("recent_firings").EnumerateArray());
        var createdAt = schedule.GetProperty("created_at").GetInt64();
        Assert.Equal(NextTwoOClockInRome(createdAt), schedule.GetProperty("next_run_at").GetInt64());
        var echoed = WithoutNulls(JsonNode.Parse(schedule.GetProperty("run_template").GetRawText()));
        Assert.True(JsonNode.DeepEquals(template, echoed), $"the run template comes back as given: {echoed!.ToJsonString()}");

        var read = await project.Client.GetJsonAsync($"/v1/schedules/{id}");
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(schedule.GetRawText()), JsonNode.Parse(read.GetRawText())), $"GET differs from POST: {read}");
        Assert.Equal(id, Assert.Single((await project.Client.GetJsonAsync("/v1/schedules")).GetProperty("data").EnumerateArray()).GetProperty("id").GetString());
        // Checking the template made a run and a job in a transaction that was rolled back.
        await AssertNoRunsNorJobsAsync(project);
        Assert.Empty((await project.Client.GetJsonAsync($"/v1/schedules/{id}/firings")).GetProperty("data").EnumerateArray());
    }

    [Theory]
    [InlineData("* * * * *", 60)]
    [InlineData("0 * * * * *", 60)]
    [InlineData("  */5 * * * *  ", 300)]
    [InlineData("@hourly", 3600)]
    [InlineData("0\t*\t*\t*\t*", 3600)]
    [InlineData("0  0\t* * *", 86400)]
    public async Task EveryMinute_OrLessOften_IsAllowed(string cron, int seconds)
    {
        var (project, template) = await SetUpAsync();

        var schedule = await project.Client.PostJsonAsync("/v1/schedules", new { name = "often", cron, run_template = template });

        // Stored with its fields separated by single spaces.
        Assert.Equal(string.Join(' ', cron.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)), schedule.GetProperty("cron").GetString());
        Assert.Equal("UTC", schedule.GetProperty("timezone").GetString());
        var next = schedule.GetProperty("next_run_at").GetInt64();
        Assert.Equal(0, next % seconds);
        Assert.InRange(next - schedule.GetProperty("created_at").GetInt64(), 0, seconds);
    }

    public static TheoryData<string, string?, string, string> BadCrons => new()
    {
        // cron, timezone, code, param
        { "not a cron", null, "invalid_cron", "cron" },
        { "61 * * * *", null, "invalid_cron", "cron" },
        { "* 24 * * *", null, "invalid_cron", "cron" },
        { "* * * * * * *", null, "invalid_cron", "cron" },
        { "* * * *", null, "invalid_cron", "cron" },
        { "", null, "invalid_cron", "cron" },
        { "   ", null, "invalid_cron", "cron" },
        { "@sometimes", null, "invalid_cron", "cron" },
        { "0 0 30 2 *", null, "invalid_cron", "cron" },
        { "0 2 * * * " + new string(' ', 200), null, "invalid_cron", "cron" },
        { "*/10\t*\t*\t*\t*\t*", null, "schedule_too_frequent", "cron" },
        { "*/10 * * * * *", null, "schedule_too_frequent", "cron" },
        { "* * * * * *", null, "schedule_too_frequent", "cron" },
        { "0,30 * * * * *", null, "schedule_too_frequent", "cron" },
        { "@every_second", null, "schedule_too_frequent", "cron" },
        { "0 2 * * *", "Mars/Olympus", "invalid_timezone", "timezone" },
        { "0 2 * * *", "", "invalid_timezone", "timezone" },
        { "0 2 * * *", "europe/rome ", "invalid_timezone", "timezone" },
        { "0 2 * * *", "W. Europe Standard Time", "invalid_timezone", "timezone" },
        { "0 2 * * *", "../../../../etc/passwd", "invalid_timezone", "timezone" },
        { "0 2 * * *", "Europe/Rome\u0000", "invalid_timezone", "timezone" },
        { "0 2 * * *", new string('A', 101), "invalid_timezone", "timezone" },
    };

    [Theory]
    [MemberData(nameof(BadCrons))]
    public async Task ABadCronOrTimeZone_IsA400_AndStoresNothing(string cron, string? timezone, string code, string param)
    {
        var (project, template) = await SetUpAsync();

        using var response = await project.Client.PostAsJsonAsync("/v1/schedules", new { name = "bad", cron, timezone, run_template = template });

        var problem = await response.AssertProblemAsync(400, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        if (code == "invalid_timezone")
        {
            // The problem names the zone it could not find, as given, or says it is too long; never another zone.
            var detail = problem.GetProperty("detail").GetString()!;
            Assert.True(detail.Contains($"'{timezone}'", StringComparison.Ordinal) || detail.Contains("100 characters", StringComparison.Ordinal), detail);
        }

        await AssertNothingStoredAsync(project);
    }

    public static TheoryData<string, string, string?> BadBodies => new()
    {
        // raw body ($template = a valid run template), code, param
        { "{\"cron\": \"0 2 * * *\", \"run_template\": $template}", "missing_field", "name" },
        { "{\"name\": \"n\", \"run_template\": $template}", "missing_field", "cron" },
        { "{\"name\": \"n\", \"cron\": \"0 2 * * *\"}", "missing_field", "run_template" },
        { "{\"name\": \"\", \"cron\": \"0 2 * * *\", \"run_template\": $template}", "invalid_name", "name" },
        { "{\"name\": \"a\\u0000b\", \"cron\": \"0 2 * * *\", \"run_template\": $template}", "invalid_name", "name" },
        { "{\"name\": \"$long\", \"cron\": \"0 2 * * *\", \"run_template\": $template}", "invalid_name", "name" },
        { "{\"name\": \"n\", \"description\": \"\", \"cron\": \"0 2 * * *\", \"run_template\": $template}", "invalid_description", "description" },
        { "{\"name\": \"n\", \"cron\": 2, \"run_template\": $template}", "invalid_type", "cron" },
        { "{\"name\": \"n\", \"cron\": \"0 2 * * *\", \"run_template\": \"nightly training\"}", "invalid_type", "run_template" },
        { "{\"name\": \"n\", \"cron\": \"0 2 * * *\", \"run_template\": [$template]}", "invalid_type", "run_template" },
        { "{\"name\": \"n\", \"cron\": \"0 2 * * *\", \"run_template\": $template, \"enabled\": \"yes\"}", "invalid_type", "enabled" },
        { "{\"name\": \"n\", \"cron\": \"0 2 * * *\", \"run_template\": $template, \"allow_overlap\": 1}", "invalid_type", "allow_overlap" },
        { "{\"name\": \"n\", \"cron\": \"0 2 * * *\", \"run_template\": $template, \"next_run_at\": 1}", "unknown_field", "next_run_at" },
        { "{\"name\": \"n\", \"cron\": \"0 2 * * *\", \"run_template\": $template", "invalid_json", null },
        { "", "invalid_request", null },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task ABadBody_IsA400WithAStableCode_AndStoresNothing(string body, string code, string? param)
    {
        var (project, template) = await SetUpAsync();
        var raw = body.Replace("$template", template.ToJsonString(), StringComparison.Ordinal).Replace("$long", new string('n', 181), StringComparison.Ordinal);

        using var response = await project.Client.SendRawAsync(HttpMethod.Post, "/v1/schedules", raw);

        var problem = await response.AssertProblemAsync(400, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        await AssertNothingStoredAsync(project);
    }

    public static TheoryData<string, string, int, string, string> BadTemplates => new()
    {
        // what, edit of the run template ("path=json"; null removes), status, code, param
        { "no program", "program_id=null", 400, "missing_field", "run_template.program_id" },
        { "a pinned version", "dataset.version=1", 400, "invalid_run_template", "run_template.dataset.version" },
        { "a pinned split version", "dataset.split.version=1", 400, "invalid_run_template", "run_template.dataset.version" },
        { "item ids", "dataset={\"id\":\"$dataset\",\"splits\":{\"train\":[]}}", 400, "invalid_run_template", "run_template.dataset.splits" },
        { "an unknown program", "program_id=\"prg_0000000000007000800000000000000a\"", 404, "program_not_found", "run_template.program_id" },
        { "a malformed program id", "program_id=\"nope\"", 404, "program_not_found", "run_template.program_id" },
        { "no dataset", "dataset=null", 400, "missing_field", "run_template.dataset.id" },
        { "an unknown dataset", "dataset.id=\"ds_0000000000007000800000000000000a\"", 404, "dataset_not_found", "run_template.dataset.id" },
        { "an unknown model", "models.forward=\"mdl_0000000000007000800000000000000a\"", 404, "model_not_found", "run_template.models.forward" },
        { "an unknown optimizer model", "models.optimizer=\"nope\"", 404, "model_not_found", "run_template.models.optimizer" },
        { "no forward model", "models={\"backward\":\"$model\"}", 400, "missing_model", "run_template.models.forward" },
        { "zero epochs", "epochs=0", 400, "invalid_epochs", "run_template.epochs" },
        { "a string for epochs", "epochs=\"2\"", 400, "invalid_type", "run_template.epochs" },
        { "a huge batch", "batch_size=5000", 400, "invalid_batch_size", "run_template.batch_size" },
        { "a status", "status=\"completed\"", 400, "invalid_status", "run_template.status" },
        { "a negative budget", "max_cost_usd=-1", 400, "invalid_max_cost_usd", "run_template.max_cost_usd" },
        { "an unknown sampler", "sampler={\"type\":\"shuffled\"}", 400, "invalid_sampler", "run_template.sampler.type" },
        { "weights of the wrong length", "sampler={\"type\":\"weighted\",\"weights\":[1,2]}", 400, "invalid_weights", "run_template.sampler.weights" },
        { "a negative weight", $"sampler={{\"type\":\"weighted\",\"weights\":[-1{string.Concat(Enumerable.Repeat(",1", 65))}]}}", 400, "invalid_sampler", "run_template.sampler.weights" },
        { "a bad label field", "sampler={\"type\":\"weighted\",\"label_field\":\"fields..x\"}", 400, "invalid_program", "run_template.sampler.label_field" },
        { "a momentum out of range", "optimizer={\"momentum\":101}", 400, "invalid_momentum", "run_template.optimizer.momentum" },
        { "an unknown select metric", "select_metric=\"f1\"", 400, "invalid_select_metric", "run_template.select_metric" },
        { "an unknown checkpoint", "from_checkpoint_id=\"ckpt_0000000000007000800000000000000a\"", 404, "checkpoint_not_found", "run_template.from_checkpoint_id" },
        { "an unknown field", "colour=\"red\"", 400, "unknown_field", "run_template.colour" },
    };

    [Theory]
    [MemberData(nameof(BadTemplates))]
    public async Task ABadRunTemplate_IsRefused_AndStoresNothing_StartsNoRun_QueuesNoJob(string what, string edit, int status, string code, string param)
    {
        var (project, template) = await SetUpAsync();
        var dataset = template["dataset"]!["id"]!.GetValue<string>();
        var model = template["models"]!["forward"]!.GetValue<string>();
        var edited = Edit(template, edit.Replace("$dataset", dataset, StringComparison.Ordinal).Replace("$model", model, StringComparison.Ordinal));

        using var response = await project.Client.PostAsJsonAsync("/v1/schedules", new { name = what, cron = "0 2 * * *", run_template = edited });

        var problem = await response.AssertProblemAsync(status, code);
        Assert.True(param == problem.GetProperty("param").GetString(), $"{what}: expected param {param}: {problem}");
        await AssertNothingStoredAsync(project);
    }

    [Theory]
    [InlineData("program_id", "program_not_found", "run_template.program_id")]
    [InlineData("models", "model_not_found", "run_template.models.forward")]
    [InlineData("dataset", "dataset_not_found", "run_template.dataset.id")]
    public async Task AnotherProjectsProgramDatasetOrModel_Is404_AndStoresNothing(string field, string code, string param)
    {
        var (project, template) = await SetUpAsync();
        var (other, theirs) = await SetUpAsync();
        var edited = template.DeepClone().AsObject();
        edited[field] = theirs[field]!.DeepClone();

        using var response = await project.Client.PostAsJsonAsync("/v1/schedules", new { name = "borrowed", cron = "0 2 * * *", run_template = edited });

        var problem = await response.AssertProblemAsync(404, code);
        Assert.True(param == problem.GetProperty("param").GetString(), $"{field}: expected param {param}: {problem}");
        await AssertNothingStoredAsync(project);
        await AssertNothingStoredAsync(other);
    }

    [Fact]
    public async Task DisablingAndEnabling_ClearsAndRestoresTheNextRun_AndBadChangesAreRefusedWhole()
    {
        var (project, template) = await SetUpAsync();
        var created = await project.Client.PostJsonAsync("/v1/schedules", new { name = "nightly", cron = "0 2 * * *", timezone = "Europe/Rome", run_template = template });
        var id = created.GetProperty("id").GetString()!;

        var disabled = await PatchAsync(project, id, new { enabled = false });
        Assert.False(disabled.GetProperty("enabled").GetBoolean());
        Assert.Equal(JsonValueKind.Null, disabled.GetProperty("next_run_at").ValueKind);
        Assert.Equal(JsonValueKind.Null, (await project.Client.GetJsonAsync($"/v1/schedules/{id}")).GetProperty("next_run_at").ValueKind);

        var enabled = await PatchAsync(project, id, new { enabled = true });
        Assert.True(enabled.GetProperty("enabled").GetBoolean());
        Assert.Equal(NextTwoOClockInRome(enabled.GetProperty("updated_at").GetInt64()), enabled.GetProperty("next_run_at").GetInt64());

        var before = await project.Client.GetJsonAsync($"/v1/schedules/{id}");
        foreach (var (body, code, param) in new (object Body, string Code, string Param)[]
        {
            (new { cron = "61 * * * *" }, "invalid_cron", "cron"),
            (new { cron = "*/10 * * * * *" }, "schedule_too_frequent", "cron"),
            (new { timezone = "Mars/Olympus" }, "invalid_timezone", "timezone"),
            (new { name = "" }, "invalid_name", "name"),
            // Nothing of a refused change is kept, not even its valid parts.
            (new { enabled = false, name = "renamed", cron = "not a cron" }, "invalid_cron", "cron"),
            (new { enabled = false, cron = "0 3 * * *", run_template = Edit(template, "dataset.version=1") }, "invalid_run_template", "run_template.dataset.version"),
            (new { name = "renamed", run_template = Edit(template, "epochs=0") }, "invalid_epochs", "run_template.epochs"),
        })
        {
            using var response = await project.Client.PatchAsJsonAsync($"/v1/schedules/{id}", body);
            var problem = await response.AssertProblemAsync(400, code);
            Assert.Equal(param, problem.GetProperty("param").GetString());
            Assert.Equal(before.GetRawText(), (await project.Client.GetJsonAsync($"/v1/schedules/{id}")).GetRawText());
        }

        using (var wrongType = await project.Client.SendRawAsync(HttpMethod.Patch, $"/v1/schedules/{id}", "{\"enabled\": \"no\"}"))
        {
            Assert.Equal("enabled", (await wrongType.AssertProblemAsync(400, "invalid_type")).GetProperty("param").GetString());
        }

        Assert.Equal(before.GetRawText(), (await project.Client.GetJsonAsync($"/v1/schedules/{id}")).GetRawText());
        await AssertNoRunsNorJobsAsync(project);
    }

    [Fact]
    public async Task ADeletedSchedule_Is404_Everywhere()
    {
        var (project, template) = await SetUpAsync();
        var id = (await project.Client.PostJsonAsync("/v1/schedules", new { name = "short-lived", cron = "0 2 * * *", run_template = template })).GetProperty("id").GetString()!;

        using (var deleted = await project.Client.DeleteAsync($"/v1/schedules/{id}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        await AssertScheduleRoutesAre404Async(project, id);
        await AssertNothingStoredAsync(project);
    }

    [Theory]
    [InlineData(UnknownSchedule)]
    [InlineData("not-an-id")]
    [InlineData("we_0000000000007000800000000000000a")]
    [InlineData("SCHED_0000000000007000800000000000000A")]
    public async Task UnknownOrMalformedScheduleIds_Are404_OnEveryRoute(string id)
    {
        var project = await NewProjectAsync();
        await AssertScheduleRoutesAre404Async(project, id);
        Assert.Empty((await project.Client.GetJsonAsync("/v1/schedules")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task AnotherProjectsSchedule_Is404_OnEveryRoute_AndIsNeitherChangedNorFired()
    {
        var (other, template) = await SetUpAsync();
        var project = await NewProjectAsync();
        var id = (await other.Client.PostJsonAsync("/v1/schedules", new { name = "theirs", cron = "0 2 * * *", run_template = template })).GetProperty("id").GetString()!;
        var before = await other.Client.GetJsonAsync($"/v1/schedules/{id}");

        await AssertScheduleRoutesAre404Async(project, id);

        Assert.Equal(before.GetRawText(), (await other.Client.GetJsonAsync($"/v1/schedules/{id}")).GetRawText());
        Assert.Empty((await other.Client.GetJsonAsync($"/v1/schedules/{id}/firings")).GetProperty("data").EnumerateArray());
        await AssertNoRunsNorJobsAsync(other);
        await AssertNothingStoredAsync(project);
    }

    private static async Task AssertScheduleRoutesAre404Async(TestProject project, string id)
    {
        foreach (var (method, path, body) in new (string, string, string?)[]
        {
            ("GET", $"/v1/schedules/{id}", null),
            ("PATCH", $"/v1/schedules/{id}", "{\"enabled\": false}"),
            ("PATCH", $"/v1/schedules/{id}", "{\"cron\": \"not a cron\"}"),
            ("DELETE", $"/v1/schedules/{id}", null),
            ("POST", $"/v1/schedules/{id}/trigger", "{}"),
            ("POST", $"/v1/schedules/{id}/trigger", null),
            ("GET", $"/v1/schedules/{id}/firings", null),
        })
        {
            using var response = await project.Client.SendRawAsync(new HttpMethod(method), path, body);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{method} {path} {body}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            var problem = await response.AssertProblemAsync(404, "schedule_not_found");
            Assert.True(problem.GetProperty("param").GetString() == "id", $"{method} {path}: {problem}");
        }
    }

    /// <summary>
    /// A fresh project. First makes this host's Hangfire client and recurring-job manager: Hangfire keeps
    /// its log provider process-wide, set by the host that built its configuration last, and a client
    /// first made after that host was disposed (another test class's, running in parallel) throws
    /// ObjectDisposedException, which POST /v1/schedules/{id}/trigger would answer with a 500. A real
    /// process has only one host.
    /// </summary>
    private Task<TestProject> NewProjectAsync()
    {
        _ = app.Services.GetRequiredService<IBackgroundJobClient>();
        _ = app.Services.GetRequiredService<IRecurringJobManager>();
        return app.CreateProjectAsync();
    }

    /// <summary>A project with the Facility dataset, program and a model, and a valid template over them.</summary>
    private async Task<(TestProject Project, JsonObject Template)> SetUpAsync()
    {
        var project = await NewProjectAsync();
        var (dataset, program, model) = await FacilityTraining.SetUpAsync(project, RegisterModelAsync);
        var template = JsonSerializer.SerializeToNode(FacilityTraining.RunBody(program, dataset, model))!.AsObject();
        // A schedule trains on the latest version at each firing: its template names no version.
        Assert.False(template["dataset"]!.AsObject().ContainsKey("version"));
        Assert.False(template["dataset"]!["split"]!.AsObject().ContainsKey("version"));
        Assert.False(template["dataset"]!.AsObject().ContainsKey("splits"));
        return (project, template);
    }

    /// <summary>
    /// A model client on a host name: never called here (no worker runs), and unlike a private
    /// address written as such it needs no Afnio__Models__AllowPrivateAddresses.
    /// </summary>
    private static async Task<string> RegisterModelAsync(TestProject project) =>
        (await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = "https://models.example.com/v1",
            api_key = "sk-x",
            default_completion_args = new { model = "gpt-4o" },
        })).GetProperty("id").GetString()!;

    private static async Task<JsonElement> PatchAsync(TestProject project, string id, object body)
    {
        using var response = await project.Client.PatchAsJsonAsync($"/v1/schedules/{id}", body);
        return await HttpJson.EnsureSuccessAsync(response);
    }

    private static async Task AssertNothingStoredAsync(TestProject project)
    {
        Assert.Empty((await project.Client.GetJsonAsync("/v1/schedules")).GetProperty("data").EnumerateArray());
        await AssertNoRunsNorJobsAsync(project);
    }

    private static async Task AssertNoRunsNorJobsAsync(TestProject project)
    {
        Assert.Empty((await project.Client.GetJsonAsync("/v1/runs")).GetProperty("data").EnumerateArray());
        Assert.Empty((await project.Client.GetJsonAsync("/v1/jobs")).GetProperty("data").EnumerateArray());
        Assert.Empty((await project.Client.GetJsonAsync("/v1/events")).GetProperty("data").EnumerateArray());
    }

    /// <summary>
    /// The first 02:00 in Europe/Rome strictly after <paramref name="afterUnix"/>, worked out with
    /// TimeZoneInfo alone: a skipped 02:00 (spring) fires at 03:00, a repeated one (autumn) at its first occurrence.
    /// </summary>
    private static long NextTwoOClockInRome(long afterUnix)
    {
        var zone = TimeZoneInfo.FindSystemTimeZoneById("Europe/Rome");
        var after = DateTimeOffset.FromUnixTimeSeconds(afterUnix);
        for (var day = TimeZoneInfo.ConvertTime(after, zone).Date.AddDays(-1); ; day = day.AddDays(1))
        {
            var local = DateTime.SpecifyKind(day.AddHours(2), DateTimeKind.Unspecified);
            var at = zone.IsInvalidTime(local) ? new DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(local.AddHours(1), zone))
                : zone.IsAmbiguousTime(local) ? new DateTimeOffset(local, zone.GetAmbiguousTimeOffsets(local).Max())
                : new DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(local, zone));
            if (at > after)
            {
                return at.ToUnixTimeSeconds();
            }
        }
    }

    /// <summary>A copy without null-valued fields (the response spells out every field of the template).</summary>
    private static JsonNode? WithoutNulls(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.Where(p => p.Value is not null).Select(p => KeyValuePair.Create(p.Key, WithoutNulls(p.Value)))),
        JsonArray a => new JsonArray([.. a.Select(WithoutNulls)]),
        _ => node?.DeepClone(),
    };

    /// <summary>Applies one "path=json" edit to a copy (dotted path; a null value removes the field).</summary>
    private static JsonObject Edit(JsonObject source, string edit)
    {
        var copy = source.DeepClone().AsObject();
        var equals = edit.IndexOf('=', StringComparison.Ordinal);
        var parts = edit[..equals].Split('.');
        var node = copy;
        foreach (var part in parts[..^1])
        {
            node = node[part]!.AsObject();
        }

        var value = JsonNode.Parse(edit[(equals + 1)..]);
        if (value is null)
        {
            node.Remove(parts[^1]);
        }
        else
        {
            node[parts[^1]] = value;
        }

        return copy;
    }
}
