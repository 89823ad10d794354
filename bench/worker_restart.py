"""What a worker's restart costs (docs/WORKERS.md), by hand: the e2e stack of
tests/e2e/test_workers.py (2 workers, real Envoy and redis-server, strict backends),
CLIENTS closed-loop clients, worker 1 killed (SIGKILL) KILLS times; per kill, the
requests Envoy failed open and how long until worker 1 serves and gets streams again.

    .venv/bin/python -m bench.worker_restart CLIENTS KILLS
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path

from tests.e2e.stack import Load, Stack, http_get, wait_until
from tests.e2e.workers_stack import fail_opens, worker_children, worker_decisions, workers_stack


def kill_worker_1(stack: Stack) -> tuple[int, float, float]:
    """Kills worker 1 once: the requests failed open, seconds until its replacement serves
    and until it gets streams again."""
    [child] = worker_children(stack)
    before = fail_opens(stack)
    killed_at = time.monotonic()
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: worker_children(stack) not in ([], [child]), 30, "a new worker 1")
    wait_until(lambda: http_get(stack.metrics_port + 1, "/healthz")[0] == 200, 60, "worker 1")
    serving_after = time.monotonic() - killed_at
    decided = worker_decisions(stack)[1]
    wait_until(lambda: worker_decisions(stack)[1] > decided + 20, 30, "worker 1's streams")
    streams_after = time.monotonic() - killed_at
    time.sleep(2)  # fail-opens of the streams the kill cut are counted when they time out
    return fail_opens(stack) - before, serving_after, streams_after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clients", type=int)
    parser.add_argument("kills", type=int)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="worker-restart-"))
    with workers_stack(work) as stack, Load(stack, "hello there", threads=args.clients) as load:
        wait_until(lambda: len(load.sent) > 300, 60, "traffic")
        kills = []
        for k in range(args.kills):
            kills.append(kill_worker_1(stack))
            print(f"kill {k}: {kills[-1][0]} failed open", flush=True)
    failed = [s for s in load.sent if s.status != 200]
    print(f"{args.clients} clients: fail-opens per kill {[k[0] for k in kills]}")
    print(f"non-2xx: {len(failed)} of {len(load.sent)}")
    print(f"serving again after (s) {[round(k[1], 2) for k in kills]}")
    print(f"streams again after (s) {[round(k[2], 2) for k in kills]}")


if __name__ == "__main__":
    main()
