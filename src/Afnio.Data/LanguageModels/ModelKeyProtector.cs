using Microsoft.AspNetCore.DataProtection;

namespace Afnio.Data.LanguageModels;

/// <summary>
/// Encrypts provider keys at rest with ASP.NET Data Protection. The key ring lives in PostgreSQL
/// (<c>data_protection_keys</c>), so the API, which stores a key, and the Worker, which uses it, share it.
/// </summary>
public sealed class ModelKeyProtector(IDataProtectionProvider provider)
{
    private readonly IDataProtector _protector = provider.CreateProtector("Afnio.ModelClients.ApiKey.v1");

    public string Protect(string apiKey) => _protector.Protect(apiKey);

    public string Unprotect(string protectedKey) => _protector.Unprotect(protectedKey);
}
