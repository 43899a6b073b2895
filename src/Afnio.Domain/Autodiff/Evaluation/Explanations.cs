using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff.Evaluation;

/// <summary>
/// The explanation texts of the deterministic evaluators (semantics §2.3), word for word. <c>&lt;DATA&gt;</c>
/// is part of the text; values and scores are printed as Python's <c>str()</c> prints them.
/// </summary>
public static class Explanations
{
    /// <summary>
    /// A scalar evaluation: <c>The evaluation function, designed for '&lt;purpose&gt;', compared the &lt;DATA&gt;
    /// field of the predicted variable ('&lt;pred&gt;') with the &lt;DATA&gt; field of the target variable
    /// ('&lt;target&gt;'), resulting in a score: &lt;score&gt;.</c>
    /// </summary>
    public static string Scalar(string purpose, Scalar prediction, Scalar target, Scalar score) =>
        $"The evaluation function, designed for '{purpose}', compared the <DATA> field of the predicted variable "
        + $"('{prediction.ToPythonString()}') with the <DATA> field of the target variable ('{target.ToPythonString()}'), "
        + $"resulting in a score: {score.ToPythonString()}.";

    /// <summary>A batch whose scores were reduced to one.</summary>
    public static string BatchReduced(string purpose, string reductionPurpose, Scalar score) =>
        $"{BatchOpening(purpose)}. These scores were then aggregated using the reduction function '{reductionPurpose}', "
        + $"resulting in a final aggregated score: {score.ToPythonString()}.";

    /// <summary>
    /// A batch without a reduction (not documented by the reference; its recommended wording): the same
    /// opening, then the list of scores as Python prints it, e.g. <c>[0, 1]</c>.
    /// </summary>
    public static string BatchUnreduced(string purpose, IReadOnlyList<Scalar> scores) =>
        $"{BatchOpening(purpose)}: {VariableData.List(scores)}.";

    private static string BatchOpening(string purpose) =>
        $"The evaluation function, designed for '{purpose}', compared the <DATA> fields of the predicted variable and "
        + "the target variable across all samples in the batch, generating individual scores for each pair";
}
