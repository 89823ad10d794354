"""The HTML report's pieces without a stack: charts, escaping, the page without history."""

from __future__ import annotations

import math
import re

from extproc.rollout.report_html import Chart, RouteHistory, render_html, svg_chart


def _data() -> dict[str, object]:
    row = {
        "route": "clinical",
        "cohort": "canary",
        "backend": "<med-v2>",
        "requests": 10,
        "errors": 2,
        "latency_p50_ms": 5.0,
        "latency_p95_ms": 9.0,
        "ttfb_p50_ms": None,
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cost": 0.5,
    }
    return {
        "ab": [row],
        "envoy_routes": [],
        "envoy_clusters": [],
        "canaries": {
            "clinical": {
                "backend": "<med-v2>",
                "percent": 0.0,
                "phase": "rolled_back",
                "reason": "error_rate: degraded",
                "verdict": "not enough data",
            }
        },
        "fail_open": 3,
        "processor_timeouts": 1,
        "quality": [
            {
                "route": "clinical",
                "cohort": "canary",
                "backend": "<med-v2>",
                "judged": 8,
                "scored": 2,
                "score_mean": 0.25,
                "flags": {"refusal": 2},
            }
        ],
    }


def test_a_gap_in_a_series_breaks_its_line() -> None:
    chart = Chart("Error rate", "%", {"canary": [(0, 1.0), (1, math.nan), (2, 3.0), (3, 2.0)]})
    (path,) = re.findall(r'<path d="([^"]+)"', svg_chart(chart))
    assert path.count("M") == 2 and path.count("L") == 1


def test_a_chart_without_data_says_so() -> None:
    assert "no data" in svg_chart(Chart("Latency p95", "ms", {"stable": [(0, math.nan)]}))


def test_page_escapes_names_and_says_how_to_get_charts() -> None:
    page = render_html(_data(), None, 0)
    assert "<med-v2>" not in page and "&lt;med-v2&gt;" in page
    assert "--prometheus URL" in page
    assert "<script" not in page and "<svg" not in page
    assert '<td data-field="error_rate">20.00%</td>' in page
    assert '<td data-field="cost_per_request">0.050000</td>' in page


def test_page_with_history_draws_each_chart_and_lists_phase_changes() -> None:
    history = {
        "clinical": RouteHistory(
            [Chart("Canary percent", "%", {"med-v2": [(0, 10.0), (60, 25.0), (120, 0.0)]})],
            [(0, "progressing"), (120, "rolled_back")],
        )
    }
    page = render_html(_data(), history, 180)
    assert page.count("<svg") == 1
    assert "00:02:00 UTC: rolled_back" in page


def test_page_shows_answer_quality_per_cohort() -> None:
    page = render_html(_data(), None, 0)
    section = page[page.index('data-route="clinical"') : page.index("</section>")]
    assert '<td data-field="refusal">25.00%</td>' in section
    assert '<td data-field="score_mean">0.250</td>' in section
    assert "Answer quality by route, cohort and backend" in page


def test_each_legend_entry_shows_its_lines_colour() -> None:
    chart = Chart("Error rate", "%", {"canary": [(0, 1.0), (1, 2.0)], "stable": [(0, 1.0)]})
    svg = svg_chart(chart)
    strokes = dict(
        (series, colour)
        for colour, series in re.findall(
            r'<path d="[^"]+" stroke="([^"]+)"[^>]*data-series="(\w+)"', svg
        )
    )
    legend = re.findall(
        r'data-legend="(\w+)"><line [^>]*stroke="([^"]+)"[^>]*/><text [^>]*style="fill: ([^"]+)">(\w+)<',
        svg,
    )
    assert {(name, swatch, text, shown) for name, swatch, text, shown in legend} == {
        ("canary", strokes["canary"], strokes["canary"], "canary"),
        ("stable", strokes["stable"], strokes["stable"], "stable"),
    }
    assert strokes["canary"] != strokes["stable"]


def test_after_a_rollback_the_section_leads_with_the_verdict_that_caused_it() -> None:
    page = render_html(_data(), None, 0)
    section = page[page.index('data-route="clinical"') : page.index("</section>")]
    lead = re.search(r'<p class="lead rolled-back">(.*?)</p>', section)
    assert lead is not None and "error_rate: degraded" in lead.group(1)
    assert section.index("lead rolled-back") < section.index("<table")
    assert "not enough data" not in section  # one story per page
