"""`switchyard report`: the A/B table from a running Envoy and switchyard.

Upstream counts and latencies come from Envoy's own stats, per Envoy route
(each switchyard route and cohort has one, named `<route>.<cohort>` by its
stat_prefix) and per cluster (backend); the per route/cohort/backend rows
(errors, latency, time to first byte, tokens, cost) and the canary verdicts
come from switchyard's /stats, which computes them from the responses it
observes.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

from extproc.envoy_stat_names import FAIL_OPEN_ROUTE, VIRTUAL_HOST
from extproc.errors import SwitchyardError
from extproc.rollout.quality import FLAGS
from extproc.rollout.shadow_comparison import shadow_lines

_ROUTE_TOTAL = re.compile(rf"^vhost\.{VIRTUAL_HOST}\.route\.(.+)\.upstream_rq_total$")
_CLUSTER_TOTAL = re.compile(r"^cluster\.([^._][^.]*)\.upstream_rq_total$")
UPSTREAM_COLUMNS = ["requests", "2xx", "5xx", "timeouts", "resets", "p50 ms", "p95 ms", "p99 ms"]
AB_COLUMNS = [
    "route",
    "cohort",
    "backend",
    "requests",
    "errors",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "ttfb p50",
    "prompt tok/req",
    "compl tok/req",
    "cost/req",
]
QUALITY_COLUMNS = ["route", "cohort", "backend", "answers", "scored", "mean score"] + [
    f"{flag} %" for flag in FLAGS
]


class ReportError(SwitchyardError):
    """Envoy or switchyard could not be read."""


def _fetch_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ReportError(f"cannot read {url}: {exc}") from None


def envoy_stats(admin: str) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """Counters/gauges by name, and cumulative histogram quantiles by name."""
    data = _fetch_json(f"{admin.rstrip('/')}/stats?format=json")
    values: dict[str, int] = {}
    quantiles: dict[str, dict[str, float]] = {}
    for item in data.get("stats", []):
        if "value" in item:
            values[item["name"]] = item["value"]
        elif "histograms" in item:
            histograms = item["histograms"]
            supported = histograms.get("supported_quantiles", [])
            for computed in histograms.get("computed_quantiles", []):
                quantiles[computed["name"]] = {
                    f"p{q:g}": value["cumulative"]
                    for q, value in zip(supported, computed["values"], strict=False)
                    if value.get("cumulative") is not None
                }
    return values, quantiles


def _upstream(
    name: str, prefix: str, values: dict[str, int], quantiles: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """Envoy's upstream numbers under one stats prefix (a cluster's or a route's)."""
    times = quantiles.get(prefix + "upstream_rq_time", {})
    return {
        "name": name,
        "requests": values.get(prefix + "upstream_rq_total", 0),
        "2xx": values.get(prefix + "upstream_rq_2xx", 0),
        "5xx": values.get(prefix + "upstream_rq_5xx", 0),
        "timeouts": values.get(prefix + "upstream_rq_timeout", 0),
        "resets": values.get(prefix + "upstream_rq_rx_reset", 0)
        + values.get(prefix + "upstream_rq_tx_reset", 0),
        "p50_ms": times.get("p50"),
        "p95_ms": times.get("p95"),
        "p99_ms": times.get("p99"),
    }


