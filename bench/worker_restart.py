"""What a worker's restart costs (docs/WORKERS.md), by hand: the e2e stack of
tests/e2e/test_workers.py (2 workers, real Envoy and redis-server, strict backends),
CLIENTS closed-loop clients, worker 1 killed (SIGKILL) KILLS times; per kill, the
requests Envoy failed open and how long until worker 1 serves and gets streams again.

    .venv/bin/python bench/worker_restart.py CLIENTS KILLS
"""

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.stack import Load, http_get, wait_until
from tests.e2e.test_workers import _children, _decisions, _fail_opens, _workers_stack

threads, kills = int(sys.argv[1]), int(sys.argv[2])
work = Path(tempfile.mkdtemp(prefix="worker-restart-"))
with _workers_stack(work) as stack:
    with Load(stack, "hello there", threads=threads) as load:
        wait_until(lambda: len(load.sent) > 300, 60, "traffic")
        rows = []
        for k in range(kills):
            [child] = _children(stack)
            before, sent_before = _fail_opens(stack), len(load.sent)
            t0 = time.monotonic()
            os.kill(child, signal.SIGKILL)

            def restarted(old: int = child) -> bool:
                return _children(stack) not in ([], [old])

            wait_until(restarted, 30, "a new worker 1")
            wait_until(lambda: http_get(stack.metrics_port + 1, "/healthz")[0] == 200, 60, "w1")
            up = time.monotonic() - t0
            decided = _decisions(stack)[1]

            def again(d: float = decided) -> bool:
                return _decisions(stack)[1] > d + 20

            wait_until(again, 30, "w1 streams again")
            back = time.monotonic() - t0
            time.sleep(2)
            fail_opens = _fail_opens(stack) - before
            rows.append((fail_opens, len(load.sent) - sent_before, round(up, 2), round(back, 2)))
            print(f"kill {k}: {fail_opens} failed open of {rows[-1][1]}", flush=True)
    failed = [s for s in load.sent if s.status != 200]
    print(f"{threads} clients: fail-opens per kill {[r[0] for r in rows]}")
    print(f"non-2xx: {len(failed)} of {len(load.sent)}")
    print(f"serving again after (s) {[r[2] for r in rows]}")
    print(f"streams again after (s) {[r[3] for r in rows]}")
