namespace Afnio.Data;

/// <summary>An entity with a time-ordered UUID key, so lists can be keyset-paged on it.</summary>
public interface IHasId
{
    Guid Id { get; }
}
