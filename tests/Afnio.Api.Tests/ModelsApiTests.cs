using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Api.Tests;

[Collection(WorkerHosts.Name)]
public sealed class ModelsApiTests(ModelWorkerApp app) : IClassFixture<ModelWorkerApp>
{
    [Fact]
    public async Task CreatedModel_IsReturnedRedacted_AndItsKeyIsEncryptedAtRest()
    {
        var project = await app.CreateProjectAsync();
        using var created = await project.Client.PostAsJsonAsync("/v1/models", new
        {
            provider = "openai",
            name = "local vLLM",
            base_url = app.Fake.Endpoint.ToString(),
            api_key = ModelWorkerApp.ApiKey,
            organization = "org-42",
            default_completion_args = new { model = "gpt-4o", temperature = 0.2 },
            max_concurrency = 3,
            requests_per_minute = 600,
        });
        var text = await created.Content.ReadAsStringAsync();
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);
        var model = JsonDocument.Parse(text).RootElement;
        var id = model.GetProperty("id").GetString()!;
        Assert.StartsWith("mdl_", id);
        Assert.Equal($"/v1/models/{id}", created.Headers.Location?.OriginalString);
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal("local vLLM", model.GetProperty("name").GetString());
        Assert.True(model.GetProperty("has_api_key").GetBoolean());
        Assert.Equal("…cdef", model.GetProperty("api_key_hint").GetString());
        Assert.Equal(3, model.GetProperty("max_concurrency").GetInt32());
        Assert.Equal(600, model.GetProperty("requests_per_minute").GetInt32());
        Assert.Equal(0.2, model.GetProperty("default_completion_args").GetProperty("temperature").GetDouble());
        Assert.Equal(0, model.GetProperty("usage").GetProperty("cost").GetProperty("amount").GetDecimal());
        Assert.False(model.TryGetProperty("api_key", out _));

        var listed = await project.Client.GetStringAsync("/v1/models");
        var fetched = await project.Client.GetStringAsync($"/v1/models/{id}");
        foreach (var body in new[] { text, listed, fetched })
        {
            Assert.DoesNotContain("SECRET", body, StringComparison.Ordinal);
        }

