using Afnio.Domain.Autodiff.Ops;
using Afnio.Domain.LanguageModels;

namespace Afnio.Domain.Tests.LanguageModels;

public sealed class FeedbackPromptsTests
{
    private static Conversation Exchange(string input, string output) =>
        new([new ChatMessage("system", "Classify the sentiment."), new ChatMessage("user", input)], output);

    [Fact]
    public void SystemPrompt_AsksForFeedbackOnly()
    {
        Assert.Contains("gradient engine", FeedbackPrompts.GradientEngineSystemPrompt, StringComparison.Ordinal);
        Assert.Contains("Never rewrite the variable", FeedbackPrompts.GradientEngineSystemPrompt, StringComparison.Ordinal);
    }

    [Fact]
    public void ChatBackward_HasTheRole_Conversation_Feedback_AndVariable()
    {
        var prompt = FeedbackPrompts.ChatBackward("system prompt for sentiment classification", "Classify the sentiment.",
            [Exchange("I love it", "negative")], batched: false, ChatCompletionOperation.OutputRole, "The label is wrong.");

        Assert.Contains("<ROLE>system prompt for sentiment classification</ROLE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<LM_SYSTEM_PROMPT>Classify the sentiment.</LM_SYSTEM_PROMPT>", prompt, StringComparison.Ordinal);
        Assert.Contains("<LM_INPUT>I love it</LM_INPUT>", prompt, StringComparison.Ordinal);
        Assert.Contains("<LM_OUTPUT>negative</LM_OUTPUT>", prompt, StringComparison.Ordinal);
        Assert.Contains("<OBJECTIVE_FUNCTION>", prompt, StringComparison.Ordinal);
        Assert.Contains("<FEEDBACK>The label is wrong.</FEEDBACK>", prompt, StringComparison.Ordinal);
        Assert.Contains("<VARIABLE>Classify the sentiment.</VARIABLE>", prompt, StringComparison.Ordinal);
        Assert.DoesNotContain("<EXAMPLE", prompt, StringComparison.Ordinal);
    }

    [Fact]
    public void ChatBackward_Batch_WrapsEachConversationInAnIndexedExample()
    {
        var prompt = FeedbackPrompts.ChatBackward("input text", "x",
            [Exchange("a", "A"), Exchange("b", "B")], batched: true, ChatCompletionOperation.OutputRole, "feedback");

        Assert.Contains("<EXAMPLE index=\"0\">\n<LM_SYSTEM_PROMPT>", prompt, StringComparison.Ordinal);
        Assert.Contains("<LM_OUTPUT>A</LM_OUTPUT>\n</EXAMPLE>\n<EXAMPLE index=\"1\">", prompt, StringComparison.Ordinal);
        Assert.Contains("<LM_INPUT>b</LM_INPUT>\n<LM_OUTPUT>B</LM_OUTPUT>\n</EXAMPLE>", prompt, StringComparison.Ordinal);
    }

    [Fact]
    public void ChatBackward_WithoutFeedback_AsksToImproveTheOutputForItsRole()
    {
        var prompt = FeedbackPrompts.ChatBackward("instruction", "x", [Exchange("a", "A")], false, ChatCompletionOperation.OutputRole, "");

        Assert.DoesNotContain("<FEEDBACK>", prompt, StringComparison.Ordinal);
        Assert.Contains("serves its role (response from the language model) better", prompt, StringComparison.Ordinal);
    }

    [Fact]
    public void Conversations_SeveralNonSystemMessages_AreEachTagged()
    {
        var text = FeedbackPrompts.Conversations(
            [new Conversation([new ChatMessage("user", "q1"), new ChatMessage("assistant", "a1"), new ChatMessage("user", "q2")], "a2")], false);

        Assert.DoesNotContain("<LM_SYSTEM_PROMPT>", text, StringComparison.Ordinal);
        Assert.Contains("<MESSAGE role=\"assistant\">a1</MESSAGE>", text, StringComparison.Ordinal);
        Assert.EndsWith("<LM_OUTPUT>a2</LM_OUTPUT>", text, StringComparison.Ordinal);
    }

    [Fact]
    public void JudgePredictionPrompt_HasTheRole_JudgeConversation_Score_FeedbackAndVariable()
    {
        var prompt = JudgeFeedback.PredictionPrompt("answer to the question", "Paris",
            [Exchange("Is 'Paris' right?", "{\"score\": 1, \"explanation\": \"yes\"}")], false, "1", "Be more concise.");

        Assert.Contains("<ROLE>answer to the question</ROLE>", prompt, StringComparison.Ordinal);
        Assert.Contains("<LM_INPUT>Is 'Paris' right?</LM_INPUT>", prompt, StringComparison.Ordinal);
        Assert.Contains("The judge's score was 1.", prompt, StringComparison.Ordinal);
        Assert.Contains("<FEEDBACK>Be more concise.</FEEDBACK>", prompt, StringComparison.Ordinal);
        Assert.Contains("<VARIABLE>Paris</VARIABLE>", prompt, StringComparison.Ordinal);
    }
}
