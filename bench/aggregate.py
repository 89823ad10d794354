"""From raw runs to the numbers the report shows: medians, ratios to the ceiling, targets.

Absolute numbers move between runs on a shared machine; ratios move less. Each
run of a scenario is paired with the ceiling's run of the same round and
concurrency (they ran seconds apart), and the report shows the median of those
paired ratios and differences.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
CEILING = "ceiling"


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@dataclass(frozen=True)
class Row:
    scenario: str
    concurrency: int
    runs: int
    rps: float
    p50_ms: float
    p99_ms: float
    ratio: float | None
    """Throughput over the ceiling's (median of paired runs)."""
    cpu_ratio: float | None
    """The ceiling's CPU per request over this stack's (its Envoy plus processor), paired:
    the throughput ratio at saturation when both get the same one core (--pin split),
    and much less disturbed by other processes than throughput itself."""
    added_p50_ms: float | None
    added_p99_ms: float | None
    cpu_ms_processor: float | None
    cpu_ms_envoy: float
    cores_processor: float | None
    cores_foreign: float
    rss_mib: float | None
    """The processor's largest VmRSS after any run."""
    hwm_mib: float | None
    message_timeouts: int
    failure_mode_allowed: int
    streams_failed: int
    non_2xx: int
    socket_errors: int
    classify_batch_ms: float | None
    classify_batch_size: float | None


def _paired(
    runs: list[Record], ceiling: list[Record], value: Callable[[Record, Record], float]
) -> float | None:
    by_round = {run["run"]: run for run in ceiling}
    return _median(value(run, by_round[run["run"]]) for run in runs if run["run"] in by_round)


def _wrk(run: Record, key: str) -> float:
    return float(run["wrk"][key])


def _cpu_ms(run: Record) -> float:
    """CPU per request of the system under test: Envoy and the processor, if any."""
    cpu = run["cpu_ms_per_request"]
    return float(cpu["envoy"] + (cpu["processor"] or 0.0))


def _sum(runs: list[Record], get: Callable[[Record], float]) -> int:
    return int(sum(get(run) for run in runs))


def aggregate(results: Record) -> dict[tuple[str, int], Row]:
    groups: dict[tuple[str, int], list[Record]] = {}
    for run in results["runs"]:
        groups.setdefault((run["scenario"], run["concurrency"]), []).append(run)
    rows: dict[tuple[str, int], Row] = {}
    for (scenario, concurrency), runs in groups.items():
        ceiling = groups.get((CEILING, concurrency), [])
        memory = [run["memory_mib"] for run in runs if "memory_mib" in run]
        classifier = [run["classifier"] for run in runs if "classifier" in run]
        rows[scenario, concurrency] = Row(
            scenario=scenario,
            concurrency=concurrency,
            runs=len(runs),
            rps=_median(run["wrk"]["rps"] for run in runs) or 0.0,
            p50_ms=_median(run["wrk"]["p50_ms"] for run in runs) or 0.0,
            p99_ms=_median(run["wrk"]["p99_ms"] for run in runs) or 0.0,
            ratio=_paired(runs, ceiling, lambda r, c: _wrk(r, "rps") / _wrk(c, "rps")),
            cpu_ratio=_paired(runs, ceiling, lambda r, c: _cpu_ms(c) / _cpu_ms(r)),
            added_p50_ms=_paired(runs, ceiling, lambda r, c: _wrk(r, "p50_ms") - _wrk(c, "p50_ms")),
            added_p99_ms=_paired(runs, ceiling, lambda r, c: _wrk(r, "p99_ms") - _wrk(c, "p99_ms")),
            cpu_ms_processor=_median(run["cpu_ms_per_request"]["processor"] for run in runs),
            cpu_ms_envoy=_median(run["cpu_ms_per_request"]["envoy"] for run in runs) or 0.0,
            cores_processor=_median(run["cores_used"]["processor"] for run in runs),
            cores_foreign=_median(run["cores_used"]["foreign"] for run in runs) or 0.0,
            rss_mib=max((m["VmRSS"] for m in memory), default=None),
            hwm_mib=max((m["VmHWM"] for m in memory), default=None),
            message_timeouts=_sum(runs, lambda r: r["envoy"]["message_timeouts"]),
            failure_mode_allowed=_sum(runs, lambda r: r["envoy"]["failure_mode_allowed"]),
            streams_failed=_sum(runs, lambda r: r["envoy"]["streams_failed"]),
            non_2xx=_sum(runs, lambda r: r["wrk"]["non_2xx"]),
            socket_errors=_sum(runs, lambda r: r["wrk"]["socket_errors"]),
            classify_batch_ms=_median(c["mean_batch_ms"] for c in classifier),
            classify_batch_size=_median(c["mean_batch_size"] for c in classifier),
        )  # fmt: skip
    return rows


