"""The chart's Grafana dashboard, written as plain data: helm/switchyard/files/dashboard.json.

One panel per question an operator asks during a rollout. Every query is checked
against a real Prometheus scraping a running stack (tests/e2e/test_dashboard.py),
so a wrong metric or label name shows up as a failing test, not an empty panel.

    make dashboard                 # rewrite helm/switchyard/files/dashboard.json
    tests/helm/test_dashboard.py   # fails when it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DASHBOARD_PATH = (
    Path(__file__).resolve().parents[2] / "helm" / "switchyard" / "files" / "dashboard.json"
)
UID = "switchyard-rollouts"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Selectors shared by the panels: every series carries the namespace the
# Prometheus Operator adds; the route and backend variables narrow what has them.
NS = 'namespace=~"$namespace"'
ROUTE = f'{NS}, route=~"$route"'
UPSTREAM = f'{ROUTE}, backend=~"$backend"'
RATE = "[$__rate_interval]"


def _target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(
    title: str,
    targets: list[dict[str, Any]],
    *,
    unit: str,
    description: str,
    kind: str = "timeseries",
) -> dict[str, Any]:
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        target["refId"] = ref
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": targets,
    }


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _quantile(q: str, histogram: str = "switchyard_upstream_latency_seconds") -> str:
    return (
        f"histogram_quantile({q}, sum by (cohort, le) "
        f"(rate({histogram}_bucket{{{UPSTREAM}}}{RATE})))"
    )


def _per_request(counter: str, by: str) -> str:
    return (
        f"sum by ({by}) (rate({counter}{{{UPSTREAM}}}{RATE}))"
        f" / on (cohort) group_left sum by (cohort) "
        f"(rate(switchyard_upstream_requests_total{{{UPSTREAM}}}{RATE}))"
    )


def _rows() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    traffic = [
        _panel(
            "Requests by route, cohort and backend",
            [
                _target(
                    "sum by (route, cohort, backend) "
                    f"(rate(switchyard_upstream_requests_total{{{UPSTREAM}}}{RATE}))",
                    "{{route}} {{cohort}} {{backend}}",
                )
            ],
            unit="reqps",
            description="Responses switchyard observed, per second.",
        ),
        _panel(
            "Error rate: canary vs stable",
            [
                _target(
                    "sum by (cohort) (rate(switchyard_upstream_requests_total"
                    f'{{{UPSTREAM}, status="5xx"}}{RATE}))'
                    " / sum by (cohort) "
                    f"(rate(switchyard_upstream_requests_total{{{UPSTREAM}}}{RATE}))",
                    "{{cohort}}",
                )
            ],
            unit="percentunit",
            description="Share of 5xx responses per cohort; a cohort without errors has no line.",
        ),
        _panel(
            "Latency p50 / p95: canary vs stable",
            [
                _target(_quantile("0.5"), "p50 {{cohort}}"),
                _target(_quantile("0.95"), "p95 {{cohort}}"),
            ],
            unit="s",
            description="Whole response time, from the router to the last byte.",
        ),
        _panel(
            "Time to first byte p50 / p95: canary vs stable",
            [
                _target(_quantile(q, "switchyard_upstream_ttfb_seconds"), f"{p} {{{{cohort}}}}")
                for q, p in (("0.5", "p50"), ("0.95", "p95"))
            ],
            unit="s",
            description="From sending the request upstream to the response's headers"
            " (Envoy's x-envoy-upstream-service-time).",
        ),
    ]
    usage = [
        _panel(
            "Tokens per request",
            [
                _target(
                    _per_request("switchyard_tokens_total", "cohort, kind"), "{{cohort}} {{kind}}"
                )
            ],
            unit="short",
            description="From the responses' usage.",
        ),
        _panel(
            "Cost per request",
            [_target(_per_request("switchyard_cost_total", "cohort"), "{{cohort}}")],
            unit="currencyUSD",
            description="From the backends' prices (in the prices' currency).",
        ),
    ]
    rollout = [
        _panel(
            "Canary percent",
            [
                _target(
                    f"max by (route, backend) (switchyard_canary_percent{{{UPSTREAM}}})",
                    "{{route}} → {{backend}}",
                )
            ],
            unit="percent",
            description="Share of sessions on the canary; drops to 0 at a rollback.",
        ),
        _panel(
            "Canary phase",
            [
                _target(
                    f"max by (route, phase) (switchyard_canary_phase{{{ROUTE}}}) == 1",
                    "{{route}} {{phase}}",
                )
            ],
            unit="none",
            kind="state-timeline",
            description="The phase each route's canary is in.",
        ),
    ]
    classifier = [
        _panel(
            "Classifier latency p50 / p95",
            [
                _target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(switchyard_classification_seconds_bucket{{{NS}}}{RATE})))",
                    f"p{q[2:].ljust(2, '0')}",
                )
                for q in ("0.5", "0.95")
            ],
            unit="s",
            description="Time to classify one batch.",
        ),
        _panel(
            "Decisions by label",
            [
                _target(
                    f"sum by (label) (rate(switchyard_decisions_total{{{ROUTE}}}{RATE}))",
                    "{{label}}",
                )
            ],
            unit="reqps",
            description="Classifier labels of the routed requests.",
        ),
        _panel(
            "Shed and truncated classifications",
            [
                _target(
                    f"sum by (mode) (rate(switchyard_classifier_degraded_total{{{NS}}}{RATE}))",
                    "{{mode}}",
                )
            ],
            unit="reqps",
            description="Overload: 'shed' requests went unlabelled, 'truncated' were cut short.",
        ),
        _panel(
            "Second opinions per classification",
            [
                _target(
                    f"sum(rate(switchyard_classifier_second_opinions_total{{{NS}}}{RATE})) / "
                    f"sum(rate(switchyard_classification_batch_size_sum{{{NS}}}{RATE}))",
                    "share",
                )
            ],
            unit="percentunit",
            description="Share of classified conversations that also paid for the second"
            " encoder (classifier.encoder use+minilm-when-unsure): its CPU cost.",
        ),
    ]
    fleet = [
        _panel(
            "Envoy: fail-opens and processor timeouts",
            [
                _target(
                    "sum by (pod) "
                    f"(rate(envoy_http_ext_proc_switchyard_failure_mode_allowed{{{NS}}}{RATE}))",
                    "fail-open {{pod}}",
                ),
                _target(
                    "sum by (pod) "
                    f"(rate(envoy_http_ext_proc_switchyard_message_timeouts{{{NS}}}{RATE}))",
                    "timeout {{pod}}",
                ),
            ],
            unit="reqps",
            description="Requests Envoy passed on without switchyard's routing.",
        ),
        _panel(
            "State store up / leader",
            [
                _target(f"switchyard_state_store_up{{{NS}}}", "up {{pod}}"),
                _target(f"switchyard_state_leader{{{NS}}}", "leader {{pod}}"),
            ],
            unit="none",
            description="Whether each replica reaches the fleet's store, and which one leads.",
        ),
    ]
    quality = [
        _panel(
            "Mean answer score: canary vs stable",
            [
                _target(
                    "sum by (cohort) "
                    f"(rate(switchyard_quality_score_sum{{{UPSTREAM}}}{RATE}))"
                    " / sum by (cohort) "
                    f"(rate(switchyard_quality_score_count{{{UPSTREAM}}}{RATE}))",
                    "{{cohort}}",
                )
            ],
            unit="percentunit",
            description="Scores (0..1) from POST /feedback and the score header, mean per "
            "cohort; the analysis rolls a canary back when its mean falls under stable's by "
            "more than analysis.quality.score_margin.",
        ),
        _panel(
            "Flagged answers per response",
            [
                _target(
                    _per_request("switchyard_quality_flags_total", "cohort, flag"),
                    "{{cohort}} {{flag}}",
                )
            ],
            unit="percentunit",
            description="Refusals, empty and truncated answers detected by switchyard, and "
            "flags posted to /feedback, per response of the cohort.",
        ),
        _panel(
            "Feedback received by result",
            [
                _target(
                    f"sum by (source, result) (rate(switchyard_feedback_total{{{NS}}}{RATE}))",
                    "{{source}} {{result}}",
                )
            ],
            unit="reqps",
            description="Signals per second: accepted, duplicate (already counted, on any "
            "replica), unknown_id (not served by this fleet, or too old), unsampled (a stable "
            "answer outside envoy.observe_sample), invalid.",
        ),
    ]
    cache = [
        _panel(
            "Cache hit rate by route",
            [
                _target(
                    "sum by (route) "
                    f'(rate(switchyard_cache_requests_total{{{ROUTE}, result="hit"}}{RATE}))'
                    " / sum by (route) "
                    f"(rate(switchyard_cache_requests_total{{{ROUTE}}}{RATE}))",
                    "{{route}}",
                )
            ],
            unit="percentunit",
            description="Share of the chat requests on routes with a cache that were answered "
            "from it (bypasses and misses count as requests).",
        ),
        _panel(
            "Cost saved by the cache",
            [
                _target(
                    f"sum by (route) (rate(switchyard_cache_saved_cost_total{{{ROUTE}}}{RATE}))",
                    "{{route}}",
                )
            ],
            unit="short",
            description="Per second, in the backends' price currency: what the answers served "
            "from the cache would have cost again.",
        ),
        _panel(
            "Cache entries",
            [_target(f"sum by (route) (switchyard_cache_entries{{{ROUTE}}})", "{{route}}")],
            unit="short",
            description="Entries held, summed over replicas (each keeps its own copy).",
        ),
    ]
    return [
        (_row("Traffic, errors and latency"), traffic),
        (_row("Tokens and cost"), usage),
        (_row("Answer quality"), quality),
        (_row("Response cache"), cache),
        (_row("Rollout"), rollout),
        (_row("Classifier"), classifier),
        (_row("Envoy and fleet"), fleet),
    ]


def _laid_out() -> list[dict[str, Any]]:
    """Rows full width, then their panels side by side, three to a line."""
    panels: list[dict[str, Any]] = []
    y = 0
    for row, members in _rows():
        panels.append({**row, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        y += 1
        for i, panel in enumerate(members):
            panel["gridPos"] = {"h": 8, "w": 8, "x": 8 * (i % 3), "y": y + 8 * (i // 3)}
        y += 8 * ((len(members) + 2) // 3)
        panels.extend(members)
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return panels


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def _counter_marks(metric: str) -> str:
    """Steps of a counter, including its first one: a series that appears at 1
    has no increase() of its own, so new series count as well."""
    selector = f"{metric}{{{ROUTE}}}"
    return (
        f"sum by (route) (increase({selector}[$__interval]) > 0"
        f" or ({selector} unless {selector} offset $__interval))"
    )


def _annotation(name: str, metric: str, color: str) -> dict[str, Any]:
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": color,
        "expr": _counter_marks(metric),
        "step": "$__interval",
        "titleFormat": f"{name}: {{{{route}}}}",
        "useValueForTime": False,
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": UID,
        "title": "switchyard: routes and canaries",
        "tags": ["switchyard"],
        "timezone": "browser",
        "schemaVersion": 39,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {
            "list": [
                _annotation("Rollback", "switchyard_rollbacks_total", "red"),
                _annotation("Promotion", "switchyard_promotions_total", "green"),
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                _variable("namespace", "label_values(switchyard_decisions_total, namespace)"),
                _variable(
                    "route",
                    'label_values(switchyard_decisions_total{namespace=~"$namespace"}, route)',
                ),
                _variable(
                    "backend",
                    "label_values(switchyard_upstream_requests_total"
                    '{namespace=~"$namespace", route=~"$route"}, backend)',
                ),
            ]
        },
        "panels": _laid_out(),
    }


def dump(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    DASHBOARD_PATH.write_text(dump(dashboard()))
    print(f"updated {DASHBOARD_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
