"""Model resolution, loading, caching and adapters."""
