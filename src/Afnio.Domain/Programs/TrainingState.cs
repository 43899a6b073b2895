using System.Text.Json.Nodes;
using Afnio.Domain.Autodiff;
using Afnio.Domain.LanguageModels;
using Afnio.Domain.Optimizers;

namespace Afnio.Domain.Programs;

/// <summary>A gradient as a checkpoint keeps it: its text and role.</summary>
/// <param name="Data">The feedback text.</param>
/// <param name="Role">Its role, e.g. <c>feedback to system prompt</c>.</param>
public sealed record GradientText(string Data, string Role);

/// <summary>
/// What training carries from one batch to the next: the parameters' values, their gradients from
/// the last backward pass (afnio clears them only at the next batch), and each parameter's TGD
/// momentum window, oldest first.
/// </summary>
/// <param name="Parameters">Values by parameter name.</param>
/// <param name="Gradients">The last batch's gradients by parameter name.</param>
/// <param name="Momentum">The momentum windows by parameter name.</param>
public sealed record TrainingState(
    IReadOnlyDictionary<string, string> Parameters,
    IReadOnlyDictionary<string, IReadOnlyList<GradientText>> Gradients,
    IReadOnlyDictionary<string, IReadOnlyList<PastIteration>> Momentum)
{
    /// <summary>The state before any training: the given values, no gradients, empty windows.</summary>
    public static TrainingState Initial(IReadOnlyDictionary<string, string> parameters) =>
        new(parameters, new Dictionary<string, IReadOnlyList<GradientText>>(), new Dictionary<string, IReadOnlyList<PastIteration>>());
}

/// <summary>The TGD settings of a training run.</summary>
/// <param name="ModelId">The optimizer's model client.</param>
/// <param name="Momentum">How many past iterations each parameter keeps (k).</param>
/// <param name="Constraints">Rules every new value must respect.</param>
/// <param name="CompletionArgs">Arguments for the optimizer's calls.</param>
public sealed record TgdSettings(Guid ModelId, int Momentum, IReadOnlyList<string> Constraints, JsonObject? CompletionArgs);

/// <summary>How one parameter's update went.</summary>
/// <param name="Parameter">The parameter's name.</param>
/// <param name="Updated">True when it took a new value.</param>
/// <param name="Attempts">Optimizer calls made.</param>
/// <param name="Reason">Why it kept its value, when it did.</param>
public sealed record ParameterStep(string Parameter, bool Updated, int Attempts, string? Reason);

/// <summary>The TGD step of a training batch, over a program's parameters held in memory.</summary>
public static class ProgramOptimizer
{
    /// <summary>
    /// One optimizer call per parameter that received gradients (all concurrently): a new value
    /// replaces the old one, and the old value with its feedback joins the momentum window.
    /// Parameters without gradients, and those whose rewrite fails, keep their values.
    /// </summary>
    public static async Task<(TrainingState State, IReadOnlyList<ParameterStep> Steps)> StepAsync(
        ProgramDefinition program, TrainingState state, IReadOnlyDictionary<string, IReadOnlyList<GradientValue>> gradients,
        ILanguageModels models, TgdSettings settings, string stepKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(gradients);
        ArgumentNullException.ThrowIfNull(settings);
        var work = program.Parameters.Where(p => gradients.TryGetValue(p.Name, out var g) && g.Count > 0).ToList();
        var outcomes = await Task.WhenAll(work.Select(async p =>
        {
            var feedback = gradients[p.Name].Select(g => g.Text).ToList();
            var history = state.Momentum.TryGetValue(p.Name, out var window) ? window : [];
            var request = new TgdRequest(p.Role, state.Parameters[p.Name], feedback, history, settings.Constraints);
            var messages = TgdConversation.Build(request, null, new Dictionary<string, string>());
            var outcome = await TgdRewrite.RunAsync(models, settings.ModelId, settings.CompletionArgs, messages, $"{stepKey}/{p.Name}", cancellationToken);
            return (Parameter: p.Name, Feedback: feedback, Outcome: outcome);
        }));

        var values = new Dictionary<string, string>(state.Parameters, StringComparer.Ordinal);
        var momentum = new Dictionary<string, IReadOnlyList<PastIteration>>(state.Momentum, StringComparer.Ordinal);
        foreach (var (name, feedback, outcome) in outcomes.Where(o => o.Outcome.NewValue is not null))
        {
            momentum[name] = MomentumWindow.Push(momentum.TryGetValue(name, out var w) ? w : [], new PastIteration(values[name], feedback), settings.Momentum);
            values[name] = outcome.NewValue!;
        }

        var kept = gradients.ToDictionary(g => g.Key, g => (IReadOnlyList<GradientText>)[.. g.Value.Select(v => new GradientText(v.Text, v.Role))], StringComparer.Ordinal);
        var steps = program.Parameters.Select(p => outcomes.FirstOrDefault(o => o.Parameter == p.Name) is { Parameter: not null } o
            ? new ParameterStep(p.Name, o.Outcome.NewValue is not null, o.Outcome.Attempts, o.Outcome.Reason)
            : new ParameterStep(p.Name, false, 0, "The parameter received no gradient in this batch."))
            .ToList();
        return (new TrainingState(values, kept, momentum), steps);
    }
}
