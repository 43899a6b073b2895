using Afnio.Data;
using Afnio.Worker;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddAfnioData(builder.Configuration);
builder.Services.AddAfnioWorker();
builder.Build().Run();
