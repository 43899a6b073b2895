using Afnio.Client;

namespace Afnio.Api.Tests;

/// <summary>The C# client generated from the OpenAPI document works against the real API.</summary>
public sealed class GeneratedClientTests(AfnioApiFactory app) : IClassFixture<AfnioApiFactory>
{
    [Fact]
    public async Task GeneratedClient_CreatesAProjectKeyAndVariables_AndReadsErrors()
    {
        var admin = new AfnioClient(app.CreateAdminClient());
        var project = await admin.CreateProjectAsync(new CreateProjectRequest { Name = "generated" });
        var key = await admin.CreateApiKeyAsync(project.Id, new CreateApiKeyRequest { Name = "sdk" });
        Assert.StartsWith("afn_", key.Key);

        var client = new AfnioClient(app.CreateClientWithKey(key.Key));
        var prompt = await client.CreateVariableAsync(new CreateVariableRequest
        {
            Data = "You are a helpful assistant.",
            Role = "system prompt",
            Is_parameter = true,
        });
        Assert.True(prompt.Requires_grad);
        Assert.Equal("You are a helpful assistant.", prompt.Data.ToString());

        var feedback = await client.CreateVariableAsync(new CreateVariableRequest { Data = "Be concise.", Role = "feedback to system prompt" });
        var grads = await client.AppendVariableGradAsync(prompt.Id, new AppendGradRequest { Variable_id = feedback.Id });
        Assert.Equal([feedback.Id], grads.Data.Select(g => g.Id));

        var renamed = await client.UpdateVariableAsync(prompt.Id, new UpdateVariableRequest { Role = "instructions" });
        Assert.Equal("instructions", renamed.Role);
        Assert.Equal("You are a helpful assistant.", renamed.Data.ToString());

        var cast = await client.CastVariableAsync(feedback.Id, new CastVariableRequest { Dtype = CastType.Str });
        Assert.Equal("Be concise.", cast.Data.ToString());

        var page = await client.ListVariablesAsync(limit: 2, order: "asc");
        Assert.Equal([prompt.Id, feedback.Id], page.Data.Select(v => v.Id));
        Assert.True(page.Has_more);

        var error = await Assert.ThrowsAsync<ApiException<ProblemDetails>>(
            () => client.RetrieveVariableAsync("var_0000000000007000800000000000000a"));
        Assert.Equal(404, error.StatusCode);
        Assert.Equal("variable_not_found", error.Result.AdditionalProperties["code"].ToString());
    }
}
