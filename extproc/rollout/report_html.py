"""`switchyard report --html FILE`: the report as one self-contained HTML page.

The tables hold the numbers `switchyard report --json` gives at the same moment.
The charts over time (canary vs stable error rate and p95 latency, the canary's
percent, its phase changes) come from a Prometheus that scrapes switchyard
(`--prometheus URL`): switchyard itself keeps only the analysis window. The page has
no script and loads nothing: charts are inline SVG, so it opens offline anywhere.
"""

from __future__ import annotations

import html
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from extproc.rollout.quality import FLAGS
from extproc.rollout.report import ReportError, requests_cell
from extproc.rollout.shadow_comparison import shadow_html

Points = list[tuple[float, float]]

WIDTH, HEIGHT, MARGIN = 640, 220, 48
COLOURS = {"canary": "#d62728", "stable": "#1f77b4"}
OTHER_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#ff7f0e")

# Per route; {route} is a validated name, {w} the rate window.
_REQUESTS = 'switchyard_upstream_requests_total{{route="{route}"}}'
_ERRORS = 'switchyard_upstream_requests_total{{route="{route}", status="5xx"}}'
CHARTS = (
    (
        "Error rate",
        "%",
        # A cohort without errors has no 5xx series: "or … * 0" draws it at 0.
        f"100 * (sum by (cohort) (rate({_ERRORS}[{{w}}]))"
        f" or 0 * sum by (cohort) (rate({_REQUESTS}[{{w}}])))"
        f" / sum by (cohort) (rate({_REQUESTS}[{{w}}]))",
        "cohort",
    ),
    (
        "Latency p95",
        "ms",
        "1000 * histogram_quantile(0.95, sum by (cohort, le) (rate("
        'switchyard_upstream_latency_seconds_bucket{{route="{route}"}}[{w}])))',
        "cohort",
    ),
    (
        "Canary percent",
        "%",
        'max by (backend) (switchyard_canary_percent{{route="{route}"}})',
        "backend",
    ),
)
PHASE_QUERY = 'max by (phase) (switchyard_canary_phase{{route="{route}"}})'


@dataclass
class Chart:
    title: str
    unit: str
    series: dict[str, Points] = field(default_factory=dict)


@dataclass
class RouteHistory:
    charts: list[Chart]
    phases: list[tuple[float, str]]
    """(time, phase) at each change of phase."""


