"""What /proc and HTTP say about the processes the benchmark starts.

Every process runs on 127.0.0.1 on a free port, with its output in a log file
of the run's work directory (extproc.tools.devstack starts them); `Proc.cpu_seconds`
and `Proc.memory` read /proc/PID/{stat,status}, which cover every thread of the process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from extproc.tools.devstack import Proc, http_get

REPO = Path(__file__).resolve().parents[1]


def wait_idle(procs: list[Proc], timeout: float = 8.0, busy: float = 0.05) -> float:
    """Waits until `procs` together use under `busy` of a core; returns the seconds waited.

    Work a run left behind (classifications of requests wrk gave up on, observe
    streams closing) is then counted in that run, not in the next one.
    """
    started = time.monotonic()
    interval = 0.2
    previous = sum(p.cpu_seconds() for p in procs)
    while time.monotonic() - started < timeout:
        time.sleep(interval)
        now = sum(p.cpu_seconds() for p in procs)
        if now - previous < busy * interval:
            break
        previous = now
    return time.monotonic() - started


def envoy_counters(admin_port: int, pattern: str) -> dict[str, int]:
    """Envoy's counters and gauges whose name matches the regex `pattern`."""
    status, body = http_get(admin_port, f"/stats?format=json&filter={pattern}")
    if status != 200:
        raise RuntimeError(f"Envoy admin /stats answered {status}")
    return {
        item["name"]: int(item["value"]) for item in json.loads(body)["stats"] if "value" in item
    }


def prometheus_values(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Unlabelled samples (sums and counts of histograms) from a /metrics page."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[name] = float(value)
    return out


def json_dump(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
