// Hand-written companion of the generated AfnioClient.g.cs.
namespace Afnio.Client;

public partial class AfnioClient
{
    // Fields left null are left out of requests: on create the server applies its defaults,
    // on PATCH the field stays as it is. (To store JSON null as data, pass a JsonElement null.)
    static partial void UpdateJsonSerializerSettings(System.Text.Json.JsonSerializerOptions settings) =>
        settings.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
}