def _query_range(url: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    target = f"{url.rstrip('/')}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(target, timeout=20) as response:
            reply = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ReportError(f"cannot query Prometheus at {url}: {exc}") from None
    if reply.get("status") != "success":
        raise ReportError(f"Prometheus refused {expr!r}: {reply.get('error')}")
    result: list[Any] = reply["data"]["result"]
    return result


def prometheus_history(
    url: str, routes: Iterable[str], since_s: float, now: float | None = None
) -> dict[str, RouteHistory]:
    end = time.time() if now is None else now
    start = end - since_s
    step = max(1.0, since_s / 300)
    window = f"{max(60, int(4 * step))}s"
    histories = {}
    for route in routes:
        charts = []
        for title, unit, template, by in CHARTS:
            chart = Chart(title, unit)
            for item in _query_range(url, template.format(route=route, w=window), start, end, step):
                points = [(float(t), float(v)) for t, v in item["values"]]
                chart.series[item["metric"].get(by, "")] = points
            charts.append(chart)
        samples: dict[float, str] = {}
        for item in _query_range(url, PHASE_QUERY.format(route=route), start, end, step):
            for t, v in item["values"]:
                if float(v) == 1:
                    samples[float(t)] = item["metric"].get("phase", "")
        phases: list[tuple[float, str]] = []
        for t in sorted(samples):
            if not phases or phases[-1][1] != samples[t]:
                phases.append((t, samples[t]))
        histories[route] = RouteHistory(charts, phases)
    return histories


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


def svg_chart(chart: Chart) -> str:
    """A line per series; gaps (NaN: nothing observed) break the line."""
    points = [p for series in chart.series.values() for p in series if math.isfinite(p[1])]
    if not points:
        return f'<p class="empty">{html.escape(chart.title)}: no data in this time range.</p>'
    t0, t1 = min(t for t, _ in points), max(t for t, _ in points)
    top = max(v for _, v in points) or 1.0
    span = (t1 - t0) or 1.0
    inner_w, inner_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def xy(t: float, v: float) -> str:
        x = MARGIN + (t - t0) / span * inner_w
        y = HEIGHT - MARGIN - v / top * inner_h
        return f"{x:.1f} {y:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(chart.title)}">',
        f'<text x="{MARGIN}" y="20" class="title">{html.escape(chart.title)} ({chart.unit})</text>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}"'
        f' y2="{HEIGHT - MARGIN}" class="axis"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" class="axis"/>',
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end">{top:.3g}</text>',
        f'<text x="{MARGIN - 4}" y="{HEIGHT - MARGIN}" text-anchor="end">0</text>',
        f'<text x="{MARGIN}" y="{HEIGHT - MARGIN + 16}">{_clock(t0)}</text>',
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - MARGIN + 16}" text-anchor="end">'
        f"{_clock(t1)} UTC</text>",
    ]
    others = iter(OTHER_COLOURS * 4)
    for i, (name, series) in enumerate(sorted(chart.series.items())):
        colour = COLOURS.get(name) or next(others)
        path, pen_down = [], False
        for t, v in series:
            if not math.isfinite(v):
                pen_down = False
                continue
            path.append(("L" if pen_down else "M") + xy(t, v))
            pen_down = True
        if path:
            parts.append(
                f'<path d="{" ".join(path)}" stroke="{colour}" fill="none" stroke-width="2"'
                f' data-series="{html.escape(name)}"/>'
            )
        # The legend: a swatch of the line's colour, then its name in that colour (an
        # inline style: the page's `svg text` rule would override a fill attribute).
        y = MARGIN + 14 * i
        parts.append(
            f'<g class="legend" data-legend="{html.escape(name)}">'
            f'<line x1="{WIDTH - MARGIN + 6}" y1="{y - 4}" x2="{WIDTH - MARGIN + 26}"'
            f' y2="{y - 4}" stroke="{colour}" stroke-width="3"/>'
            f'<text x="{WIDTH - MARGIN}" y="{y}" text-anchor="end"'
            f' style="fill: {colour}">{html.escape(name or "-")}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _ab_rows(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        requests = row["requests"] or 1
        cells = [
            ("route", html.escape(row["route"])),
            ("cohort", html.escape(row["cohort"])),
            ("backend", html.escape(row["backend"])),
            ("requests", requests_cell(row)),
            ("errors", str(row["errors"])),
            ("error_rate", f"{row['errors'] / requests:.2%}"),
            ("latency_p50_ms", _ms(row["latency_p50_ms"])),
            ("latency_p95_ms", _ms(row["latency_p95_ms"])),
            ("ttfb_p50_ms", _ms(row["ttfb_p50_ms"])),
            ("prompt_tokens", str(row["prompt_tokens"])),
            ("completion_tokens", str(row["completion_tokens"])),
            ("cost", f"{row['cost']:.6f}"),
            ("cost_per_request", f"{row['cost'] / requests:.6f}"),
        ]
        tds = "".join(f'<td data-field="{k}">{v}</td>' for k, v in cells)
        out.append(f'<tr class="ab">{tds}</tr>')
    return out


AB_HEADER = [
    "route",
    "cohort",
    "backend",
    "requests",
    "errors",
    "error rate",
    "p50 ms",
    "p95 ms",
    "ttfb p50 ms",
    "prompt tokens",
    "completion tokens",
    "cost",
    "cost/req",
]
QUALITY_HEADER = ["route", "cohort", "backend", "answers", "scored", "mean score"] + [
    f"{flag} rate" for flag in FLAGS
]


def _quality_rows(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        judged = row["judged"] or 1
        mean = row["score_mean"]
        cells = [
            ("route", html.escape(row["route"])),
            ("cohort", html.escape(row["cohort"])),
            ("backend", html.escape(row["backend"])),
            ("judged", str(row["judged"])),
            ("scored", str(row["scored"])),
            ("score_mean", "-" if mean is None else f"{mean:.3f}"),
        ] + [(flag, f"{row['flags'].get(flag, 0) / judged:.2%}") for flag in FLAGS]
        tds = "".join(f'<td data-field="{k}">{v}</td>' for k, v in cells)
        out.append(f'<tr class="quality">{tds}</tr>')
    return out


UPSTREAM_HEADER = ["name", "requests", "2xx", "5xx", "timeouts", "resets", "p50 ms", "p95 ms"]


def _upstream_rows(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        cells = [html.escape(row["name"])] + [
            str(row[k]) for k in ("requests", "2xx", "5xx", "timeouts", "resets")
        ]
        cells += [_ms(row["p50_ms"]), _ms(row["p95_ms"])]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return out


def _canary_lead(state: dict[str, Any]) -> list[str]:
    """What the canary's section says first. After a rollback: the verdict that caused
    it, not the analysis of the empty window since (a canary at 0 % has no traffic)."""
    backend, phase = html.escape(state["backend"]), html.escape(state["phase"])
    if state["phase"] == "rolled_back":
        lead = [
            f'<p class="lead rolled-back"><b>Rolled back</b>: {backend} serves'
            f" <b>0%</b>; the verdict that rolled it back:"
            f" {html.escape(state.get('reason') or 'not recorded')}</p>"
        ]
    else:
        reason = f" ({html.escape(state['reason'])})" if state.get("reason") else ""
        lead = [
            f'<p class="lead">{backend} at <b>{state["percent"]:g}%</b>, phase'
            f" <b>{phase}</b>{reason}; verdict: {html.escape(str(state['verdict']))}</p>"
        ]
    if state.get("waiting_for"):
        lead.append(f'<p class="note">Waiting for: {html.escape(state["waiting_for"])}</p>')
    return lead


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f4f4f4; }
svg { display: block; margin: 0.5em 0; }
svg text { font-size: 11px; fill: #444; }
svg text.title { font-size: 13px; font-weight: bold; }
svg .axis { stroke: #888; }
.empty, .note { color: #777; }
"""


def render_html(
    data: dict[str, Any], history: dict[str, RouteHistory] | None, generated_at: float
) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(generated_at))
    body = [
        "<h1>switchyard report</h1>",
        f'<p class="note">At {stamp}'
        " UTC. Tables: this moment (as <code>switchyard report --json</code>).</p>",
    ]
    if history is None:
        body.append(
            '<p class="note">No charts over time: give <code>--prometheus URL</code>'
            " (a Prometheus scraping switchyard) to draw them.</p>"
        )
    for route, state in data["canaries"].items():
        body.append(f'<section class="canary" data-route="{html.escape(route)}">')
        body.append(f"<h2>Canary on route {html.escape(route)}</h2>")
        body.extend(_canary_lead(state))
        if history is not None and route in history:
            body.extend(svg_chart(chart) for chart in history[route].charts)
            steps = "".join(
                f"<li>{_clock(t)} UTC: {html.escape(phase)}</li>"
                for t, phase in history[route].phases
            )
            body.append(f"<h3>Phase history</h3><ul class='phases'>{steps}</ul>")
        rows = [r for r in data["ab"] if r["route"] == route]
        body.append(_table(AB_HEADER, _ab_rows(rows)))
        quality = [r for r in data.get("quality", []) if r["route"] == route]
        body.append(_table(QUALITY_HEADER, _quality_rows(quality)))
        body.append("</section>")
    body += shadow_html(data.get("shadows", {}))
    body += [
        "<h2>A/B by route, cohort and backend</h2>",
        _table(AB_HEADER, _ab_rows(data["ab"])),
        "<h2>Answer quality by route, cohort and backend</h2>",
        '<p class="note">Flag rates per 2xx answer; scores from POST /feedback and the'
        " score header.</p>",
        _table(QUALITY_HEADER, _quality_rows(data.get("quality", []))),
        "<h2>Envoy routes (&lt;route&gt;.&lt;cohort&gt;)</h2>",
        _table(["route", *UPSTREAM_HEADER[1:]], _upstream_rows(data["envoy_routes"])),
        "<h2>Envoy upstream clusters</h2>",
        _table(["cluster", *UPSTREAM_HEADER[1:]], _upstream_rows(data["envoy_clusters"])),
        "<p>Requests that bypassed switchyard (fail-open):"
        f' <b id="fail-open">{data["fail_open"]}</b>;'
        f' processor timeouts: <b id="processor-timeouts">{data["processor_timeouts"]}</b></p>',
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>switchyard report</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
