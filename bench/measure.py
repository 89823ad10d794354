"""One measured run: wrk against a stack, and everything that changed meanwhile.

Around the wrk run it reads the CPU time of every process (/proc/PID/stat),
Envoy's ext_proc and downstream counters, switchyard's classifier histograms
and the machine's total CPU use; the run's record holds the differences. After
wrk stops, the run waits for the stack to go idle, so work left in flight is
counted here and not in the next run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.load import run_wrk, wrk_command
from bench.machine import CpuSample
from bench.procs import envoy_counters, prometheus_values, wait_idle
from bench.scenarios import Scenario
from bench.stacks import Stack
from extproc.tools.devstack import Proc

ENVOY_COUNTERS = r"ext_proc|downstream_rq_[0-9]xx|downstream_rq_total"
ROUTING = "http.ingress.ext_proc.switchyard."
OBSERVE = "http.ingress.ext_proc.observe."
CLASSIFIER_METRICS = (
    "switchyard_classification_seconds_sum",
    "switchyard_classification_seconds_count",
    "switchyard_classification_batch_size_sum",
)


def _delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0) for key in after}


def _ext_proc(counters: dict[str, float]) -> dict[str, float]:
    """The counters the report reads, short-named; absent ones (the ceiling) are 0."""
    out = {
        "downstream_rq_total": counters.get("http.ingress.downstream_rq_total", 0),
        "downstream_rq_5xx": counters.get("http.ingress.downstream_rq_5xx", 0),
    }
    for name in (
        "streams_started",
        "streams_failed",
        "failure_mode_allowed",
        "message_timeouts",
        "clear_route_cache_ignored",
    ):
        out[name] = counters.get(ROUTING + name, 0)
    for name in ("streams_started", "streams_failed", "failure_mode_allowed"):
        out["observe_" + name] = counters.get(OBSERVE + name, 0)
    return out


def measure(
    stack: Stack,
    scenario: Scenario,
    everything: list[Proc],
    script: Path,
    connections: int,
    seconds: int,
    nonce: int,
    load_cpus: str | None,
) -> dict[str, Any]:
    classified = scenario.semantic and stack.metrics_port is not None
    counters_before = envoy_counters(stack.admin_port, ENVOY_COUNTERS)
    metrics_before = prometheus_values(stack.metrics_port, CLASSIFIER_METRICS) if classified else {}  # type: ignore[arg-type]
    cpu_before = {proc.name: proc.cpu_seconds() for proc in everything}
    machine_before = CpuSample.now()
    started = time.monotonic()

    command = wrk_command(stack.url, script, connections, seconds, nonce, load_cpus)
    result = run_wrk(command, seconds)
    settle = wait_idle(stack.procs)

    wall = time.monotonic() - started
    machine = CpuSample.now()
    cpu = _delta(cpu_before, {proc.name: proc.cpu_seconds() for proc in everything})
    counters = _delta(counters_before, envoy_counters(stack.admin_port, ENVOY_COUNTERS))
    for proc in everything:
        proc.check_alive()

    requests = max(result.requests, 1)
    ours = sum(cpu.values()) + machine.children - machine_before.children
    record: dict[str, Any] = {
        "scenario": scenario.name,
        "concurrency": connections,
        "nonce": nonce,
        "command": command,
        "wrk": result.to_json(),
        "settle_s": round(settle, 2),
        "cpu_ms_per_request": {
            "envoy": round(cpu[stack.envoy.name] * 1000 / requests, 4),
            "processor": (
                round(cpu[stack.processor.name] * 1000 / requests, 4) if stack.processor else None
            ),
            "backend": round(cpu["backend"] * 1000 / requests, 4),
            "wrk": round((machine.children - machine_before.children) * 1000 / requests, 4),
        },
        "cores_used": {
            "envoy": round(cpu[stack.envoy.name] / result.seconds, 3),
            "processor": (
                round(cpu[stack.processor.name] / result.seconds, 3) if stack.processor else None
            ),
            # CPU the machine spent on anything but this benchmark (other people's work),
            # and the hypervisor's steal, in cores over the run.
            "foreign": round(max(0.0, machine.busy - machine_before.busy - ours) / wall, 3),
            "steal": round((machine.steal - machine_before.steal) / wall, 3),
        },
        "envoy": _ext_proc(counters),
    }
    if stack.processor is not None:
        record["memory_mib"] = stack.processor.memory()
    if classified:
        metrics = _delta(metrics_before, prometheus_values(stack.metrics_port, CLASSIFIER_METRICS))  # type: ignore[arg-type]
        batches = metrics.get("switchyard_classification_seconds_count", 0)
        record["classifier"] = {
            "batches": int(batches),
            "mean_batch_ms": (
                round(metrics["switchyard_classification_seconds_sum"] * 1000 / batches, 3)
                if batches
                else None
            ),
            "mean_batch_size": (
                round(metrics["switchyard_classification_batch_size_sum"] / batches, 2)
                if batches
                else None
            ),
        }
    return record
