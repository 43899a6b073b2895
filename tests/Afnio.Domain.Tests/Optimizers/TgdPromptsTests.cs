using Afnio.Domain.LanguageModels;
using Afnio.Domain.Optimizers;

namespace Afnio.Domain.Tests.Optimizers;

public sealed class TgdPromptsTests
{
    [Theory]
    [InlineData("<IMPROVED_VARIABLE>INITIAL VALUE</IMPROVED_VARIABLE>", "INITIAL VALUE")]
    [InlineData("Sure.\n<IMPROVED_VARIABLE>\nVALORE INIZIALE\n</IMPROVED_VARIABLE>\nDone.", "VALORE INIZIALE")]
    [InlineData("<IMPROVED_VARIABLE>  keeps inner spaces  </IMPROVED_VARIABLE>", "  keeps inner spaces  ")]
    [InlineData("<IMPROVED_VARIABLE>line one\nline two</IMPROVED_VARIABLE><IMPROVED_VARIABLE>second</IMPROVED_VARIABLE>", "line one\nline two")]
    [InlineData("<IMPROVED_VARIABLE>{\"json\": true}</IMPROVED_VARIABLE>", "{\"json\": true}")]
    public void ImprovedValue_IsTheTextBetweenTheFirstPairOfTags(string reply, string expected) =>
        Assert.Equal(expected, TgdPrompts.ExtractImprovedValue(reply));

    [Theory]
    [InlineData("INITIAL VALUE")]
    [InlineData("<IMPROVED_VARIABLE>never closed")]
    [InlineData("</IMPROVED_VARIABLE>backwards<IMPROVED_VARIABLE>")]
    [InlineData("<IMPROVED_VARIABLE>\n  \n</IMPROVED_VARIABLE>")]
    [InlineData("<improved_variable>lower case</improved_variable>")]
    [InlineData("")]
    public void RepliesWithoutAUsableValue_GiveNull_SoTheParameterKeepsItsValue(string reply) =>
        Assert.Null(TgdPrompts.ExtractImprovedValue(reply));

    [Fact]
    public void UserPrompt_HoldsRoleValueEveryGradientTheHistoryAndTheConstraints_AndAsksForTheTags()
    {
        var prompt = TgdPrompts.UserPrompt(new TgdRequest(
            "system prompt for sentiment classification",
            "Classify the sentiment.",
            ["Use only capital letters", "Translate the parameter to Italian"],
            [new PastIteration("classify", ["Too short."]), new PastIteration("Classify it", ["Say which labels exist.", "Be polite."])],
            ["Do not use curly braces."]));

        Assert.Contains("<ROLE>system prompt for sentiment classification</ROLE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<VARIABLE>Classify the sentiment.</VARIABLE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<FEEDBACK index=\"0\">Use only capital letters</FEEDBACK>", prompt, StringComparison.Ordinal);
        Assert.Contains("<FEEDBACK index=\"1\">Translate the parameter to Italian</FEEDBACK>", prompt, StringComparison.Ordinal);
        Assert.True(prompt.IndexOf("<VALUE>classify</VALUE>", StringComparison.Ordinal) < prompt.IndexOf("<VALUE>Classify it</VALUE>", StringComparison.Ordinal));
        Assert.Contains("<FEEDBACK>Be polite.</FEEDBACK>", prompt, StringComparison.Ordinal);
        Assert.Contains("<CONSTRAINT>Do not use curly braces.</CONSTRAINT>", prompt, StringComparison.Ordinal);
        Assert.EndsWith("between <IMPROVED_VARIABLE> and </IMPROVED_VARIABLE>, with nothing else inside the tags.", prompt, StringComparison.Ordinal);
    }

    [Fact]
    public void UserPrompt_LeavesOutEmptySections()
    {
        var prompt = TgdPrompts.UserPrompt(new TgdRequest("r", "v", ["f"], [], []));

        Assert.DoesNotContain("PAST_ITERATION", prompt, StringComparison.Ordinal);
        Assert.DoesNotContain("CONSTRAINT", prompt, StringComparison.Ordinal);
        var messages = TgdPrompts.Messages(new TgdRequest("r", "v", ["f"], [], []));
        Assert.Equal(["system", "user"], messages.Select(m => m.Role));
        Assert.Contains("<IMPROVED_VARIABLE>", messages[0].Content, StringComparison.Ordinal);
    }

    [Fact]
    public void MomentumWindow_KeepsTheLastKEntries_OldestFirst()
    {
        IReadOnlyList<int> window = [];
        for (var step = 1; step <= 10; step++)
        {
            window = MomentumWindow.Push(window, step, 3);
        }

        Assert.Equal([8, 9, 10], window);
        Assert.Empty(MomentumWindow.Push(window, 11, 0));
        Assert.Equal([1], MomentumWindow.Push([], 1, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => MomentumWindow.Push(window, 1, -1));
    }

    [Fact]
    public void Conversation_WithoutCustomMessages_IsTheBuiltInPrompts()
    {
        var request = new TgdRequest("r", "v", ["f"], [], []);

        Assert.Equal(TgdPrompts.Messages(request), TgdConversation.Build(request, null, new Dictionary<string, string>()));
    }

    [Fact]
    public void Conversation_CustomMessagesWithoutReservedNames_AreFollowedByTheBuiltInUserPrompt()
    {
        var request = new TgdRequest("role", "value", ["make it shorter"], [], []);

        var messages = TgdConversation.Build(request,
            [new ChatMessage("system", "You edit prompts for {product}."), new ChatMessage("user", "Example: {{json}} stays")],
            new Dictionary<string, string> { ["product"] = "a help desk" });

        Assert.Equal(
            [new ChatMessage("system", "You edit prompts for a help desk."), new ChatMessage("user", "Example: {json} stays"),
             new ChatMessage("user", TgdPrompts.UserPrompt(request))],
            messages);
    }

    [Fact]
    public void Conversation_CustomMessagesWithReservedNames_AreTheWholeConversation()
    {
        var request = new TgdRequest("role", "value", ["a", "b"], [new PastIteration("old", ["bad"])], ["short"]);

        var messages = TgdConversation.Build(request,
            [new ChatMessage("user", "{variable_role}|{variable_value}|{feedback}|{past_iterations}|{constraints}")],
            new Dictionary<string, string>());

        var only = Assert.Single(messages);
        Assert.Equal(
            $"role|value|{TgdPrompts.FeedbackBlock(request)}|{TgdPrompts.HistoryBlock(request)}|{TgdPrompts.ConstraintsBlock(request)}",
            only.Content);
        Assert.Contains("<FEEDBACK index=\"1\">b</FEEDBACK>", only.Content, StringComparison.Ordinal);
        Assert.Contains("<VALUE>old</VALUE>", only.Content, StringComparison.Ordinal);
    }

    [Fact]
    public void Conversation_APlaceholderWithoutAValue_IsAMissingInputError()
    {
        var error = Assert.Throws<Common.AfnioException>(() => TgdConversation.Build(
            new TgdRequest("r", "v", ["f"], [], []), [new ChatMessage("system", "Hi {nobody}")], new Dictionary<string, string>()));

        Assert.Equal("missing_input", error.Code);
    }
}
