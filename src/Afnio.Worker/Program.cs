using Afnio.Data;
using Microsoft.Extensions.Hosting;

namespace Afnio.Worker;

/// <summary>The worker process: a generic host running the Hangfire server and our jobs.</summary>
public static class WorkerProgram
{
    public static void Main(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        builder.Services.AddAfnioData(builder.Configuration);
        builder.Services.AddAfnioWorker(builder.Configuration);
        builder.Build().Run();
    }
}
