"""One way to open the fleet's Redis, for every user of it (rollout state, response cache)."""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis

from extproc.config import StateConfig


def redis_client(config: StateConfig) -> aioredis.Redis:
    """A client for state.redis_url: password from its environment variable, the CA file
    for rediss://, state.timeout_ms on every call (nothing waits longer on Redis)."""
    password = os.environ.get(config.password_env) if config.password_env else None
    timeout = config.timeout_ms / 1000
    tls: dict[str, Any] = {"ssl_ca_certs": str(config.tls_ca_file)} if config.tls_ca_file else {}
    return aioredis.Redis.from_url(
        config.redis_url,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        **tls,
    )
