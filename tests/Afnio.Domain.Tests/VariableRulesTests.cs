using Afnio.Domain.Common;
using Afnio.Domain.Variables;

namespace Afnio.Domain.Tests;

public sealed class VariableRulesTests
{
    [Theory]
    [InlineData(false, false, true)]
    [InlineData(false, true, true)]
    [InlineData(true, false, true)]
    [InlineData(true, true, false)]
    public void IsLeaf_IsNotRequiresGradOrNoGradFn(bool requiresGrad, bool hasGradFn, bool leaf) =>
        Assert.Equal(leaf, VariableRules.IsLeaf(requiresGrad, hasGradFn));

    [Theory]
    [InlineData(GradAccess.Read, "Attempted to access .grad for a non-leaf Variable without retain_grad enabled.")]
    [InlineData(GradAccess.Append, "Attempted to append to .grad for a non-leaf Variable without retain_grad enabled.")]
    [InlineData(GradAccess.Set, "Attempted to set .grad for a non-leaf Variable without retain_grad enabled.")]
    public void GradAccess_OnNonLeafWithoutRetain_UsesTheReferenceWording(GradAccess access, string start)
    {
        var error = Assert.Throws<AfnioException>(() => VariableRules.EnsureGradAccessible(isLeaf: false, retainGrad: false, access));

        Assert.Equal(ErrorKind.Conflict, error.Kind);
        Assert.Equal(start + " Non-leaf Variables do not have their gradients retained by default in autodiff. To retain "
            + "gradients for this Variable, call ``.retain_grad()`` before performing the backward pass.", error.Message);
    }

    [Fact]
    public void GradAccess_IsAllowedOnLeavesAndRetainingNonLeaves()
    {
        VariableRules.EnsureGradAccessible(isLeaf: true, retainGrad: false, GradAccess.Append);
        VariableRules.EnsureGradAccessible(isLeaf: false, retainGrad: true, GradAccess.Read);
    }

    [Fact]
    public void RetainGrad_OnLeaf_Throws() =>
        Assert.Equal("Cannot call retain_grad on a leaf variable",
            Assert.Throws<AfnioException>(() => VariableRules.EnsureCanRetainGrad(isLeaf: true)).Message);

    [Fact]
    public void Copy_ListToListOfSameLength_TakesTheSource() =>
        Assert.Equal("[1,2]", VariableRules.CopyData(Json.Data("[\"a\",\"b\"]"), Json.Data("[1,2]")).ToJson());

    [Fact]
    public void Copy_ScalarToScalarOfAnotherType_IsAllowed() =>
        Assert.Equal("5", VariableRules.CopyData(Json.Data("\"x\""), Json.Data("5")).ToJson());

    [Fact]
    public void Copy_ListsOfDifferentLengths_Throw() =>
        Assert.Equal("Cannot copy list `.data` fields of different lengths: 1 vs 2.",
            Assert.Throws<AfnioException>(() => VariableRules.CopyData(Json.Data("[1]"), Json.Data("[1,2]"))).Message);

    [Fact]
    public void Copy_ScalarIntoList_Throws() =>
        Assert.Equal("Cannot copy data from str to list.",
            Assert.Throws<AfnioException>(() => VariableRules.CopyData(Json.Data("[1]"), Json.Data("\"a\""))).Message);

    [Theory]
    [InlineData("[1, 2]", CastType.Float, "[1.0,2.0]")]
    [InlineData("[1.9, -1.9]", CastType.Int, "[1,-1]")]
    [InlineData("true", CastType.Int, "1")]
    [InlineData("false", CastType.Float, "0.0")]
    [InlineData("\"1_000\"", CastType.Int, "1000")]
    [InlineData("\" 1e3 \"", CastType.Float, "1000.0")]
    [InlineData("\"1_000.5\"", CastType.Float, "1000.5")]
    [InlineData("[1, 2]", null, "[1,2]")]
    [InlineData("[1, 2]", CastType.Str, "[\"1\",\"2\"]")]
    [InlineData("1e+16", CastType.Str, "\"1e+16\"")]
    [InlineData("\"abc\"", CastType.Str, "\"abc\"")]
    public void Cast_FollowsPythonConstructors(string json, CastType? type, string expected) =>
        Assert.Equal(expected, VariableRules.Cast(Json.Data(json), type).ToJson());

    [Theory]
    [InlineData("\"1.5\"", CastType.Int, "invalid literal for int() with base 10: '1.5'")]
    [InlineData("\"_1\"", CastType.Int, "invalid literal for int() with base 10: '_1'")]
    [InlineData("\"1_\"", CastType.Int, "invalid literal for int() with base 10: '1_'")]
    [InlineData("\"inf\"", CastType.Float, "float('inf') is not finite; JSON cannot hold it.")]
    [InlineData("1e300", CastType.Int, "int(1e+300) does not fit in 64 bits.")]
    [InlineData("null", CastType.Float, "float() argument must be a string or a real number, not 'NoneType'")]
    public void Cast_Failures_ExplainThemselves(string json, CastType type, string message)
    {
        var error = Assert.Throws<AfnioException>(() => VariableRules.Cast(Json.Data(json), type));

        Assert.Equal("cast_failed", error.Code);
        Assert.Equal(message, error.Message);
    }
}
