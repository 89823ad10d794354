"""The canary analysis from Envoy's own statistics (analysis.source: envoy).

Envoy keeps, for every route switchyard renders (stat_prefix `<route>.canary` and
`<route>.stable`), request and 5xx counters and an upstream_rq_time histogram. Once per
analysis interval switchyard reads them from its Envoy's admin on loopback, takes the
change since the last read and turns it into one Summary per route and cohort: the same
per-second buckets the observed responses fill otherwise, so the window, the analysis and
the fleet's Redis buckets (each replica adds its own Envoy's deltas) do not change.

Differences from observed responses: latency is Envoy's upstream_rq_time in whole
milliseconds and includes error responses (observed summaries keep latency for successful
answers only); Envoy counts an upstream reset as a 503.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from extproc import headers as h
from extproc.envoy_stat_names import VIRTUAL_HOST
from extproc.rollout.window import Summary, latency_bin

_PREFIX = f"vhost.{VIRTUAL_HOST}.route."
_COHORTS = (h.CANARY, h.STABLE)
_STATS = ("upstream_rq_total", "upstream_rq_5xx", "upstream_rq_time", "upstream_rq_retry")
ZERO_MS_AS_S = 0.0005
"""Envoy's 0 ms bucket, taken as half a millisecond (a log needs a positive latency)."""


def stats_url(admin: str) -> str:
    pattern = (
        r"^vhost\."
        + VIRTUAL_HOST
        + r"\.route\..*\.(canary|stable)\.upstream_rq_(total|5xx|time|retry)$"
    )
    query = urllib.parse.urlencode(
        {"format": "json", "filter": pattern, "histogram_buckets": "detailed"}
    )
    return f"http://{admin}/stats?{query}"


def fetch(admin: str, timeout: float = 2.0) -> dict[str, object]:
    with urllib.request.urlopen(stats_url(admin), timeout=timeout) as response:
        data: dict[str, object] = json.loads(response.read())
    return data


@dataclass
class _Counts:
    total: float = 0
    errors: float = 0
    retries: float = 0
    buckets: dict[tuple[float, float], float] = field(default_factory=dict)
    """(lower bound ms, width ms) -> count so far."""


def _split(name: str) -> tuple[str, str, str] | None:
    """(route, cohort, stat) from a stat name of a switchyard route, else None."""
    if not name.startswith(_PREFIX):
        return None
    rest, _, stat = name[len(_PREFIX) :].rpartition(".")
    route, _, cohort = rest.rpartition(".")
    if stat not in _STATS or cohort not in _COHORTS or not route:
        return None
    return route, cohort, stat


def _counts(data: dict[str, object]) -> dict[tuple[str, str], _Counts]:
    out: dict[tuple[str, str], _Counts] = {}
    stats = data.get("stats")
    for item in stats if isinstance(stats, list) else []:
        if "value" in item:
            parts = _split(item["name"])
            if parts is None:
                continue
            counts = out.setdefault(parts[:2], _Counts())
            if parts[2] == "upstream_rq_total":
                counts.total = item["value"]
            elif parts[2] == "upstream_rq_5xx":
                counts.errors = item["value"]
            elif parts[2] == "upstream_rq_retry":
                counts.retries = item["value"]
        for detail in item.get("histograms", {}).get("details", []):
            parts = _split(detail["name"])
            if parts is None:
                continue
            counts = out.setdefault(parts[:2], _Counts())
            for bucket in detail.get("totals", []):
                key = (float(bucket["lower_bound"]), float(bucket["width"]))
                counts.buckets[key] = counts.buckets.get(key, 0) + bucket["count"]
    # A route's counters count attempts. A retry is a second attempt for the same request:
    # on a canary route (canary.retry_on_stable) the canary's own failure, whose request
    # stable answered (and the route's 5xx never saw); on a stable route, a fallback.
    for (_, cohort), counts in out.items():
        counts.total -= counts.retries
        if cohort == h.CANARY:
            counts.errors += counts.retries
    return out


def _summary(now: _Counts, before: _Counts) -> Summary | None:
    """What changed between two reads, or None when Envoy restarted (counters went down)."""
    requests = now.total - before.total
    errors = now.errors - before.errors
    if requests < 0 or errors < 0:
        return None
    summary = Summary(requests=int(requests), errors=int(errors))
    for (lower, width), count in now.buckets.items():
        added = int(count - before.buckets.get((lower, width), 0))
        if added <= 0:
            continue
        seconds = max((lower + width / 2) / 1000, ZERO_MS_AS_S)
        summary.answered += added
        summary.log_sum += added * math.log(seconds)
        summary.log_sq_sum += added * math.log(seconds) ** 2
        index = latency_bin(seconds)
        summary.bins[index] = summary.bins.get(index, 0) + added
    return summary


class EnvoyRouteStats:
    """Reads an Envoy's per-route statistics; each read returns what changed since the last.

    Blocking (one admin request): call it off the event loop.
    """

    def __init__(self, read: Callable[[], dict[str, object]]) -> None:
        self._read = read
        self._last: dict[tuple[str, str], _Counts] | None = None

    def deltas(self) -> dict[tuple[str, str], Summary]:
        current = _counts(self._read())
        last, self._last = self._last, current
        if last is None:  # the first read is the baseline
            return {}
        out = {}
        for key, counts in current.items():
            summary = _summary(counts, last.get(key, _Counts()))
            if summary is not None and (summary.requests or summary.answered):
                out[key] = summary
        return out
