using System.Text.Json;
using Afnio.Domain.Autodiff;
using Afnio.Domain.Autodiff.Ops;
using Afnio.Domain.Common;

namespace Afnio.Domain.Tests.Autodiff;

public sealed class ChatCompletionBindTests
{
    private static readonly string Model = PrefixedId.Format(PrefixedId.Model, PrefixedId.NewGuid());

    private static OpCall Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return ChatCompletionOperation.Parse(doc.RootElement);
    }

    private static AfnioException Refused(string json) => Assert.Throws<AfnioException>(() => Parse(json));

    private static string Messages(params Guid[] userContent) =>
        $"[{{\"role\": \"user\", \"content\": [{string.Join(", ", userContent.Select(id => $"\"{Tape.Id(id)}\""))}]}}]";

    [Fact]
    public void Parse_Edges_AreContentInMessageOrder_ThenInputsInOrder_WithDuplicates()
    {
        var (system, user1, user2, q, list1, list2) =
            (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var call = Parse($$"""
            {
              "model_id": "{{Model}}",
              "messages": [
                {"role": "system", "content": ["{{Tape.Id(system)}}"]},
                {"role": "user", "content": ["{{Tape.Id(user1)}}", "{{Tape.Id(user2)}}"]}
              ],
              "inputs": {"text": "plain", "q": "{{Tape.Id(q)}}", "many": ["a", "b"],
                         "vars": ["{{Tape.Id(list1)}}", "{{Tape.Id(list2)}}"], "again": "{{Tape.Id(system)}}"},
              "completion_args": {"temperature": 0, "n": 1}
            }
            """);

        Assert.Equal([system, user1, user2, q, list1, list2, system], call.Variables);
    }

    [Theory]
    [InlineData("{\"messages\": []}", "missing_field", "model_id")]
    [InlineData("{\"model_id\": \"var_0194f1c2a3b47c8d9e0f1a2b3c4d5e6f\", \"messages\": []}", "invalid_id", "model_id")]
    [InlineData("{\"model_id\": 3, \"messages\": []}", "invalid_id", "model_id")]
    [InlineData("{\"model_id\": \"MODEL\"}", "missing_field", "messages")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": []}", "invalid_value", "messages")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": {}}", "invalid_type", "messages")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": [\"hi\"]}", "invalid_type", "messages[0]")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": [{\"content\": [\"VAR\"]}]}", "missing_field", "messages[0].role")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": [{\"role\": \"\", \"content\": [\"VAR\"]}]}", "invalid_type", "messages[0].role")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": [{\"role\": \"user\"}]}", "missing_field", "messages[0].content")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": [{\"role\": \"user\", \"content\": []}]}", "invalid_value", "messages[0].content")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"VAR\"}]}", "invalid_type", "messages[0].content")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": [{\"role\": \"user\", \"content\": [\"VAR\", \"hello\"]}]}", "invalid_id", "messages[0].content[1]")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": [{\"role\": \"user\", \"content\": [\"VAR\"], \"name\": \"x\"}]}", "unknown_field", "messages[0].name")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": MESSAGES, \"inputs\": []}", "invalid_type", "inputs")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": MESSAGES, \"inputs\": {\"a\": 1}}", "invalid_type", "inputs.a")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": MESSAGES, \"inputs\": {\"a\": [\"x\", 1]}}", "invalid_type", "inputs.a")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": MESSAGES, \"inputs\": {\"a\": [\"x\", \"VAR\"]}}", "invalid_input", "inputs.a")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": MESSAGES, \"completion_args\": \"hot\"}", "invalid_type", "completion_args")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": MESSAGES, \"completion_args\": {\"stream\": true}}", "unsupported_argument", "completion_args.stream")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": MESSAGES, \"completion_args\": {\"messages\": []}}", "unsupported_argument", "completion_args.messages")]
    [InlineData("{\"model_id\": \"MODEL\", \"messages\": MESSAGES, \"temperature\": 0}", "unknown_field", "temperature")]
    public void Parse_RefusesBadArguments_NamingTheField(string json, string code, string param)
    {
        var error = Refused(json.Replace("MESSAGES", Messages(Guid.NewGuid()), StringComparison.Ordinal)
            .Replace("MODEL", Model, StringComparison.Ordinal)
            .Replace("VAR", Tape.Id(Guid.NewGuid()), StringComparison.Ordinal));

        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.Equal(code, error.Code);
        Assert.Equal(param, error.Param);
    }

    [Fact]
    public void Parse_RefusesNAboveOne_WithTheClientsMessage()
    {
        var error = Refused($"{{\"model_id\": \"{Model}\", \"messages\": {Messages(Guid.NewGuid())}, \"completion_args\": {{\"n\": 2}}}}");

        Assert.Equal("unsupported_argument", error.Code);
        Assert.Equal("n > 1 is not supported for chat completions.", error.Message);
    }

    [Fact]
    public void Parse_AcceptsNullOptionalFields()
    {
        var content = Guid.NewGuid();

        var call = Parse($"{{\"model_id\": \"{Model}\", \"messages\": {Messages(content)}, \"inputs\": null, \"completion_args\": null}}");

        Assert.Equal([content], call.Variables);
    }
}
