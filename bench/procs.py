"""Processes the benchmark starts, and what /proc and HTTP say about them.

Every process runs on 127.0.0.1 on a free port, with its output in a log file
of the run's work directory; `Proc.cpu_seconds` and `Proc.memory` read
/proc/PID/{stat,status}, which cover every thread of the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extproc.tools.devstack import http_get, launch, wait_until

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SWITCHYARD = str(BIN / "switchyard")
ENVOY = str(BIN / "envoy")  # execs the real binary: the PID is Envoy's own
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def taskset(cpus: str | None) -> list[str]:
    """The command prefix that pins a process to `cpus` ("0", "1", "0-1"), or nothing."""
    return ["taskset", "-c", cpus] if cpus else []


@dataclass
class Proc:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, name: str, command: list[str], workdir: Path, env: dict[str, str] | None = None
    ) -> Proc:
        process = launch(name, command, workdir, env, cwd=REPO)
        return cls(name, command, process, workdir / f"{name}.log")

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    def cpu_seconds(self) -> float:
        """user + system CPU time of every thread so far, with that of the live processes
        it started (switchyard's other workers, server.workers)."""
        return sum(_cpu_seconds(pid) for pid in _family(self.pid))

    def memory(self) -> dict[str, float]:
        """Resident memory now (VmRSS) and at its peak (VmHWM), in MiB."""
        out: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
        return out

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _family(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    family, index = [pid], 0
    while index < len(family):
        current = family[index]
        index += 1
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        family += [int(child) for child in children]
    return family


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a descendant that just exited
        return 0.0
    # After "pid (comm)": state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


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


def wait_http(port: int, path: str, proc: Proc, timeout: float, what: str) -> None:
    def ready() -> bool:
        proc.check_alive()
        return http_get(port, path)[0] == 200

    wait_until(ready, timeout, what)


def json_dump(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
