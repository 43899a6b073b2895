using System.Diagnostics;
using System.Globalization;
using Afnio.Api.Tests.Infrastructure;

namespace Afnio.Bench;

/// <summary>
/// TGD steps over 64 parameters with one gradient each, against a fake provider that takes 200 ms
/// per optimizer call. With a model client allowing C calls at once, the ideal step takes
/// ⌈64 ÷ C⌉ × latency: the step should keep the client's every slot busy. Reports wall ÷ ideal.
/// </summary>
internal static class OptimizerBench
{
    private const int Parameters = 64;
    private static readonly TimeSpan Latency = TimeSpan.FromMilliseconds(200);

    public static async Task RunAsync(HttpClient http, int repetitions = 5)
    {
        await using var fake = await FakeOpenAiServer.StartAsync();
        fake.Default = _ => FakeReply.Text("<IMPROVED_VARIABLE>A better instruction.</IMPROVED_VARIABLE>", Latency);

        Console.WriteLine();
        Console.WriteLine($"TGD step over {Parameters} parameters (one gradient each), fake provider latency {Latency.TotalMilliseconds:F0} ms per call, " +
            $"{repetitions} steps each after one warm-up step");
        Console.WriteLine($"{"max_concurrency",15} {"calls",6} {"ideal ms",9} {"job p50 ms",11} {"job max ms",11} {"ratio p50",10} {"client p50 ms",14} {"peak",5}");
        foreach (var concurrency in new[] { 64, 8 })
        {
            var model = (await BenchProgram.PostAsync(http, "/v1/models", new
            {
                provider = "openai",
                base_url = fake.Endpoint.ToString(),
                api_key = "sk-bench",
                default_completion_args = new { model = "gpt-4o" },
                max_concurrency = concurrency,
            })).GetProperty("id").GetString()!;
            var parameters = new string[Parameters];
            await BenchProgram.RunQuietlyAsync(Parameters, 16, async i =>
            {
                parameters[i] = (await BenchProgram.PostAsync(http, "/v1/variables",
                    new { data = $"instruction {i}", role = $"instruction {i}", is_parameter = true })).GetProperty("id").GetString()!;
                var gradient = await BackwardBench.VariableAsync(http, "Be more specific.", $"feedback to instruction {i}");
                await BenchProgram.PostAsync(http, $"/v1/variables/{parameters[i]}/grad", new { variable_id = gradient });
            });
            var optimizer = (await BenchProgram.PostAsync(http, "/v1/optimizers",
                new { type = "tgd", @params = parameters, model_id = model, momentum = 2 })).GetProperty("id").GetString()!;

            var jobMs = new List<double>();
            var clientMs = new List<double>();
            var peak = 0;
            var before = 0;
            for (var r = -1; r < repetitions; r++)
            {
                before = r == 0 ? fake.Requests.Count : before;
                var watch = Stopwatch.StartNew();
                var job = await BenchProgram.PostAsync(http, $"/v1/optimizers/{optimizer}/step", new { });
                var done = await BackwardBench.WaitAsync(http, job.GetProperty("id").GetString()!);
                var client = watch.Elapsed.TotalMilliseconds;
                if (done.GetProperty("status").GetString() != "succeeded" || done.GetProperty("result").GetProperty("updated").GetInt32() != Parameters)
                {
                    throw new InvalidOperationException($"the step did not update every parameter: {done}");
                }

                if (r >= 0)
                {
                    clientMs.Add(client);
                    jobMs.Add(await LanguageModelBench.JobMillisecondsAsync(job.GetProperty("id").GetString()!));
                    peak = Math.Max(peak, fake.PeakConcurrency);
                }
            }

            var calls = (fake.Requests.Count - before) / repetitions;
            jobMs.Sort();
            clientMs.Sort();
            var ideal = Math.Ceiling((double)Parameters / concurrency) * Latency.TotalMilliseconds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{concurrency,15} {calls,6} {ideal,9:F0} {jobMs[jobMs.Count / 2],11:F1} {jobMs[^1],11:F1} {jobMs[jobMs.Count / 2] / ideal,10:F3} {clientMs[clientMs.Count / 2],14:F1} {peak,5}"));
            Console.WriteLine("  last step, ms after the job was claimed: " + await LanguageModelBench.PhasesAsync("optimizer_step"));
        }

        Console.WriteLine("job ms: claimed by the worker → finished (jobs table); client ms: POST …/step → job seen succeeded.");
    }
}
