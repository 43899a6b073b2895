namespace Afnio.Domain.Tests.Datasets;

/// <summary>Files checked into the repository, found from the test binaries so any clean clone works.</summary>
internal static class RepoFiles
{
    /// <summary>The repository root: the nearest folder above the test binaries holding Afnio.sln.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The absolute path of a file given relative to the repository root, e.g. <c>data/x.json</c>.</summary>
    public static string PathOf(string relative) =>
        Path.Combine([Root, .. relative.Split('/')]);

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
