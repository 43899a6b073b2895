using System.Text.Json;
using System.Text.Json.Serialization;

namespace Afnio.Api.Infrastructure;

/// <summary>
/// Writes a dictionary whose keys the user chose (parameter names, model roles) exactly as given:
/// the API's snake_case key policy is for our own keys, and <c>systemPrompt</c> must stay <c>systemPrompt</c>.
/// </summary>
public sealed class UserKeysConverter : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) =>
        typeToConvert.IsGenericType && typeToConvert.GetGenericTypeDefinition() == typeof(IReadOnlyDictionary<,>)
        && typeToConvert.GetGenericArguments()[0] == typeof(string);

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(Converter<>).MakeGenericType(typeToConvert.GetGenericArguments()[1]))!;

    private sealed class Converter<TValue> : JsonConverter<IReadOnlyDictionary<string, TValue>>
    {
        public override IReadOnlyDictionary<string, TValue>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            JsonSerializer.Deserialize<Dictionary<string, TValue>>(ref reader, options);

        public override void Write(Utf8JsonWriter writer, IReadOnlyDictionary<string, TValue> value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            foreach (var (key, item) in value)
            {
                writer.WritePropertyName(key);
                JsonSerializer.Serialize(writer, item, options);
            }

            writer.WriteEndObject();
        }
    }
}
