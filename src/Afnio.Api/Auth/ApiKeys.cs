using System.Security.Cryptography;
using System.Text;

namespace Afnio.Api.Auth;

/// <summary>
/// Project keys are <c>afn_</c> and user keys <c>afu_</c>, then 43 random base62 characters (about
/// 256 bits). With that much entropy a single SHA-256 is a safe verifier: there is nothing to brute-force.
/// </summary>
public static class ApiKeys
{
    public const string Prefix = "afn_";
    public const string UserPrefix = "afu_";
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    private static readonly System.Buffers.SearchValues<char> Base62 = System.Buffers.SearchValues.Create(Alphabet);

    public static string Generate() => Prefix + RandomNumberGenerator.GetString(Alphabet, 43);

    public static string GenerateUserKey() => UserPrefix + RandomNumberGenerator.GetString(Alphabet, 43);

    /// <summary>True for <c>afn_</c> or <c>afu_</c> and 43 base62 characters: anything else cannot be a key and needs no lookup.</summary>
    public static bool HasKeyFormat(string token) =>
        token.Length == Prefix.Length + 43
        && (token.StartsWith(Prefix, StringComparison.Ordinal) || token.StartsWith(UserPrefix, StringComparison.Ordinal))
        && token.AsSpan(Prefix.Length).IndexOfAnyExcept(Base62) < 0;

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    public static string Hint(string key) => key[^4..];

    /// <summary>Constant-time comparison of two secrets of any length.</summary>
    public static bool SecretEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(a)), SHA256.HashData(Encoding.UTF8.GetBytes(b)));
}
