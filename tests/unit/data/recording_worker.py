"""A stand-in child worker for tests/unit/test_workers.py: it follows worker 0's hand-off
with the real extproc.workers.follower and writes down what it was told, one JSON line a
message, to DIR/worker-I.log (argv: DIR, then what WorkerPool appends)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from extproc.config import Config
from extproc.workers.follower import connect, follow

OUT = Path(sys.argv[1])
WORKER = int(sys.argv[sys.argv.index("--worker") + 1])
FD = int(sys.argv[sys.argv.index("--worker-fd") + 1])


def record(*what: object) -> None:
    with open(OUT / f"worker-{WORKER}.log", "a") as log:
        log.write(json.dumps(what) + "\n")


class Recorder:
    async def take_offer(self, version: str, config: Config) -> None:
        if version == "bad":
            raise ValueError("this worker cannot load it")
        if version == "die" and not (OUT / "died").exists():
            (OUT / "died").touch()
            os._exit(1)  # a crash half-way through building it (once)
        if version == "slow":
            await asyncio.sleep(5)
        record("offer", version, config.server.workers)

    def take_switch(self, version: str) -> None:
        record("switch", version)

    def take_withdraw(self, version: str) -> None:
        record("withdraw", version)

    def take_retire(self, version: str) -> None:
        record("retire", version)


async def main() -> None:
    channel, current, versions = await connect(FD)
    record("start", current, sorted(versions))
    await channel.send({"op": "ready"})
    await follow(channel, Recorder(), asyncio.Event())
    record("gone")


asyncio.run(main())