@dataclass(frozen=True)
class Target:
    name: str
    limit: str
    measured: str
    met: bool | None
    """None: not measured in this run."""
    margin: str
    why: str = ""


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def _added_p50(rows: dict[tuple[str, int], Row], scenario: str) -> float | None:
    row = rows.get((scenario, 1))
    return row.added_p50_ms if row else None


def _added_at_most(name: str, added: float | None, limit: float) -> Target:
    return Target(
        name,
        f"<= {limit:g} ms",
        _fmt(added, " ms"),
        None if added is None else added <= limit,
        _margin(limit, added, "ms"),
    )


def _added_within_inference(
    name: str, added: float | None, inference: float | None, slack: float, measured: str
) -> Target:
    """Added latency against the inference it contains, plus `slack` ms."""
    budget = None if inference is None else inference + slack
    return Target(
        name,
        f"<= inference + {slack:g} ms",
        f"{_fmt(added, ' ms')} ({measured})",
        None if added is None or budget is None else added <= budget,
        _margin(budget, added, "ms"),
    )


def _throughput_at_least(name: str, row: Row | None, limit: float) -> Target:
    """Requests/s over the ceiling's; the verdict takes the lower of the measured ratio and
    the one from CPU per request (which a neighbour on the machine moves less)."""
    ratio = row.ratio if row else None
    cpu_ratio = row.cpu_ratio if row else None
    lowest = None if ratio is None or cpu_ratio is None else min(ratio, cpu_ratio)
    return Target(
        name,
        f">= {limit:g} x ceiling",
        # Three digits: at two, a ratio just under the limit reads as the limit itself.
        f"{_fmt(ratio, ' x', 3)} measured, {_fmt(cpu_ratio, ' x', 3)} from CPU per request",
        None if lowest is None else lowest >= limit,
        _margin(lowest, limit, "x", 3),
    )


def _margin(high: float | None, low: float | None, unit: str, digits: int = 2) -> str:
    """How far `low` is under `high` (the limit of an upper bound, or the measured value)."""
    if high is None or low is None:
        return "n/a"
    gap = high - low
    return f"{abs(gap):.{digits}f} {unit} {'to spare' if gap >= 0 else 'short'}"


def check_targets(results: Record, rows: dict[tuple[str, int], Row]) -> list[Target]:
    from bench.scenarios import TARGET_PROMPT

    targets: list[Target] = []
    concurrencies = results["settings"]["concurrencies"]
    top = max(concurrencies)

    targets.append(
        _throughput_at_least("rules-only throughput at c=64", rows.get(("rules", 64)), 0.12)
    )
    targets.append(_added_at_most("rules-only added p50 at c=1", _added_p50(rows, "rules"), 1.2))
    targets.append(
        _throughput_at_least(
            "semantic unique ~30-token throughput at c=64", rows.get((TARGET_PROMPT, 64)), 0.06
        )
    )
    semantic_one = rows.get((TARGET_PROMPT, 1))
    added = _added_p50(rows, TARGET_PROMPT)
    inference = semantic_one.classify_batch_ms if semantic_one else None
    targets.append(_added_at_most("semantic unique ~30-token added p50 at c=1", added, 5))
    targets.append(
        _added_within_inference(
            "semantic unique ~30-token added p50 at c=1 vs inference",
            added,
            inference,
            1.5,
            f"inference {_fmt(inference, ' ms')}",
        )
    )
    semantic = [row for row in rows.values() if row.scenario.startswith("semantic")]
    clean = "clean" if semantic else "n/a"
    timeouts = sum(row.message_timeouts for row in semantic)
    fallbacks = sum(row.failure_mode_allowed for row in semantic)
    failed = sum(row.non_2xx + row.socket_errors for row in semantic)
    at_top = [row.scenario for row in semantic if row.concurrency == top and row.message_timeouts]
    targets.append(
        Target(
            "semantic at saturation: no message timeout, no fail-open, no error",
            "0",
            f"{timeouts} timeouts, {fallbacks} fail-open, {failed} errors",
            None if not semantic else timeouts == 0 and fallbacks == 0 and failed == 0,
            f"timeouts at c={top} in {', '.join(at_top) or 'none'}" if timeouts else clean,
        )
    )
    targets.append(
        _added_at_most(
            "cache exact hit added p50 at c=1 (over Envoy alone)",
            _added_p50(rows, "cache-exact"),
            2,
        )
    )
    targets.append(
        _added_within_inference(
            "cache semantic hit added p50 at c=1 vs inference",
            _added_p50(rows, "cache-semantic"),
            inference,
            2,
            f"inference of {TARGET_PROMPT}: {_fmt(inference, ' ms')}",
        )
    )
    rss = max((row.rss_mib or 0 for row in semantic), default=0.0) or None
    targets.append(
        Target(
            "switchyard RSS with the int8 model",
            "< 400 MB",
            _fmt(rss, " MiB", 0),
            None if rss is None else rss * 1.048576 < 400,
            _margin(400, None if rss is None else rss * 1.048576, "MB", digits=0),
        )
    )
    return targets
