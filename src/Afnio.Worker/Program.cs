using Afnio.Data;
using Microsoft.Extensions.Hosting;

namespace Afnio.Worker;

/// <summary>The Worker process: a generic host running the job dispatcher, the webhook deliveries and the recurring schedules.</summary>
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
