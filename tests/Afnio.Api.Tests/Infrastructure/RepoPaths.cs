namespace Afnio.Api.Tests.Infrastructure;

public static class RepoPaths
{
    /// <summary>The repository root: the nearest folder above the test binaries holding Afnio.sln.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>"Debug" or "Release": the configuration these tests were built in.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
            ? "Release" : "Debug";

    /// <summary>The built dll of one of our programs, e.g. <c>src/Afnio.Worker</c>.</summary>
    public static string ProgramDll(string projectDir)
    {
        var name = Path.GetFileName(projectDir);
        var dll = Path.Combine(Root, projectDir, "bin", Configuration, "net10.0", name + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"Build the solution first: {dll} is missing.");
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Afnio.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Afnio.sln not found above the test binaries.");
    }
}
