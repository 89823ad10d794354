"""The response cache (docs/CACHE.md): repeated questions answered without a model call,
never across partitions, never on the opposite question."""
