namespace Afnio.Domain.Common;

/// <summary>
/// The sizes one request (or one operation inside a job) may reach. Every limit is checked before
/// any work is done: a request over one is refused with a stable code and the limit in its message,
/// and no model call is made. Bound from the configuration section <see cref="Section"/>.
/// </summary>
public sealed class OperationLimits
{
    /// <summary>The configuration section (<c>Afnio__Limits__…</c> as environment variables).</summary>
    public const string Section = "Afnio:Limits";

    /// <summary>The defaults, for callers without configuration (validation, tests of the engine).</summary>
    public static OperationLimits Default { get; } = new();

    /// <summary>UTF-8 bytes of the message contents of one model call (forward, backward and optimizer calls).</summary>
    public long MaxPromptBytesPerCall { get; set; } = 4L * 1024 * 1024;

    /// <summary>UTF-8 bytes of the rendered prompts of every item of one operation call, all batch items together.</summary>
    public long MaxPromptBytesPerRequest { get; set; } = 16L * 1024 * 1024;

    /// <summary><c>{placeholder}</c> occurrences in one message of a prompt template.</summary>
    public int MaxPlaceholdersPerTemplate { get; set; } = 256;

    /// <summary>Items of one batched operation call (one model call each).</summary>
    public int MaxBatchItems { get; set; } = 1000;

    /// <summary>Characters of a variable's role.</summary>
    public int MaxRoleLength { get; set; } = 1000;

    /// <summary>Output variables of one operation call (<c>split</c> makes one per part).</summary>
    public int MaxOutputs { get; set; } = 1000;

    /// <summary>Variables one request names (an operation's arguments, a list of inputs, backward roots).</summary>
    public int MaxVariablesPerRequest { get; set; } = 1000;

    /// <summary>
    /// Milliseconds of regex compiling and matching one evaluator call may spend over all its items
    /// (the deterministic evaluator's <c>regex</c> function); past it the call answers 400 <c>regex_budget_exceeded</c>.
    /// </summary>
    public int RegexBudgetMs { get; set; } = 2000;

    /// <summary>The regex budget as the evaluator takes it.</summary>
    public Autodiff.Evaluation.RegexLimits RegexLimits() => new(TimeSpan.FromMilliseconds(Math.Max(1, RegexBudgetMs)));

    /// <summary>Refuses a role longer than <see cref="MaxRoleLength"/> (code <c>role_too_long</c>).</summary>
    public string CheckRole(string role, string param)
    {
        ArgumentNullException.ThrowIfNull(role);
        return role.Length > MaxRoleLength
            ? throw AfnioException.Invalid("role_too_long",
                $"'{param}' has {role.Length} characters; a role has at most {MaxRoleLength} (setting Afnio__Limits__MaxRoleLength).", param)
            : role;
    }

    /// <summary>Refuses naming more than <see cref="MaxVariablesPerRequest"/> variables (code <c>too_many_variables</c>).</summary>
    public void CheckVariableCount(int count, string param)
    {
        if (count > MaxVariablesPerRequest)
        {
            throw AfnioException.Invalid("too_many_variables",
                $"'{param}' names {count} variables; one request names at most {MaxVariablesPerRequest} (setting Afnio__Limits__MaxVariablesPerRequest).", param);
        }
    }

    /// <summary>Refuses a batch of more than <see cref="MaxBatchItems"/> items (code <c>batch_too_large</c>).</summary>
    public void CheckBatchSize(int items, string? param)
    {
        if (items > MaxBatchItems)
        {
            throw AfnioException.Invalid("batch_too_large",
                $"The batch has {items} items; one call takes at most {MaxBatchItems} (setting Afnio__Limits__MaxBatchItems).", param);
        }
    }

    /// <summary>Refuses an operation that would make more than <see cref="MaxOutputs"/> outputs (code <c>too_many_outputs</c>).</summary>
    public void CheckOutputCount(int outputs, string? param)
    {
        if (outputs > MaxOutputs)
        {
            throw AfnioException.Invalid("too_many_outputs",
                $"The operation would make {outputs} outputs; one call makes at most {MaxOutputs} (setting Afnio__Limits__MaxOutputs).", param);
        }
    }

    /// <summary>Refuses a model call whose messages hold more than <see cref="MaxPromptBytesPerCall"/> bytes (code <c>prompt_too_large</c>, 413).</summary>
    public void CheckCallBytes(long bytes, string? param)
    {
        if (bytes > MaxPromptBytesPerCall)
        {
            throw AfnioException.TooLarge("prompt_too_large",
                $"The prompt of one model call would hold {bytes} bytes; the limit is {MaxPromptBytesPerCall} bytes per call " +
                "(setting Afnio__Limits__MaxPromptBytesPerCall).", param);
        }
    }

    /// <summary>Refuses an operation whose prompts hold more than <see cref="MaxPromptBytesPerRequest"/> bytes together (413).</summary>
    public void CheckRequestBytes(long bytes, string? param)
    {
        if (bytes > MaxPromptBytesPerRequest)
        {
            throw AfnioException.TooLarge("prompt_too_large",
                $"The prompts of this call's batch would hold more than {MaxPromptBytesPerRequest} bytes together " +
                $"(at least {bytes}); split the batch (setting Afnio__Limits__MaxPromptBytesPerRequest).", param);
        }
    }

    /// <summary>Refuses a template message with more than <see cref="MaxPlaceholdersPerTemplate"/> placeholders.</summary>
    public void CheckPlaceholders(int count, string param)
    {
        if (count > MaxPlaceholdersPerTemplate)
        {
            throw AfnioException.Invalid("too_many_placeholders",
                $"A message of the prompt has {count} placeholders; one message has at most {MaxPlaceholdersPerTemplate} " +
                "(setting Afnio__Limits__MaxPlaceholdersPerTemplate).", param);
        }
    }
}
