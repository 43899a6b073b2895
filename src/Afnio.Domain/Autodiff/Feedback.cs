using Afnio.Domain.Variables;

namespace Afnio.Domain.Autodiff;

/// <summary>The reference's fixed gradient wordings.</summary>
public static class Feedback
{
    /// <summary>The role of a gradient for a variable: <c>feedback to &lt;role&gt;</c>.</summary>
    public static string RoleFor(string variableRole) => $"feedback to {variableRole}";

    /// <summary>
    /// Add, Sum and Split backward: <c>Here is the combined feedback we got for this specific &lt;role&gt;
    /// and other variables: &lt;feedback&gt;</c>. An empty incoming gradient passes through as <c>""</c>.
    /// </summary>
    public static GradientValue Combined(string inputRole, GradientValue output) =>
        output.IsEmpty
            ? GradientValue.Empty(RoleFor(inputRole))
            : new(VariableData.Of($"Here is the combined feedback we got for this specific {inputRole} and other variables: {output.Text}"),
                RoleFor(inputRole));

    /// <summary>Wraps each text in <c>&lt;ITEM&gt;…&lt;/ITEM&gt;</c> and concatenates them.</summary>
    public static string Items(IEnumerable<string> texts) => string.Concat(texts.Select(t => $"<ITEM>{t}</ITEM>"));
}
