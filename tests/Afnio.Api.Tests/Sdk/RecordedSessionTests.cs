using Afnio.Api.Tests.Sdk.Client;

namespace Afnio.Api.Tests.Sdk;

/// <summary>
/// The recorded session's program, run by the client simulator against Afnio's API and Worker as real
/// processes: the client must send exactly what the real client sent, accept every answer, and end with
/// the values the recording shows; everything lands in PostgreSQL and is visible through /v1.
/// </summary>
public sealed class RecordedSessionTests(SdkProcesses afnio) : IClassFixture<SdkProcesses>
{
    /// <summary>
    /// What may differ from the recording, which holds one answer the client accepted, not the only one.
    /// </summary>
    private static readonly RecordedComparison.Tolerance[] Tolerated =
    [
        new(@"\.base_url$", "the provider's address is the test's own fake"),
        new(@"\.cost$", "the recording's price table is not Afnio's; Afnio reports the cost it computes"),
        new(@"^run_\w+ update_model \.value\.\w+_tokens$",
            "the recording's server made one provider call per backward pass; Afnio makes one per gradient, as the semantics say "
            + "(the evaluator's and the chat completion's), and a batch's calls run together, so a push can count both"),
        new(@"^run_function reply \.result\.data\[1\]\.data$",
            "the recording's server shortened the evaluator's explanation; Afnio writes the full wording (checked below)"),
    ];

    [Fact]
    public async Task RecordedProgram_SendsTheRecordedFrames_AndEndsAsTheRecordingDoes()
    {
        var user = await afnio.NewUserAsync("scout");
        await using var session = await afnio.ConnectAsync(user, "Scout Project", "scout_run");
        var client = session.Client;

        var calls = afnio.Fake.Requests.Count;
        var outcome = await RecordedScript.RunAsync(client, afnio.Fake.Endpoint.ToString().TrimEnd('/'));

        Assert.True(client.WelcomeInFirstRead);
        Assert.Empty(client.Violations);
        var comparison = RecordedComparison.Compare(RecordedScript.RecordingPath, client.Frames, Tolerated);
        Assert.True(comparison.Mismatches.Count == 0, string.Join("\n", comparison.Mismatches));
        Assert.True(comparison.MappedIds > 30, $"only {comparison.MappedIds} ids were compared");

        Assert.Equal("Hello world", outcome.Added.Data!.GetValue<string>());
        Assert.Equal(new[] { "Hello", "world" }, outcome.Parts.Select(p => p.Data!.GetValue<string>()));
        Assert.Equal(SdkProcesses.Feedback, outcome.Feedback.Data!.GetValue<string>());
        Assert.Equal(SdkProcesses.Improved, outcome.Improved!.GetValue<string>());
        Assert.Empty(outcome.System.Grad);
        Assert.Equal(2, outcome.Evaluation2[0].Data!.GetValue<int>());
        Assert.Equal("ExactMatchEvaluatorBackward0", outcome.Evaluation2GradFn);
        Assert.Equal(
            "The evaluation function, designed for 'exact match', compared the <DATA> field of the predicted variable ('positive') "
            + "with the <DATA> field of the target variable ('negative'), resulting in a score: 0.",
            outcome.Evaluation[1].Data!.GetValue<string>());
        Assert.EndsWith("resulting in a final aggregated score: 2.", outcome.Evaluation2[1].Data!.GetValue<string>(), StringComparison.Ordinal);

        // Five forward calls (chat, TGD, two batch items, TGD) at 12 tokens each; two gradients per backward pass.
        Assert.Equal(60, outcome.ForwardUsageBeforeClear!["total_tokens"]!.GetValue<int>());
        Assert.Equal(0, client.Models[outcome.ForwardModel].Usage!["total_tokens"]!.GetValue<int>());
        Assert.Equal(9, afnio.Fake.Requests.Count - calls);

        // What the client holds is what Afnio stored, read back through the v1 API.
        using var v1 = await afnio.ProjectClientAsync(session.ProjectId);
        var stored = await v1.GetJsonAsync($"/v1/variables/{outcome.System.Id}");
        Assert.Equal(SdkProcesses.Improved, stored.GetProperty("data").GetString());
        var feedback = await v1.GetJsonAsync($"/v1/variables/{outcome.System2.Id}/grad");
        Assert.Contains(SdkProcesses.Feedback, feedback.GetRawText(), StringComparison.Ordinal);
        var runs = await v1.GetJsonAsync("/v1/runs");
        Assert.Contains(runs.GetProperty("data").EnumerateArray(), r => r.GetProperty("name").GetString() == "scout_run");
    }
}
