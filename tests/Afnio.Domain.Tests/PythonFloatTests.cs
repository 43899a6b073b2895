using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests;

public sealed class PythonFloatTests
{
    [Theory]
    [InlineData(1.0, "1.0")]
    [InlineData(0.0, "0.0")]
    [InlineData(-0.0, "-0.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(3.5, "3.5")]
    [InlineData(-2.25, "-2.25")]
    [InlineData(100.0, "100.0")]
    [InlineData(123456789.125, "123456789.125")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1.5e16, "1.5e+16")]
    [InlineData(1e22, "1e+22")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00001, "1e-05")]
    [InlineData(2.5e-7, "2.5e-07")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(5e-324, "5e-324")]
    [InlineData(0.30000000000000004, "0.30000000000000004")]
    public void Repr_MatchesPython(double value, string expected) => Assert.Equal(expected, PythonFloat.Repr(value));
}
