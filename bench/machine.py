"""The machine a benchmark ran on, and how busy it was with work that was not ours."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.configs import MODEL_DIR
from extproc.tools.devstack import CLOCK_TICKS, envoy_binary


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return lines[0].strip() if lines else "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _version(module: str) -> str:
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(imported, "__version__", "unknown"))


def describe() -> dict[str, object]:
    model = MODEL_DIR / "model.onnx"
    envoy_version = _first_line([envoy_binary(), "--version"]).split("version:")[-1].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "envoy": envoy_version,
        "onnxruntime": _version("onnxruntime"),
        "grpcio": _version("grpc"),
        "wrk": _first_line(["wrk", "-v"]),
        "model": f"{model} ({model.stat().st_size / 1e6:.1f} MB)" if model.exists() else "absent",
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


@dataclass(frozen=True)
class CpuSample:
    """Machine-wide busy and steal time, and the CPU of wrk (our reaped children), in seconds."""

    busy: float
    steal: float
    children: float

    @classmethod
    def now(cls) -> CpuSample:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            busy=(user + nice + system + irq + softirq + steal) / CLOCK_TICKS,
            steal=steal / CLOCK_TICKS,
            children=usage.ru_utime + usage.ru_stime,
        )