def _cell(value: object, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _upstream_table(first: str, rows: list[dict[str, Any]]) -> str:
    return _table(
        [first, *UPSTREAM_COLUMNS],
        [
            [
                r["name"],
                str(r["requests"]),
                str(r["2xx"]),
                str(r["5xx"]),
                str(r["timeouts"]),
                str(r["resets"]),
                _cell(r["p50_ms"]),
                _cell(r["p95_ms"]),
                _cell(r["p99_ms"]),
            ]
            for r in rows
        ],
    )


def report_data(admin: str, switchyard: str) -> dict[str, Any]:
    """The report's numbers at this moment (what `--json` prints)."""
    values, quantiles = envoy_stats(admin)
    own = _fetch_json(f"{switchyard.rstrip('/')}/stats")
    traffic: list[dict[str, Any]] = own.get("traffic", [])
    rollouts: dict[str, dict[str, Any]] = own.get("rollouts", {})
    routes = sorted(m[1] for name in values if (m := _ROUTE_TOTAL.match(name)))
    clusters = sorted(m[1] for name in values if (m := _CLUSTER_TOTAL.match(name)))
    route_rows = [
        _upstream(r, f"vhost.{VIRTUAL_HOST}.route.{r}.", values, quantiles) for r in routes
    ]
    cluster_rows = [_upstream(c, f"cluster.{c}.", values, quantiles) for c in clusters]
    fail_open = values.get("http.ingress.ext_proc.switchyard.failure_mode_allowed", 0)
    # Envoy's fail-open routes, one per backend of the default route (extproc.envoy_config).
    fail_open_by_backend = {
        r.removeprefix(FAIL_OPEN_ROUTE): values.get(
            f"vhost.{VIRTUAL_HOST}.route.{r}.upstream_rq_completed", 0
        )
        for r in routes
        if r.startswith(FAIL_OPEN_ROUTE)
    }
    timeouts = values.get("http.ingress.ext_proc.switchyard.message_timeouts", 0)
    return {
        "ab": traffic,
        "quality": own.get("quality", []),
        "envoy_routes": route_rows,
        "envoy_clusters": cluster_rows,
        "canaries": rollouts,
        "shadows": own.get("shadows", {}),
        "fail_open": fail_open,
        "fail_open_by_backend": fail_open_by_backend,
        "processor_timeouts": timeouts,
        "cache": own.get("cache", []),
        "clients": own.get("clients", []),
    }


def _by_backend(counts: dict[str, int]) -> str:
    """' (answered by a 3, b 1)' when any fail-open request was answered."""
    answered = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
    return f" (answered by {answered})" if answered else ""


def requests_cell(row: dict[str, Any]) -> str:
    """A row's requests; for a sampled cohort the estimate, labelled: ~N (est.)."""
    if row.get("observed_share", 1.0) < 1:
        return f"~{row['requests']} (est.)"
    return str(row["requests"])


CACHE_COLUMNS = [
    "route",
    "requests",
    "hits",
    "misses",
    "bypasses",
    "hit rate",
    "entries",
    "saved prompt tok",
    "saved compl tok",
    "saved cost",
]


def _cache_section(rows: list[dict[str, Any]]) -> list[str]:
    """Routes with a cache (docs/CACHE.md); nothing when no route has one."""
    if not rows:
        return []
    table = [
        [
            row["route"],
            str(row["requests"]),
            str(row["hits"]),
            str(row["misses"]),
            str(row["bypasses"]),
            f"{row['hit_rate']:.1%}",
            str(row["entries"]),
            str(row["saved_prompt_tokens"]),
            str(row["saved_completion_tokens"]),
            f"{row['saved_cost']:.6f}",
        ]
        for row in rows
    ]
    return ["Response cache (hit rate: of hits + misses; hits never reached a model and are"
            " not in the A/B rows)",
            _table(CACHE_COLUMNS, table), ""]  # fmt: skip


def _client_section(rows: list[dict[str, Any]]) -> list[str]:
    """Requests by client (auth.keys_file's names), route and cohort; nothing without auth."""
    if not rows:
        return []
    ordered = sorted(rows, key=lambda r: (r["client"], r["route"], r["cohort"]))
    table = [[r["client"], r["route"], r["cohort"], str(r["requests"])] for r in ordered]
    return ["Requests by client", _table(["client", "route", "cohort", "requests"], table), ""]


def build_report(admin: str, switchyard: str, *, as_json: bool = False) -> str:
    data = report_data(admin, switchyard)
    if as_json:
        return json.dumps(data, indent=1)
    traffic: list[dict[str, Any]] = data["ab"]
    rollouts: dict[str, dict[str, Any]] = data["canaries"]
    route_rows, cluster_rows = data["envoy_routes"], data["envoy_clusters"]
    fail_open, timeouts = data["fail_open"], data["processor_timeouts"]
    ab_rows = []
    for row in traffic:
        requests = row["requests"] or 1
        ab_rows.append(
            [
                row["route"],
                row["cohort"],
                row["backend"],
                requests_cell(row),
                f"{row['errors'] / requests:.2%}",
                _cell(row["latency_p50_ms"]),
                _cell(row["latency_p95_ms"]),
                _cell(row["latency_p99_ms"]),
                _cell(row["ttfb_p50_ms"]),
                f"{row['prompt_tokens'] / requests:.0f}",
                f"{row['completion_tokens'] / requests:.0f}",
                f"{row['cost'] / requests:.6f}",
            ]
        )
    quality_rows = [
        [
            row["route"],
            row["cohort"],
            row["backend"],
            str(row["judged"]),
            str(row["scored"]),
            _cell(row["score_mean"], "{:.3f}"),
            *(f"{row['flags'].get(flag, 0) / (row['judged'] or 1):.2%}" for flag in FLAGS),
        ]
        for row in data["quality"]
    ]
    parts = [
        "A/B by route, cohort and backend (responses observed by switchyard)",
        _table(AB_COLUMNS, ab_rows),
        "",
        "Quality by route, cohort and backend (flags per 2xx answer; scores from"
        " POST /feedback and the score header)",
        _table(QUALITY_COLUMNS, quality_rows),
        "",
        "Envoy routes (<route>.<cohort>)",
        _upstream_table("route", route_rows),
        "",
        "Envoy upstream clusters",
        _upstream_table("cluster", cluster_rows),
        "",
        f"Requests that bypassed switchyard (fail-open): {fail_open}"
        + _by_backend(data["fail_open_by_backend"])
        + f"; processor timeouts: {timeouts}",
        "",
        *_cache_section(data.get("cache", [])),
        *_client_section(data.get("clients", [])),
        "Canaries",
    ]
    if not rollouts:
        parts.append("  (no route has a canary)")
    for route, state in rollouts.items():
        reason = f", {state['reason']}" if state["reason"] else ""
        parts.append(
            f"  {route}: {state['backend']} at {state['percent']:g}% ({state['phase']}{reason})"
            f" -> {state['verdict']}"
        )
    parts += ["", *shadow_lines(data["shadows"])]
    return "\n".join(parts)