        Assert.Contains(id, listed, StringComparison.Ordinal);
        await using var db = app.CreateDbContext();
        Assert.True(Domain.Common.PrefixedId.TryParse(Domain.Common.PrefixedId.Model, id, out var guid));
        var row = await db.Models.AsNoTracking().SingleAsync(m => m.Id == guid);
        Assert.DoesNotContain("SECRET", row.ProtectedApiKey!, StringComparison.Ordinal);
        Assert.True(await db.DataProtectionKeys.AnyAsync(), "the Data Protection key ring is kept in PostgreSQL");
    }

    [Fact]
    public async Task Models_OfAnotherProject_AreNotFound()
    {
        var owner = await app.CreateProjectAsync();
        var other = await app.CreateProjectAsync();
        var id = await app.RegisterModelAsync(owner);
        await (await other.Client.GetAsync($"/v1/models/{id}")).AssertProblemAsync(404, "model_not_found");
        await (await other.Client.GetAsync($"/v1/models/{id}/usage")).AssertProblemAsync(404, "model_not_found");
        await (await other.Client.DeleteAsync($"/v1/models/{id}")).AssertProblemAsync(404, "model_not_found");
        await (await other.Client.DeleteAsync($"/v1/models/{id}/usage")).AssertProblemAsync(404, "model_not_found");
        await (await other.Client.PutAsJsonAsync("/v1/backward_model", new { model_id = id })).AssertProblemAsync(404, "model_not_found");
        Assert.DoesNotContain(id, await other.Client.GetStringAsync("/v1/models"), StringComparison.Ordinal);
        await (await owner.Client.GetAsync("/v1/models/mdl_nonsense")).AssertProblemAsync(404, "model_not_found");
    }

    [Theory]
    [InlineData("""{"provider": "anthropic", "api_key": "k"}""", "unsupported_provider", "provider")]
    [InlineData("""{"api_key": "k"}""", "missing_field", "provider")]
    [InlineData("""{"provider": "openai"}""", "missing_field", "api_key")]
    [InlineData("""{"provider": "openai", "api_key": ""}""", "invalid_api_key", "api_key")]
    [InlineData("""{"provider": "openai", "base_url": "ftp://x/v1"}""", "invalid_base_url", "base_url")]
    [InlineData("""{"provider": "openai", "base_url": "not a url"}""", "invalid_base_url", "base_url")]
    [InlineData("""{"provider": "openai", "base_url": "http://user:pw@host/v1"}""", "invalid_base_url", "base_url")]
    [InlineData("""{"provider": "openai", "api_key": "k", "max_concurrency": 0}""", "invalid_max_concurrency", "max_concurrency")]
    [InlineData("""{"provider": "openai", "api_key": "k", "requests_per_minute": -5}""", "invalid_requests_per_minute", "requests_per_minute")]
    [InlineData("""{"provider": "openai", "api_key": "k", "default_completion_args": [1]}""", "invalid_type", "default_completion_args")]
    [InlineData("""{"provider": "openai", "api_key": "k", "default_completion_args": {"n": 2}}""", "unsupported_argument", "default_completion_args.n")]
    [InlineData("""{"provider": "openai", "api_key": "k", "default_completion_args": {"stream": true}}""", "unsupported_argument", "default_completion_args.stream")]
    [InlineData("""{"provider": 7, "api_key": "k"}""", "invalid_type", "provider")]
    [InlineData("""{"provider": "openai", "api_key": "k", "default_completion_args": {"model": "a\u0000"}}""", "invalid_default_completion_args", "default_completion_args.model")]
    [InlineData("""{"provider": "openai", "api_key": "k", "default_completion_args": {"model": "\ud800"}}""", "invalid_default_completion_args", "default_completion_args.model")]
    [InlineData("""{"provider": "openai", "api_key": "k", "default_completion_args": {"a\u0000": 1}}""", "invalid_default_completion_args", "default_completion_args.a\u0000")]
    [InlineData("""{"provider": "openai", "api_key": "k", "organization": "a\r\nX-Evil: 1"}""", "invalid_organization", "organization")]
    [InlineData("""{"provider": "openai", "api_key": "sk-\u00e9t\u00e9"}""", "invalid_api_key", "api_key")]
    [InlineData("""{"provider": "openai", "api_key": "k\nX-Evil: 1"}""", "invalid_api_key", "api_key")]
    public async Task BadModelRequests_Get400s_AndStoreNothing(string body, string code, string param)
    {
        var project = await app.CreateProjectAsync();
        var problem = await (await project.Client.SendRawAsync(HttpMethod.Post, "/v1/models", body)).AssertProblemAsync(400, code);
        Assert.Equal(param, problem.GetProperty("param").GetString());
        Assert.Empty((await project.Client.GetJsonAsync("/v1/models")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task NGreaterThanOne_IsRefused_WithAfniosWording()
    {
        var project = await app.CreateProjectAsync();
        var problem = await (await project.Client.SendRawAsync(HttpMethod.Post, "/v1/models",
            """{"provider": "openai", "api_key": "k", "default_completion_args": {"model": "gpt-4o", "n": 3}}""")).AssertProblemAsync(400, "unsupported_argument");
        Assert.Equal("n > 1 is not supported for chat completions.", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task BackwardModel_IsSetRead_AndForgottenWhenItsModelIsDeleted()
    {
        var project = await app.CreateProjectAsync();
        var missing = await (await project.Client.GetAsync("/v1/backward_model")).AssertProblemAsync(404, "backward_model_not_set");
        Assert.Equal("No global model client set for backward pass. Call `set_backward_model_client` to define one.",
            missing.GetProperty("detail").GetString());

        var model = await app.RegisterModelAsync(project);
        using var set = await project.Client.PutAsJsonAsync("/v1/backward_model", new { model_id = model, completion_args = new { model = "gpt-4o", seed = 7 } });
        var echoed = await HttpJson.EnsureSuccessAsync(set);
        Assert.Equal(model, echoed.GetProperty("model_id").GetString());
        Assert.Equal(7, echoed.GetProperty("completion_args").GetProperty("seed").GetInt32());
        var read = await project.Client.GetJsonAsync("/v1/backward_model");
        Assert.Equal(model, read.GetProperty("model_id").GetString());

        await (await project.Client.PutAsJsonAsync("/v1/backward_model", new { completion_args = new { } })).AssertProblemAsync(400, "missing_field");
        await (await project.Client.PutAsJsonAsync("/v1/backward_model", new { model_id = "var_x" })).AssertProblemAsync(400, "invalid_id");
        await (await project.Client.PutAsJsonAsync("/v1/backward_model", new { model_id = model, completion_args = new { n = 2 } }))
            .AssertProblemAsync(400, "unsupported_argument");

        Assert.Equal(System.Net.HttpStatusCode.NoContent, (await project.Client.DeleteAsync($"/v1/models/{model}")).StatusCode);
        await (await project.Client.GetAsync($"/v1/models/{model}")).AssertProblemAsync(404, "model_not_found");
        await (await project.Client.GetAsync("/v1/backward_model")).AssertProblemAsync(404, "backward_model_not_set");
    }
}

/// <summary>The host with a key-encryption certificate for the Data Protection key ring.</summary>
public sealed class CertificateProtectedApp : ModelWorkerApp
{
    private readonly string _certificate = Path.Combine(Path.GetTempPath(), $"afnio-dp-{Guid.NewGuid():N}.pfx");

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest(
            "CN=afnio-data-protection", rsa, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        await File.WriteAllBytesAsync(_certificate, certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pfx, "pfx-password"));
    }

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>(base.Settings)
    {
        ["Afnio:DataProtection:CertificatePath"] = _certificate,
        ["Afnio:DataProtection:CertificatePassword"] = "pfx-password",
    };

    protected override async Task DisposeFixtureAsync()
    {
        await base.DisposeFixtureAsync();
        File.Delete(_certificate);
    }
}

[Collection(WorkerHosts.Name)]
public sealed class KeyRingEncryptionTests(CertificateProtectedApp app) : IClassFixture<CertificateProtectedApp>
{
    [Fact]
    public async Task WithACertificate_TheKeyRingIsEncryptedInTheDatabase_AndKeysStillWork()
    {
        var project = await app.CreateProjectAsync();
        var model = await app.RegisterModelAsync(project);
        var prompt = await project.VariableAsync("hi", "prompt");
        app.Fake.Reset();

        await project.CallAsync("chat_completion", new { model_id = model, messages = new[] { new { role = "user", content = new[] { prompt } } } });

        Assert.Equal($"Bearer {ModelWorkerApp.ApiKey}", Assert.Single(app.Fake.Authorizations));
        await using var db = app.CreateDbContext();
        var ring = await db.DataProtectionKeys.AsNoTracking().Select(k => k.Xml ?? string.Empty).ToListAsync();
        Assert.NotEmpty(ring);
        Assert.All(ring, xml =>
        {
            Assert.Contains("EncryptedData", xml, StringComparison.Ordinal);
            Assert.DoesNotContain("<value>", xml, StringComparison.Ordinal); // a master key in the clear
        });
    }
}

/// <summary>The host as a hosted deployment runs it: model clients may not reach private addresses.</summary>
public sealed class PublicOnlyApp : ModelWorkerApp
{
    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>(base.Settings)
    {
        ["Afnio:Models:AllowPrivateAddresses"] = "false",
    };
}

[Collection(WorkerHosts.Name)]
public sealed class PrivateAddressTests(PublicOnlyApp app) : IClassFixture<PublicOnlyApp>
{
    [Theory]
    [InlineData("http://127.0.0.1:8000/v1")]
    [InlineData("http://10.0.0.7/v1")]
    [InlineData("http://169.254.169.254/latest")]
    [InlineData("http://[::1]:11434/v1")]
    [InlineData("http://[::ffff:192.168.1.1]/v1")]
    [InlineData("http://127.0.0.1.:8000/v1")]
    public async Task PrivateAddresses_AreRefusedWhenTheModelIsCreated(string baseUrl)
    {
        var project = await app.CreateProjectAsync();
        var problem = await (await project.Client.PostAsJsonAsync("/v1/models", new { provider = "openai", base_url = baseUrl }))
            .AssertProblemAsync(400, "base_url_not_allowed");
        Assert.Equal("base_url", problem.GetProperty("param").GetString());
    }

    [Fact]
    public async Task AHostNameThatResolvesInside_IsRefusedWhenConnecting_WithoutRetries()
    {
        var project = await app.CreateProjectAsync();
        app.Fake.Reset();
        var model = (await project.Client.PostJsonAsync("/v1/models", new
        {
            provider = "openai",
            base_url = $"http://localhost:{app.Fake.Endpoint.Port}/v1",
            default_completion_args = new { model = "gpt-4o" },
        })).GetProperty("id").GetString()!;
        var prompt = await project.VariableAsync("hi", "prompt");

        var problem = await (await project.Client.PostAsJsonAsync("/v1/functions/chat_completion",
            new { model_id = model, messages = new[] { new { role = "user", content = new[] { prompt } } } })).AssertProblemAsync(502, "model_call_failed");

        Assert.Contains("not a public address", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("attempts", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty(app.Fake.Requests);
    }
}
