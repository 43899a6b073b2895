using Afnio.Domain.Autodiff;
using Afnio.Domain.Variables;

namespace Afnio.Data.Jobs;

/// <summary>A gradient as jobs store it: the data with its Python type, and its role.</summary>
public sealed record StoredGradient(string Kind, System.Text.Json.JsonElement Data, string Role)
{
    public static StoredGradient From(GradientValue gradient) =>
        new(gradient.Data.Kind, System.Text.Json.JsonDocument.Parse(gradient.Data.ToJson()).RootElement.Clone(), gradient.Role);

    public GradientValue ToGradient() => new(VariableData.FromStored(Kind, Data.GetRawText()), Role);
}

/// <summary>One root of a backward pass, resolved when the pass was requested.</summary>
public sealed record BackwardRoot(Guid VariableId, Guid NodeId, int OutputNr, StoredGradient Gradient);

/// <summary>
/// A backward job's request, resolved and checked by the API: the worker needs nothing else, and
/// later edits to the gradient variables do not change a queued pass.
/// </summary>
public sealed record BackwardJobArguments(IReadOnlyList<BackwardRoot> Roots, IReadOnlyList<Guid>? Inputs, bool RetainGraph, bool CreateGraph)
{
    public const string JobType = "backward";

    public IReadOnlyList<RootGradient> RootGradients() =>
        [.. Roots.Select(r => new RootGradient(r.VariableId, r.NodeId, r.OutputNr, r.Gradient.ToGradient()))];
}
