using Afnio.Api.Accounts;
using Afnio.Api.Archives;
using Afnio.Api.Auth;
using Afnio.Api.Autodiff;
using Afnio.Api.Datasets;
using Afnio.Api.Idempotency;
using Afnio.Api.Infrastructure;
using Afnio.Api.Jobs;
using Afnio.Api.Models;
using Afnio.Api.Optimizers;
using Afnio.Api.Programs;
using Afnio.Api.Projects;
using Afnio.Api.Runs;
using Afnio.Api.Schedules;
using Afnio.Api.Sdk;
using Afnio.Api.Sdk.Rpc;
using Afnio.Api.Variables;
using Afnio.Api.Webhooks;
using Afnio.Data;
using Afnio.Worker;

var builder = WebApplication.CreateBuilder(args);
var options = builder.Configuration.GetSection(AfnioOptions.Section).Get<AfnioOptions>() ?? new AfnioOptions();
builder.Services.Configure<AfnioOptions>(builder.Configuration.GetSection(AfnioOptions.Section));
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddAfnioData(builder.Configuration);
// Operations call models in the caller's project: one registry per request.
builder.Services.AddScoped(sp => Afnio.Domain.Autodiff.OperationRegistry.Standard(
    sp.GetRequiredService<Afnio.Data.LanguageModels.ModelGateway>().ForProject(sp.GetRequiredService<Afnio.Api.Auth.ProjectContext>().ProjectId),
    limits: sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<Afnio.Domain.Common.OperationLimits>>().Value));
builder.Services.AddAfnioProblems();
builder.Services.AddAfnioAuth();
builder.Services.AddAfnioRateLimits(options.RateLimit);
builder.Services.AddAfnioJobStreams();
builder.Services.AddAfnioOpenApi();
builder.Services.AddHealthChecks().AddDbContextCheck<AfnioDbContext>(tags: ["ready"]);
builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
if (options.Worker.InProcess)
{
    builder.Services.AddAfnioWorker(builder.Configuration);
}

builder.Services.AddAfnioSchedules(options.Schedules);
builder.Services.AddAfnioSdk(builder.Configuration);
builder.Services.AddSingleton<ImportSlots>();
// The afnio protocol's handshake sends its 101 response together with the first WebSocket frame.
builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(listen => listen.UseUpgradeResponseHold()));

var app = builder.Build();
if (string.IsNullOrEmpty(options.AdminKey))
{
    app.Logger.LogWarning("Afnio:AdminKey is not set: projects and API keys cannot be managed until it is.");
}

app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseRequestBodyLimit();
app.UseSwagger();
app.UseSwaggerUI(o => o.DocumentTitle = "Afnio API");
app.UseAuthentication();
app.UseRateLimiter();
app.UseAuthorization();
app.UseWebSockets();
app.UseMiddleware<IdempotencyMiddleware>();

app.MapHealthChecks("/healthz/live", new() { Predicate = _ => false }).AllowAnonymous();
app.MapHealthChecks("/healthz/ready", new() { Predicate = c => c.Tags.Contains("ready") }).AllowAnonymous();

var v1 = app.MapGroup("/v1").ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status401Unauthorized)
    .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status429TooManyRequests);
v1.MapProjects();
v1.MapAccounts();
v1.MapAdminJobs();
v1.MapVariables();
v1.MapFunctions();
v1.MapGraph();
v1.MapBackward();
v1.MapJobs();
v1.MapModels();
v1.MapUsage();
v1.MapOptimizers();
v1.MapDatasets();
v1.MapPrograms();
v1.MapRuns();
v1.MapTrainingRuns();
v1.MapArchives();
v1.MapWebhooks();
v1.MapSchedules();
app.MapSdkHttp();
app.MapSdkRpc();

app.Run();

/// <summary>Entry point; public so tests can host the API with WebApplicationFactory.</summary>
public partial class Program;
