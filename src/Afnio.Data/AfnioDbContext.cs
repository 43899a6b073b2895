using Afnio.Data.Datasets;
using Afnio.Data.Graph;
using Afnio.Data.Idempotency;
using Afnio.Data.Jobs;
using Afnio.Data.LanguageModels;
using Afnio.Data.Optimizers;
using Afnio.Data.Programs;
using Afnio.Data.Projects;
using Afnio.Data.Runs;
using Afnio.Data.Variables;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;

namespace Afnio.Data;

public sealed class AfnioDbContext(DbContextOptions<AfnioDbContext> options) : DbContext(options), IDataProtectionKeyContext
{
    public DbSet<Accounts.ProjectNamespace> Namespaces => Set<Accounts.ProjectNamespace>();
    public DbSet<Accounts.User> Users => Set<Accounts.User>();
    public DbSet<Accounts.UserApiKey> UserApiKeys => Set<Accounts.UserApiKey>();
    public DbSet<Accounts.Organization> Organizations => Set<Accounts.Organization>();
    public DbSet<Accounts.OrganizationMember> OrganizationMembers => Set<Accounts.OrganizationMember>();
    public DbSet<Project> Projects => Set<Project>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<Variable> Variables => Set<Variable>();
    public DbSet<VariableGradient> VariableGradients => Set<VariableGradient>();
    public DbSet<IdempotencyRecord> IdempotencyRecords => Set<IdempotencyRecord>();
    public DbSet<Job> Jobs => Set<Job>();
    public DbSet<JobStep> JobSteps => Set<JobStep>();
    public DbSet<JobEvent> JobEvents => Set<JobEvent>();
    public DbSet<Node> Nodes => Set<Node>();
    public DbSet<ModelClient> Models => Set<ModelClient>();
    public DbSet<ModelCall> ModelCalls => Set<ModelCall>();
    public DbSet<Optimizer> Optimizers => Set<Optimizer>();
    public DbSet<OptimizerParam> OptimizerParams => Set<OptimizerParam>();
    public DbSet<Dataset> Datasets => Set<Dataset>();
    public DbSet<DatasetVersion> DatasetVersions => Set<DatasetVersion>();
    public DbSet<DatasetItem> DatasetItems => Set<DatasetItem>();
    public DbSet<Run> Runs => Set<Run>();
    public DbSet<RunMetric> RunMetrics => Set<RunMetric>();
    public DbSet<RunCheckpoint> RunCheckpoints => Set<RunCheckpoint>();
    public DbSet<AgentProgram> Programs => Set<AgentProgram>();
    public DbSet<ProgramVersion> ProgramVersions => Set<ProgramVersion>();
    public DbSet<Schedules.Schedule> Schedules => Set<Schedules.Schedule>();
    public DbSet<Schedules.ScheduleFiring> ScheduleFirings => Set<Schedules.ScheduleFiring>();
    public DbSet<Events.OutboxEvent> Events => Set<Events.OutboxEvent>();
    public DbSet<Webhooks.WebhookEndpoint> WebhookEndpoints => Set<Webhooks.WebhookEndpoint>();
    public DbSet<Webhooks.WebhookDelivery> WebhookDeliveries => Set<Webhooks.WebhookDelivery>();
    public DbSet<Webhooks.WebhookAttempt> WebhookAttempts => Set<Webhooks.WebhookAttempt>();

    /// <summary>The Data Protection key ring, shared by the API and the Worker (both decrypt provider keys).</summary>
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(AfnioDbContext).Assembly);
}
