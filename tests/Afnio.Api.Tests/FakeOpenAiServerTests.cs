using System.ClientModel;
using System.ClientModel.Primitives;
using OpenAI;
using OpenAI.Chat;

namespace Afnio.Api.Tests;

/// <summary>The test double for language models, driven by the real OpenAI client over loopback.</summary>
public sealed class FakeOpenAiServerTests
{
    private static ChatClient Client(FakeOpenAiServer server, TimeSpan? timeout = null) =>
        new("gpt-4.1-mini", new ApiKeyCredential("sk-test"), new OpenAIClientOptions
        {
            Endpoint = server.Endpoint,
            NetworkTimeout = timeout ?? TimeSpan.FromSeconds(30),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 2),
        });

    [Fact]
    public async Task ScriptedReplies_ComeBackWithUsage_AndRequestsAreRecorded()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        server.Enqueue(FakeReply.Text("Bonjour") with { PromptTokens = 42, CachedTokens = 2, CompletionTokens = 7 });

        ChatCompletion reply = await Client(server).CompleteChatAsync([new SystemChatMessage("Translate to French."), new UserChatMessage("Hello")]);

        Assert.Equal("Bonjour", reply.Content[0].Text);
        Assert.Equal(42, reply.Usage.InputTokenCount);
        Assert.Equal(2, reply.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(7, reply.Usage.OutputTokenCount);
        var request = Assert.Single(server.Requests);
        Assert.Equal("gpt-4.1-mini", request.GetProperty("model").GetString());
        Assert.Equal(["system", "user"], request.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()));
    }

    [Fact]
    public async Task A429WithRetryAfter_IsRetriedAfterTheWait()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        server.Enqueue(FakeReply.RateLimited(retryAfterSeconds: 1), FakeReply.Text("fine"));
        var watch = System.Diagnostics.Stopwatch.StartNew();

        ChatCompletion reply = await Client(server).CompleteChatAsync([new UserChatMessage("hi")]);

        Assert.Equal("fine", reply.Content[0].Text);
        Assert.Equal(2, server.Requests.Count);
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(0.9), $"retried after {watch.Elapsed}");
    }

    [Fact]
    public async Task ServerErrorsBeyondTheRetries_Surface_AsClientResultExceptions()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        server.Default = _ => FakeReply.ServerError();

        var error = await Assert.ThrowsAsync<ClientResultException>(() => Client(server).CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(500, error.Status);
        Assert.Equal(3, server.Requests.Count); // the first call and two retries
    }

    [Fact]
    public async Task MalformedJson_AndTimeouts_AreFailures()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        server.Enqueue(FakeReply.Junk());
        await Assert.ThrowsAnyAsync<Exception>(() => Client(server).CompleteChatAsync([new UserChatMessage("hi")]));

        server.Default = _ => FakeReply.Hang(TimeSpan.FromSeconds(30));
        var noRetries = new ChatClient("m", new ApiKeyCredential("sk-test"), new OpenAIClientOptions
        {
            Endpoint = server.Endpoint,
            NetworkTimeout = TimeSpan.FromMilliseconds(300),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        });
        await Assert.ThrowsAnyAsync<Exception>(() => noRetries.CompleteChatAsync([new UserChatMessage("hi")]));
    }

    [Fact]
    public async Task PeakConcurrency_IsObserved()
    {
        await using var server = await FakeOpenAiServer.StartAsync();
        server.Default = _ => FakeReply.Text("slow", TimeSpan.FromMilliseconds(300));
        var client = Client(server);

        await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => client.CompleteChatAsync([new UserChatMessage("hi")])));

        Assert.Equal(5, server.Requests.Count);
        Assert.Equal(5, server.PeakConcurrency);
    }
}
