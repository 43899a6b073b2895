using Afnio.Api.Tests.Sdk.Client;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Optimizers;

namespace Afnio.Api.Tests.Sdk;

/// <summary>
/// The API and a Worker as real OS processes on a database of their own, a fake OpenAI-compatible
/// provider on loopback, and the afnio protocol endpoint reached over real sockets: what an afnio
/// Python client talks to. The fake answers as the recorded session's provider did: labels for
/// forward calls, "Be more precise about the label." for feedback, "IMPROVED SYSTEM PROMPT" for TGD.
/// </summary>
public class SdkProcesses : IAsyncLifetime
{
    public const string Feedback = "Be more precise about the label.";
    public const string Improved = "IMPROVED SYSTEM PROMPT";

    public FakeOpenAiServer Fake { get; private set; } = null!;

    public SeparateProcesses Processes { get; private set; } = null!;

    /// <summary>The WebSocket base the client is given: <c>ws://127.0.0.1:port</c>.</summary>
    public Uri WsBase => new($"ws://127.0.0.1:{Processes.Admin.BaseAddress!.Port}");

    /// <summary>Settings for both processes beyond the defaults; a derived fixture can tighten limits.</summary>
    protected virtual IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>();

    public virtual async Task InitializeAsync()
    {
        Fake = await FakeOpenAiServer.StartAsync();
        Fake.Default = Answer;
        var settings = new Dictionary<string, string>(Settings)
        {
            ["Afnio__Models__AllowPrivateAddresses"] = "true",
            ["Afnio__Models__RetryBaseDelayMs"] = "20",
            ["Afnio__Models__MaxRetryDelaySeconds"] = "1",
        };
        Processes = await SeparateProcesses.StartAsync("afnio_sdk", settings);
    }

    public async Task DisposeAsync()
    {
        await Processes.DisposeAsync();
        await Fake.DisposeAsync();
    }

    /// <summary>Marks a prompt whose provider calls take <see cref="SlowDelay"/>: for calls that must still be running.</summary>
    public const string Slow = "[slow]";

    public static readonly TimeSpan SlowDelay = TimeSpan.FromSeconds(1.5);

    /// <summary>The recorded provider's answers, chosen by what the request asks; slow when it mentions <see cref="Slow"/>.</summary>
    public static FakeReply Answer(JsonElement request)
    {
        var system = FakeOpenAiServer.MessageText(request, "system");
        var user = FakeOpenAiServer.MessageText(request, "user");
        var reply = Recorded(system, user);
        var slow = system.Contains(Slow, StringComparison.Ordinal) || user.Contains(Slow, StringComparison.Ordinal);
        return slow ? reply with { Delay = SlowDelay } : reply;
    }

    private static FakeReply Recorded(string system, string user)
    {
        if (system.Contains(TgdPrompts.OpenTag, StringComparison.Ordinal) || user.Contains(TgdPrompts.OpenTag, StringComparison.Ordinal))
        {
            return FakeReply.Text($"{TgdPrompts.OpenTag}{Improved}{TgdPrompts.CloseTag}") with { CompletionTokens = 2 };
        }

        if (system == FeedbackPrompts.GradientEngineSystemPrompt)
        {
            return FakeReply.Text(Feedback) with { CompletionTokens = 2 };
        }

        return FakeReply.Text(user.Contains("hate", StringComparison.OrdinalIgnoreCase) ? "negative" : "positive") with { CompletionTokens = 2 };
    }

    /// <summary>A new user with a key, in a namespace of its own.</summary>
    public async Task<SdkUser> NewUserAsync(string prefix = "user")
    {
        using var admin = AdminClient();
        return await SdkUser.CreateAsync(admin, prefix);
    }

    public HttpClient AdminClient()
    {
        var client = new HttpClient { BaseAddress = Processes.Admin.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", SeparateProcesses.AdminKeyForTests);
        return client;
    }

    /// <summary>Logs in as the client does (verify the key, then connect) and starts a run in a new project.</summary>
    public async Task<SdkSessionUnderTest> ConnectAsync(SdkUser user, string project = "Scout Project", string? run = null, SdkClientOptions? options = null)
    {
        using (var verified = await user.Client.GetAsync("/api/v0/verify-api-key/"))
        {
            verified.EnsureSuccessStatusCode();
        }

        var client = await SdkClient.ConnectAsync(WsBase, user.Key, options);
        var (created, started) = await user.InitAsync(project, run);
        client.RunUuid = started.GetProperty("uuid").GetString();
        return new SdkSessionUnderTest(client, created.GetProperty("id").GetString()!, started);
    }

    /// <summary>A v1 client for a project the protocol made: the admin gives it a project key, as an operator would.</summary>
    public async Task<HttpClient> ProjectClientAsync(string projectId)
    {
        using var admin = AdminClient();
        var key = (await admin.PostJsonAsync($"/v1/projects/{projectId}/api_keys", new { name = "v1 view" })).GetProperty("key").GetString()!;
        var client = new HttpClient { BaseAddress = Processes.Admin.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return client;
    }
}

/// <summary>A connected client with its run, and the v1 id of the project the run is in.</summary>
public sealed record SdkSessionUnderTest(SdkClient Client, string ProjectId, JsonElement Run) : IAsyncDisposable
{
    public ValueTask DisposeAsync() => Client.DisposeAsync();
}
