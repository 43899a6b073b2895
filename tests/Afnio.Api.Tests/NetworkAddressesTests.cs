using System.Net;
using Afnio.Data;

namespace Afnio.Api.Tests;

/// <summary>The address check behind the SSRF guard, at registration and at every connection.</summary>
public sealed class NetworkAddressesTests
{
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("10.1.2.3")]
    [InlineData("172.16.0.1")]
    [InlineData("192.168.1.1")]
    [InlineData("169.254.169.254")]
    [InlineData("100.64.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("0.1.2.3")]
    [InlineData("224.0.0.1")]
    [InlineData("255.255.255.255")]
    [InlineData("192.0.2.10")]
    [InlineData("198.51.100.7")]
    [InlineData("203.0.113.9")]
    [InlineData("::1")]
    [InlineData("::")]
    [InlineData("fe80::1")]
    [InlineData("fc00::1")]
    [InlineData("fd12:3456::1")]
    [InlineData("ff02::1")]
    [InlineData("::ffff:127.0.0.1")]
    [InlineData("::ffff:10.0.0.1")]
    [InlineData("::127.0.0.1")]
    [InlineData("::ffff:0:7f00:1")]
    [InlineData("64:ff9b::a9fe:a9fe")]
    [InlineData("64:ff9b:1::a00:1")]
    [InlineData("2002:a9fe:a9fe::1")]
    [InlineData("2002:7f00:1::")]
    [InlineData("2001:db8::1")]
    [InlineData("100::1")]
    [InlineData("2001:0:4136:e378:8000:63bf:3fff:fdd2")]
    public void InternalAddresses_AreNotPublic(string address) => Assert.False(NetworkAddresses.IsPublic(IPAddress.Parse(address)));

    [Theory]
    [InlineData("93.184.216.34")]
    [InlineData("8.8.8.8")]
    [InlineData("1.1.1.1")]
    [InlineData("2606:4700:4700::1111")]
    [InlineData("::ffff:93.184.216.34")]
    [InlineData("2002:5db8:d822::1")]
    public void PublicAddresses_ArePublic(string address) => Assert.True(NetworkAddresses.IsPublic(IPAddress.Parse(address)));

    [Theory]
    [InlineData("127.0.0.1.")]
    [InlineData("localhost.")]
    [InlineData("localhost")]
    public async Task ConnectingToAnInternalHost_IsRefusedAtOnce_EvenWrittenWithATrailingDot(string host)
    {
        using var handler = new System.Net.Http.SocketsHttpHandler
        {
            ConnectCallback = NetworkAddresses.GuardedConnect(allowPrivate: false, h => $"refused {h}"),
        };
        using var client = new HttpClient(handler);

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(new Uri($"http://{host}:9/")));

        Assert.Equal($"refused {host.TrimEnd('.')}", BlockedAddressException.Find(failure)?.Message);
    }

    [Fact]
    public void ModelCalls_IgnoreProxyVariables_UnlessTheOperatorAsks()
    {
        using var plain = Afnio.Data.LanguageModels.OpenAiTransport.CreateHandler(new Afnio.Data.LanguageModels.ModelOptions());
        using var proxied = Afnio.Data.LanguageModels.OpenAiTransport.CreateHandler(new Afnio.Data.LanguageModels.ModelOptions { UseProxy = true });

        Assert.False(plain.UseProxy);
        Assert.False(plain.AllowAutoRedirect);
        Assert.NotNull(plain.ConnectCallback);
        Assert.True(proxied.UseProxy);
    }
}
