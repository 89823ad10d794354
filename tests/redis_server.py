"""A real redis-server on 127.0.0.1 for tests that need the fleet's state store."""

from extproc.tools.devstack import RedisServer

__all__ = ["RedisServer"]
