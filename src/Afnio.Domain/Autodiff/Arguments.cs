using System.Text.Json;
using Afnio.Domain.Common;

namespace Afnio.Domain.Autodiff;

/// <summary>Reads operation arguments from a request body, with errors that name the field.</summary>
public static class Arguments
{
    /// <summary>Checks that the arguments are an object holding only <paramref name="allowed"/> fields.</summary>
    public static void EnsureObject(JsonElement arguments, params string[] allowed)
    {
        if (arguments.ValueKind != JsonValueKind.Object)
        {
            throw AfnioException.Invalid("invalid_arguments", "The operation's arguments must be a JSON object.");
        }

        foreach (var property in arguments.EnumerateObject())
        {
            if (!allowed.Contains(property.Name))
            {
                throw AfnioException.Invalid("unknown_field",
                    $"Unknown field '{property.Name}'. This operation takes: {string.Join(", ", allowed)}.", property.Name);
            }
        }
    }

    /// <summary>A required variable id.</summary>
    public static Guid Variable(JsonElement arguments, string name) =>
        arguments.TryGetProperty(name, out var value) ? VariableId(value, name)
            : throw AfnioException.Invalid("missing_field", $"'{name}' is required: a variable id (var_…).", name);

    /// <summary>A required, non-empty list of variable ids.</summary>
    public static IReadOnlyList<Guid> VariableList(JsonElement arguments, string name)
    {
        if (!arguments.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.Array)
        {
            throw AfnioException.Invalid(value.ValueKind == JsonValueKind.Undefined ? "missing_field" : "invalid_type",
                $"'{name}' must be a list of variable ids (var_…).", name);
        }

        return [.. value.EnumerateArray().Select((item, i) => VariableId(item, $"{name}[{i}]"))];
    }

    /// <summary>An optional argument that may be a variable id or a plain value; absent gives null.</summary>
    public static Argument? VariableOrLiteral(JsonElement arguments, string name)
    {
        if (!arguments.TryGetProperty(name, out var value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String && PrefixedId.TryParse(PrefixedId.Variable, value.GetString(), out var id)
            ? new Argument.Var(id)
            : new Argument.Literal(value.Clone());
    }

    private static Guid VariableId(JsonElement value, string param) =>
        value.ValueKind == JsonValueKind.String && PrefixedId.TryParse(PrefixedId.Variable, value.GetString(), out var id)
            ? id
            : throw AfnioException.Invalid("invalid_id", $"'{param}' must be a variable id (var_…).", param);
}
