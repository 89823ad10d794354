"""A shadow beside its primary: the report's comparison and the gate before `launch`.

The numbers are the per route/cohort/backend rows of TrafficStats.snapshot() (the
responses this replica observed): the primary is the route's stable cohort, the shadow
its `shadow` cohort. Shadow copies never enter the canary analysis; this is the only
place they are judged.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from extproc import headers as h
from extproc.config import AnalysisConfig, Config
from extproc.rollout.analysis import error_rate_confidence

COMPARED = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")


@dataclass(frozen=True)
class Side:
    """One side of the comparison: totals over its rows, the slowest backend's p50/p95."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def per_request(self, total: float) -> float:
        return total / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        n = self.requests or 1
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "prompt_tokens_per_request": round(self.prompt_tokens / n, 3),
            "completion_tokens_per_request": round(self.completion_tokens / n, 3),
            "cost_per_request": round(self.cost / n, 8),
        }


def _side(rows: list[dict[str, Any]]) -> Side:
    def worst(key: str) -> float | None:
        values = [row[key] for row in rows if row.get(key) is not None]
        return max(values) if values else None

    totals = {key: sum(row[key] for row in rows) for key in COMPARED}
    return Side(
        **totals, latency_p50_ms=worst("latency_p50_ms"), latency_p95_ms=worst("latency_p95_ms")
    )


def compare(traffic: list[dict[str, Any]], config: Config) -> dict[str, dict[str, Any]]:
    """Per shadowed route: its shadow backend, and primary vs shadow side by side."""
    out: dict[str, dict[str, Any]] = {}
    for route in config.routes:
        if route.shadow is None:
            continue
        rows = [row for row in traffic if row["route"] == route.name]
        primary = _side([row for row in rows if row["cohort"] == h.STABLE])
        shadow = _side([row for row in rows if row["cohort"] == h.SHADOW_COHORT])
        out[route.name] = {
            "backend": route.shadow.backend,
            "percent": route.shadow.percent,
            "primary": primary.as_dict(),
            "shadow": shadow.as_dict(),
            "verdict": launch_refusal(primary, shadow, config.analysis) or "healthy",
        }
    return out


def launch_refusal(primary: Side, shadow: Side, cfg: AnalysisConfig) -> str | None:
    """Why this shadow should not become a canary yet; None when it is healthy.

    Healthy asks more than the canary analysis (which rolls back only on proof of
    harm): enough answers, and an error rate and median latency within the margins
    the analysis tolerates, on the numbers observed.
    """
    if shadow.requests < cfg.min_requests or primary.requests < cfg.min_requests:
        return (
            f"not enough data: {shadow.requests} shadow / {primary.requests} primary answers, "
            f"expected at least {cfg.min_requests} each (analysis.min_requests)"
        )
    tolerated = max(cfg.error_margin * primary.error_rate, cfg.error_floor)
    if shadow.error_rate > primary.error_rate + tolerated:
        confidence = error_rate_confidence(
            shadow.errors, shadow.requests, primary.errors, primary.requests, cfg
        )
        return (
            f"error rate {shadow.error_rate:.2%} vs {primary.error_rate:.2%} on the primary "
            f"(confidence it is worse beyond the margin: {confidence:.3f})"
        )
    p50, primary_p50 = shadow.latency_p50_ms, primary.latency_p50_ms
    if p50 is not None and primary_p50 is not None:
        slower = p50 - primary_p50
        if slower > cfg.latency_floor_ms and p50 > primary_p50 * (1 + cfg.latency_margin):
            return f"median latency {p50:.1f} ms vs {primary_p50:.1f} ms on the primary"
    return None


SIDE_COLUMNS = ["route", "side", "backend", "requests", "errors", "p50 ms", "p95 ms"]
SIDE_COLUMNS += ["prompt tok/req", "compl tok/req", "cost/req"]


def side_cells(route: str, side: str, backend: str, numbers: dict[str, Any]) -> list[str]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    return [
        route,
        side,
        backend,
        str(numbers["requests"]),
        f"{numbers['error_rate']:.2%}",
        ms(numbers["latency_p50_ms"]),
        ms(numbers["latency_p95_ms"]),
        f"{numbers['prompt_tokens_per_request']:.0f}",
        f"{numbers['completion_tokens_per_request']:.0f}",
        f"{numbers['cost_per_request']:.6f}",
    ]


def shadow_lines(shadows: dict[str, dict[str, Any]]) -> list[str]:
    """The report's text section: each shadow beside its primary, and its verdict."""
    lines = ["Shadows (copies of some sessions' requests; clients saw only the primary)"]
    if not shadows:
        return [*lines, "  (no route has a shadow)"]
    rows = []
    for route, shadow in shadows.items():
        rows.append(side_cells(route, "primary", "(stable)", shadow["primary"]))
        rows.append(side_cells(route, "shadow", shadow["backend"], shadow["shadow"]))
    widths = [max(len(c) for c in column) for column in zip(SIDE_COLUMNS, *rows, strict=True)]
    for row in [SIDE_COLUMNS, *rows]:
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    for route, shadow in shadows.items():
        lines.append(f"  {route}: {shadow['percent']:g}% of sessions -> {shadow['verdict']}")
    return lines


def shadow_html(shadows: dict[str, dict[str, Any]]) -> list[str]:
    """The HTML report's section: one table per shadowed route, primary and shadow rows."""
    out = []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in SIDE_COLUMNS[1:])
    for route, shadow in shadows.items():
        rows = []
        for side, backend in (("primary", "(stable)"), ("shadow", shadow["backend"])):
            cells = side_cells(route, side, backend, shadow[side])[1:]
            tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            rows.append(f'<tr class="{side}">{tds}</tr>')
        out += [
            f'<section class="shadow" data-route="{html.escape(route)}">',
            f"<h2>Shadow on route {html.escape(route)}</h2>",
            f"<p>{html.escape(shadow['backend'])} receives a copy of {shadow['percent']:g}% of"
            " sessions; clients see only the primary's answers. Verdict:"
            f" <b>{html.escape(shadow['verdict'])}</b></p>",
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>",
            "</section>",
        ]
    return out
