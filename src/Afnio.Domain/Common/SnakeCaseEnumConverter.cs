using System.Text.Json;
using System.Text.Json.Serialization;

namespace Afnio.Domain.Common;

/// <summary>Writes enum values as snake_case strings (<c>Succeeded</c> → <c>succeeded</c>).</summary>
/// <typeparam name="TEnum">The enum type.</typeparam>
public sealed class SnakeCaseEnumConverter<TEnum>() : JsonStringEnumConverter<TEnum>(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false)
    where TEnum : struct, Enum;
