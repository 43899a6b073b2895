using System.Security.Cryptography;

namespace Afnio.Api.Tests.Limits;

/// <summary>
/// A bucket of five key lookups per client address that refills about once a minute, and valid keys
/// remembered for five minutes. Each test acts from addresses of its own.
/// </summary>
public sealed class AuthLimitTests(AuthLimitTests.FewLookupsApp app) : IClassFixture<AuthLimitTests.FewLookupsApp>
{
    public const int Burst = 5;

    public sealed class FewLookupsApp : LimitsApp
    {
        protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
        {
            ["Afnio:KeyLookups:BurstPerAddress"] = Burst.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Afnio:KeyLookups:PerSecondPerAddress"] = "0.016",
            ["Afnio:KeyCacheSeconds"] = "300",
        };
    }

    private static string RandomKey() =>
        "afn_" + RandomNumberGenerator.GetString("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 43);

    [Fact]
    public async Task RandomKeysFromOneAddress_Answer429BeforeAnyLookup_OnceItsBucketIsEmpty_WhileAKnownKeyKeepsWorking()
    {
        var project = await app.CreateProjectAsync();
        using var valid = app.CreateClientFrom("10.0.1.1", project.Key);
        (await valid.GetAsync("/v1/variables")).EnsureSuccessStatusCode(); // one lookup, then remembered

        using var lookups = new KeyLookupCount(app.Services);
        var statuses = new List<int>();
        for (var i = 0; i < 30; i++)
        {
            using var attacker = app.CreateClientFrom("10.0.1.1", RandomKey());
            using var response = await attacker.GetAsync("/v1/variables");
            statuses.Add((int)response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                await response.AssertProblemAsync(429, "too_many_key_lookups");
                Assert.True(int.Parse(response.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
            }
            else
            {
                await response.AssertProblemAsync(401, "invalid_api_key");
            }
        }

        // The bucket had Burst − 1 lookups left: those keys were looked up (401), every later one was refused unlooked.
        Assert.Equal(Burst - 1, statuses.Count(s => s == 401));
        Assert.Equal(30 - (Burst - 1), statuses.Count(s => s == 429));
        Assert.Equal(Burst - 1, lookups.Value);

        (await valid.GetAsync("/v1/variables")).EnsureSuccessStatusCode();
        using var elsewhere = app.CreateClientFrom("10.0.1.2", RandomKey());
        await (await elsewhere.GetAsync("/v1/variables")).AssertProblemAsync(401, "invalid_api_key");
    }

    [Fact]
    public async Task ARepeatedUnknownKey_IsLookedUpOnce_AndAnsweredFromMemoryAfter()
    {
        var bad = RandomKey();
        using var client = app.CreateClientFrom("10.0.2.1", bad);
        using var lookups = new KeyLookupCount(app.Services);

        for (var i = 0; i < 3 * Burst; i++)
        {
            await (await client.GetAsync("/v1/variables")).AssertProblemAsync(401, "invalid_api_key");
        }

        Assert.Equal(1, lookups.Value);
    }

    [Fact]
    public async Task MalformedKeys_NeverCauseALookup()
    {
        using var lookups = new KeyLookupCount(app.Services);
        foreach (var key in new[] { "afn_short", "afn_" + new string('-', 43), "afu_" + new string('x', 44), "sk-something" })
        {
            using var client = app.CreateClientFrom("10.0.3.1", key);
            await (await client.GetAsync("/v1/variables")).AssertProblemAsync(401, "invalid_api_key");
        }

        Assert.Equal(0, lookups.Value);
    }

    [Fact]
    public async Task ANewKey_WorksAtOnce_AfterMissesFromTheSameAddress()
    {
        var project = await app.CreateProjectAsync();
        using var miss = app.CreateClientFrom("10.0.4.1", RandomKey());
        await (await miss.GetAsync("/v1/variables")).AssertProblemAsync(401, "invalid_api_key");

        var second = await app.SecondKeyAsync(project);
        using var client = app.CreateClientFrom("10.0.4.1", second.Key);
        (await client.GetAsync("/v1/variables")).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task ManyRequestsAtOnce_WithAKeyNotYetInMemory_ShareOneLookup_AndAllWork()
    {
        var project = await app.CreateProjectAsync();
        var second = await app.SecondKeyAsync(project);
        using var client = app.CreateClientFrom("10.0.5.1", second.Key);
        using var lookups = new KeyLookupCount(app.Services);

        var responses = await Task.WhenAll(Enumerable.Range(0, 8 * Burst).Select(_ => client.GetAsync("/v1/variables")));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(1, lookups.Value);
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }
}
