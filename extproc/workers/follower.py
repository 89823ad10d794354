"""A child worker's side (workers 1..N-1): it serves ext_proc with the config versions
worker 0 hands it, and stops when worker 0 is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from typing import Protocol

from extproc.config import Config
from extproc.workers.channel import Channel

log = logging.getLogger("switchyard.workers")


class Follower(Protocol):
    """What the hand-off changes in a child (extproc.reload.ConfigReloader)."""

    async def take_offer(self, version: str, config: Config) -> None: ...

    def take_switch(self, version: str) -> None: ...

    def take_withdraw(self, version: str) -> None: ...

    def take_retire(self, version: str) -> None: ...


def die_with_parent() -> None:
    """Linux: the kernel sends this process SIGTERM when worker 0 dies, even by SIGKILL
    (the pipe's end-of-file is the second way a child learns it)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


async def connect(fd: int) -> tuple[Channel, str, dict[str, Config]]:
    """The pipe to worker 0 and its `start`: the current version and every version held."""
    channel = await Channel.over(socket.socket(fileno=fd))
    start = await channel.receive()
    if start is None or start.get("op") != "start":
        raise RuntimeError("worker 0 sent no start message")
    versions = {v: Config.model_validate(c) for v, c in start["versions"].items()}
    return channel, str(start["current"]), versions


async def follow(channel: Channel, target: Follower, stop: asyncio.Event) -> None:
    """Tells worker 0 this worker serves, then applies its messages until it goes, and
    sets `stop`."""
    await channel.send({"op": "ready"})
    while (message := await channel.receive()) is not None:
        op, version = message.get("op"), str(message.get("version"))
        if op == "offer":
            error = None
            try:
                await target.take_offer(version, Config.model_validate(message["config"]))
            except Exception as exc:  # invalid here, or a model that fails to load
                log.exception("config %s: this worker cannot build it", version)
                error = f"{type(exc).__name__}: {exc}"
            await channel.send({"op": "ack", "id": message["id"], "error": error})
        elif op == "switch":
            target.take_switch(version)
        elif op == "withdraw":
            target.take_withdraw(version)
        elif op == "retire":
            target.take_retire(version)
    log.info("worker 0 has gone: stopping")
    stop.set()
