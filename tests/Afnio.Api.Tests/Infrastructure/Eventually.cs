namespace Afnio.Api.Tests.Infrastructure;

/// <summary>Polls until something has happened, failing the test with an explanation when it does not in time.</summary>
public static class Eventually
{
    public static async Task UntilAsync(Func<Task<bool>> happened, TimeSpan timeout, Func<string> otherwise, int pollMs = 10)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await happened())
        {
            Assert.True(DateTime.UtcNow < deadline, otherwise());
            await Task.Delay(pollMs);
        }
    }
}
