"""Commands that run something: serve, fake-backend, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from extproc.cli.common import load_or_exit, require_model
from extproc.config import config_warnings

log = logging.getLogger("switchyard")


def cmd_serve(args: argparse.Namespace) -> int:
    from extproc.app import Switchyard

    if args.worker > 0:
        from extproc.workers.follower import die_with_parent

        die_with_parent()
        asyncio.run(_run_worker(Path(args.config), args.worker, args.worker_fd))
        return 0
    config = load_or_exit(args.config)
    require_model(config, args.config)
    for issue in config_warnings(config):
        log.warning("config %s: %s", args.config, issue)
    worker_command = [
        sys.executable,
        "-m",
        "extproc.cli",
        "--log-level",
        args.log_level,
        "--log-format",
        args.log_format,
        "serve",
        "-c",
        str(args.config),
    ]
    try:
        app = Switchyard(Path(args.config), config, worker_command=worker_command)
        asyncio.run(app.run())
    except OSError as exc:
        print(f"switchyard: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run_worker(config_path: Path, worker: int, fd: int) -> None:
    """A child worker (server.workers): the config versions come from worker 0 over the
    pipe `fd`."""
    from extproc.app import Switchyard
    from extproc.workers.follower import connect

    channel, current, versions = await connect(fd)
    app = Switchyard(config_path, versions[current], worker=worker)
    runtimes = app.reloader.runtimes
    for version, config in versions.items():
        if version != current:
            await app.reloader.take_offer(version, config)
    if not runtimes.holds(current):  # the same digest, unless the two builds differ
        runtimes.offer(current, runtimes.current)
    await app.run(channel)


def cmd_fake_backend(args: argparse.Namespace) -> int:
    from extproc.tools.fake_backend import Behaviour, Strictness, serve_fake_backend, server_tls

    if (args.tls_cert is None) != (args.tls_key is None):
        print("fake-backend: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    behaviour = Behaviour(latency_ms=args.latency_ms, error_rate=args.error_rate)
    strictness = Strictness(
        served_model=args.served_model, key=args.require_key, key_header=args.key_header
    )
    tls = server_tls(args.tls_cert, args.tls_key) if args.tls_cert else None
    asyncio.run(
        serve_fake_backend(
            args.name, args.host, args.port, behaviour, args.seed, strictness=strictness, tls=tls
        )
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.fleet:
        from extproc.tools.fleet_demo import run_fleet_demo

        return run_fleet_demo(Path(args.config), load_or_exit(args.config))
    from extproc.tools.demo import run_demo

    return run_demo(Path(args.config), load_or_exit(args.config))
