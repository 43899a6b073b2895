using Afnio.Domain.Common;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Tests.LanguageModels;

public sealed class PromptTemplateTests
{
    private static readonly Dictionary<string, string> Values = new()
    {
        ["name"] = "Ada",
        ["x"] = "1",
        ["y"] = "2",
        ["_under_score9"] = "ok",
        ["emoji"] = "🎉 ünïcödé",
    };

    [Theory]
    [InlineData("Hello {name}!", "Hello Ada!")]
    [InlineData("{x}{y}", "12")]
    [InlineData("{x} + {x} = 2", "1 + 1 = 2")]
    [InlineData("{_under_score9}", "ok")]
    [InlineData("Party: {emoji} — ✓ {name}", "Party: 🎉 ünïcödé — ✓ Ada")]
    [InlineData("", "")]
    [InlineData("no braces at all", "no braces at all")]
    public void Fill_ReplacesPlaceholders(string text, string expected) =>
        Assert.Equal(expected, PromptTemplate.Fill(text, Values));

    [Theory]
    [InlineData("{{x}}", "{x}")]
    [InlineData("{{", "{")]
    [InlineData("}}", "}")]
    [InlineData("{{{x}}}", "{1}")]
    [InlineData("a {{b}} {x}", "a {b} 1")]
    public void Fill_TreatsDoubledBracesAsEscapes(string text, string expected) =>
        Assert.Equal(expected, PromptTemplate.Fill(text, Values));

    [Theory]
    [InlineData("Answer as {\"score\": 1, \"explanation\": \"...\"}")]
    [InlineData("{}")]
    [InlineData("{ }")]
    [InlineData("a lone } and a lone {")]
    [InlineData("{0} and {x:>3} and {1name} and {na-me}")]
    [InlineData("{")]
    [InlineData("}")]
    [InlineData("{name")]
    public void Fill_LeavesOtherBracesAlone(string text) =>
        Assert.Equal(text, PromptTemplate.Fill(text, Values));

    [Fact]
    public void Fill_JsonExample_WithPlaceholderInside_FillsOnlyThePlaceholder() =>
        Assert.Equal("{\"user\": \"Ada\", \"n\": 1}", PromptTemplate.Fill("{\"user\": \"{name}\", \"n\": {x}}", Values));

    [Fact]
    public void Fill_DoesNotReadBracesInsideValues() =>
        Assert.Equal("v={y}", PromptTemplate.Fill("v={v}", new Dictionary<string, string> { ["v"] = "{y}" }));

    [Fact]
    public void Fill_MissingInput_IsA400_NamingThePlaceholder()
    {
        var error = Assert.Throws<AfnioException>(() => PromptTemplate.Fill("Hi {name}, {missing}", Values));

        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.Equal("missing_input", error.Code);
        Assert.Equal("inputs", error.Param);
        Assert.Equal("The prompt has a placeholder '{missing}' but no input named 'missing' was given. "
            + "Pass it in 'inputs', or write '{{missing}}' for literal braces.", error.Message);
    }

    [Fact]
    public void Placeholders_ListsNamesOnce_InOrder_SkippingEscapes() =>
        Assert.Equal(["b", "a"], PromptTemplate.Placeholders("{b} {{c}} {a} {b} {\"json\": 1} {}"));
}
