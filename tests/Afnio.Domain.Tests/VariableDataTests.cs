using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests;

public sealed class VariableDataTests
{
    [Theory]
    [InlineData("\"abc\"", "str")]
    [InlineData("3", "int")]
    [InlineData("3.0", "float")]
    [InlineData("-1e3", "float")]
    [InlineData("false", "bool")]
    [InlineData("null", "null")]
    [InlineData("[\"a\"]", "list[str]")]
    [InlineData("[1, 2]", "list[int]")]
    [InlineData("[1.5, 2.5]", "list[float]")]
    [InlineData("[]", "list[str]")]
    public void FromJson_ClassifiesScalarsAndLists(string json, string kind) =>
        Assert.Equal(kind, Json.Data(json).Kind);

    [Fact]
    public void FromJson_MixedIntsAndFloats_BecomeAllFloats()
    {
        var data = Json.Data("[1, 2, 3.5]");

        Assert.Equal("list[float]", data.Kind);
        Assert.Equal("[1.0,2.0,3.5]", data.ToJson());
    }

    [Fact]
    public void FromJson_PureIntList_StaysInts() => Assert.Equal("[1,2,3]", Json.Data("[1, 2, 3]").ToJson());

    [Fact]
    public void FromJson_Scalars_AreNeverConverted()
    {
        Assert.Equal("3", Json.Data("3").ToJson());
        Assert.Equal("3.0", Json.Data("3.0").ToJson());
        Assert.Equal("true", Json.Data("true").ToJson());
    }

    [Theory]
    [InlineData("[1, \"a\"]")]
    [InlineData("[[1], [2]]")]
    [InlineData("[true]")]
    [InlineData("[null]")]
    [InlineData("[{}]")]
    public void FromJson_NonHomogeneousLists_AreRefusedWithTheReferenceMessage(string json)
    {
        var error = Assert.Throws<AfnioException>(() => Json.Data(json));

        Assert.Equal("invalid_data", error.Code);
        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.StartsWith("When `data` is a list, it must be either all strings or all numbers (int, float).", error.Message);
    }

    [Fact]
    public void FromJson_NestedList_SaysWhereAndWhy()
    {
        var error = Assert.Throws<AfnioException>(() => Json.Data("[1, [2]]"));

        Assert.Contains("nested list at data[1]", error.Message);
        Assert.Equal("data[1]", error.Param);
    }

    [Fact]
    public void FromJson_Object_IsRefusedWithTheReferenceMessage()
    {
        var error = Assert.Throws<AfnioException>(() => Json.Data("{\"a\": 1}"));

        Assert.StartsWith("`data` must be a single value (str, int, float) or a list/tuple of such values.", error.Message);
    }

    [Fact]
    public void FromJson_IntegerBeyond64Bits_IsRefused() =>
        Assert.Contains("does not fit in 64 bits", Assert.Throws<AfnioException>(() => Json.Data("99999999999999999999")).Message);

    [Theory]
    [InlineData("str", "\"x\"")]
    [InlineData("int", "-7")]
    [InlineData("float", "1.0")]
    [InlineData("float", "1e+16")]
    [InlineData("bool", "true")]
    [InlineData("null", "null")]
    [InlineData("list[float]", "[1.0,2.5]")]
    [InlineData("list[int]", "[]")]
    public void FromStored_RoundTripsWithItsKind(string kind, string json)
    {
        var data = VariableData.FromStored(kind, json);

        Assert.Equal(kind, data.Kind);
        Assert.Equal(json, data.ToJson());
    }

    [Fact]
    public void FromStored_KeepsFloats_EvenWhenJsonbNormalizedTheNumber() =>
        // PostgreSQL's jsonb stores 1e+16 as 10000000000000000; the kind column keeps it a float.
        Assert.Equal("1e+16", VariableData.FromStored("float", "10000000000000000").ToJson());

    [Fact]
    public void ToString_PrintsLikePython()
    {
        Assert.Equal("['a', \"b'\"]", Json.Data("[\"a\", \"b'\"]").ToString());
        Assert.Equal("['x\\ny', 'it\\'s \"q\"']", Json.Data("[\"x\\ny\", \"it's \\\"q\\\"\"]").ToString());
        Assert.Equal("[1.0, 2.5]", Json.Data("[1, 2.5]").ToString());
        Assert.Equal("None", Json.Data("null").ToString());
    }

    [Fact]
    public void PythonTypeName_NamesTheType()
    {
        Assert.Equal("list", Json.Data("[]").PythonTypeName);
        Assert.Equal("NoneType", Json.Data("null").PythonTypeName);
        Assert.Equal("float", Json.Data("2.0").PythonTypeName);
    }
}
