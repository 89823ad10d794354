"""Every query of the chart's Grafana dashboard returns data on a running stack.

A real Prometheus scrapes switchyard's /metrics and Envoy's stats listener every
second while traffic goes through a canary that is promoted, then broken and rolled
back; then each panel's, annotation's and variable's query is asked of Prometheus
through its HTTP API, with Grafana's variables filled in as Grafana would.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from extproc.tools import devstack
from tests.e2e.stack import (
    MODEL_DIR,
    OBSERVE_ALL,
    Client,
    Load,
    Stack,
    canary_config,
    http_get,
    http_post,
    running_stack,
    wait_until,
)
from tests.helm.conftest import tool
from tests.helm.dashboard_gen import DASHBOARD_PATH

pytestmark = pytest.mark.e2e

NAMESPACE = "llm"
# What Grafana puts in place of its own variables; "All" of a variable is ".*".
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$namespace": NAMESPACE,
    "$route": ".*",
    "$backend": ".*",
}


def _config() -> dict[str, Any]:
    config = canary_config(hold={"seconds": 1, "requests": 5})
    config["envoy"].update(OBSERVE_ALL)  # feedback on every answer: each panel gets data
    # A route by label: switchyard runs the classifier only when one needs it.
    billing = {"name": "billing", "match": {"label": "billing"}, "backends": [{"backend": "cheap"}]}
    config["routes"].insert(1, billing)
    # Matched by keyword, so the classifier's shedding (below) cannot move its traffic.
    faq = {
        "name": "faq",
        "match": {"keywords": ["faq:"]},
        "backends": [{"backend": "cheap"}],
        "cache": {"enabled": True, "partition_by": ["header:x-tenant-id"]},
    }
    config["routes"].insert(0, faq)
    config["labels"] = [
        {"name": "medical", "examples": ["I have a fever and a cough", "my knee hurts"]},
        {"name": "billing", "examples": ["refund my invoice", "why was I charged twice"]},
    ]
    # The slower encoder, no cache and a short wait: concurrent long prompts put
    # the classifier under pressure, so its degraded counter has samples.
    config["classifier"] = {
        "model": str(MODEL_DIR),
        "encoder": "minilm",
        "max_tokens": 256,
        "cache_size": 0,
        "max_wait_ms": 10,
    }
    for backend in config["backends"]:
        backend["price"] = {"prompt_per_1m": 2.0, "completion_per_1m": 8.0}
    return config


def _scrape_configs(stack: Stack) -> list[dict[str, Any]]:
    target_labels = {"namespace": NAMESPACE, "pod": "switchyard-0"}
    return [
        devstack.scrape("switchyard", f"127.0.0.1:{stack.metrics_port}", labels=target_labels),
        devstack.scrape(
            "envoy", stack.config["envoy"]["stats_listen"], "/stats/prometheus", target_labels
        ),
    ]


class Prometheus:
    def __init__(self, port: int) -> None:
        self.port = port

    def get(self, path: str, **params: str) -> Any:
        status, body = http_get(self.port, f"{path}?{urllib.parse.urlencode(params)}", timeout=10)
        reply = json.loads(body)
        assert status == 200 and reply["status"] == "success", (path, params, body[:500])
        return reply["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets_up(self) -> bool:
        active = self.get("/api/v1/targets")["activeTargets"]
        return len(active) == 2 and all(t["health"] == "up" for t in active)


@contextlib.contextmanager
def running_prometheus(tmp_path: Path, stack: Stack) -> Iterator[Prometheus]:
    process = devstack.prometheus(tmp_path, _scrape_configs(stack))
    try:
        process.wait_ready(30)
        server = Prometheus(process.ports["http"])
        wait_until(server.targets_up, 20, "both scrape targets up", interval=0.5)
        yield server
    finally:
        process.stop(timeout=20)


def _burst(stack: Stack, requests: int = 96) -> None:
    """Distinct long prompts all at once: more than the classifier gets through in
    max_wait_ms, so it truncates or sheds (the general route gets traffic too)."""
    filler = "please look at my last three invoices and tell me what went wrong " * 6

    def send(i: int) -> int:
        client = Client(stack.port)
        try:
            return client.chat(f"billing question {i}: {filler}").status
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(send, range(requests)))
    assert statuses.count(200) == requests
    degraded = [
        line
        for line in stack.metrics_text().splitlines()
        if line.startswith("switchyard_classifier_degraded_total")
    ]
    assert degraded, "the burst did not put the classifier under pressure"


def _feedback(stack: Stack, requests: int = 12) -> None:
    """Scores and a flag posted for some answers, so the quality panels have data."""
    client = Client(stack.port)
    try:
        replies = [client.chat("symptom: I have had a cough for a week") for _ in range(requests)]
    finally:
        client.close()
    for i, reply in enumerate(replies):
        if i == requests // 2:
            time.sleep(2)  # scraped between the halves: the rates see the sums grow
        signal: dict[str, object] = {"request_id": reply.headers["x-request-id"]}
        signal["score"] = 0.5 + i / 40
        if i % 3 == 0:
            signal["flag"] = "wrong"
        body = json.dumps(signal).encode()
        # The client can have its answer before switchyard has finished observing it.
        wait_until(
            lambda body=body: http_post(stack.metrics_port, "/feedback", body)[0] == 200,
            5,
            "feedback accepted",
        )


def _cache_hits(stack: Stack) -> None:
    """One FAQ question asked again and again, across scrapes: hits and saved cost."""
    client = Client(stack.port)
    try:
        # A miss that fills, then two rounds of hits a scrape apart (a rate needs two).
        for asks in (1, 2, 2):
            for _ in range(asks):
                reply = client.chat(
                    "faq: how do I download my invoice?", headers={"x-tenant-id": "t1"}
                )
                assert reply.status == 200
            time.sleep(1.5)
    finally:
        client.close()
    assert 'result="hit"' in stack.metrics_text()


def _filled(expr: str) -> str:
    # Longest names first: $__rate_interval before $__interval.
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, expr
    return expr


def _queries(board: dict[str, Any]) -> dict[str, str]:
    queries = {}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for annotation in board["annotations"]["list"]:
        queries[f"annotation {annotation['name']!r}"] = annotation["expr"]
    return queries


@dataclass
class RolledOut:
    stack: Stack
    prometheus: Prometheus
    workdir: Path


@pytest.fixture(scope="module")
def rolled_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolledOut]:
    """A stack whose canary was promoted twice then rolled back, scraped all along."""
    workdir = tmp_path_factory.mktemp("dashboard")
    with (
        running_stack(workdir / "stack", _config()) as stack,
        running_prometheus(workdir, stack) as prometheus,
    ):
        with Load(stack, "symptom: I have had a cough for a week", threads=6) as load:
            wait_until(
                lambda: stack.switchyard_stats()["rollouts"]["clinical"]["percent"] >= 50,
                40,
                "two promotions",
                interval=0.2,
            )
            wait_until(
                lambda: sum(s.cohort == "canary" for s in load.sent) >= 30, 30, "canary traffic"
            )
            stack.backends["med-v2"].control(error_rate=1.0)
            wait_until(
                lambda: stack.switchyard_stats()["rollouts"]["clinical"]["phase"] == "rolled_back",
                30,
                "the rollback",
                interval=0.2,
            )
            _burst(stack)
            _feedback(stack)
            _cache_hits(stack)
            time.sleep(3)  # a few scrapes after the rollback
        yield RolledOut(stack, prometheus, workdir)


def test_every_dashboard_query_returns_data(rolled_out: RolledOut) -> None:
    board = json.loads(DASHBOARD_PATH.read_text())
    prometheus = rolled_out.prometheus
    empty = {}
    for name, expr in _queries(board).items():
        # NaN is what a quantile or a ratio of no observations gives: no data either.
        values = [float(sample["value"][1]) for sample in prometheus.query(_filled(expr))]
        if not any(value == value for value in values):
            empty[name] = _filled(expr)
    variables = {}
    for variable in board["templating"]["list"][1:]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        selector, label = match.groups()
        variables[variable["name"]] = prometheus.get(
            f"/api/v1/label/{label}/values", **{"match[]": _filled(selector)}
        )
    print(f"{len(_queries(board))} dashboard queries checked")
    assert empty == {}, "queries that returned nothing:\n" + json.dumps(empty, indent=1)
    assert variables["namespace"] == [NAMESPACE]
    assert {"clinical", "billing"} <= set(variables["route"])
    assert {"med-v1", "med-v2", "cheap"} <= set(variables["backend"])


_AB_ROW = re.compile(r'<tr class="ab">(.*?)</tr>', re.S)
_CELL = re.compile(r'<td data-field="(\w+)">([^<]*)</td>')
AB_FIELDS = (
    "route",
    "cohort",
    "backend",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
)


def test_html_report_draws_the_canary_story_in_a_real_browser(rolled_out: RolledOut) -> None:
    stack, page = rolled_out.stack, rolled_out.workdir / "report.html"
    prometheus_url = f"http://127.0.0.1:{rolled_out.prometheus.port}"
    stack.report("--html", str(page), "--prometheus", prometheus_url, "--since", "300")
    expected = json.loads(stack.report("--json"))  # no traffic since: same numbers
    assert "http" not in page.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
    browser = subprocess.run(
        [
            tool("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert browser.returncode == 0, browser.stderr[-2000:]
    dom = browser.stdout
    assert "CONSOLE" not in browser.stderr and "Uncaught" not in browser.stderr
    # Charts drawn: each cohort's error rate and latency as a line of several points.
    clinical = dom[dom.index('data-route="clinical"') :]
    lines = re.findall(r'<path d="(M[^"]+)"[^>]*data-series="([\w.-]+)"', clinical)
    # Three points at least: how many more depends on how many scrapes the short run had.
    drawn = {series for d, series in lines if d.count("L") >= 2}
    assert {"canary", "stable", "med-v2"} <= drawn, lines
    section = clinical[: clinical.index("</section>")]
    # After the rollback the section leads with the verdict that caused it: one story.
    lead = re.search(r'<p class="lead rolled-back">(.*?)</p>', section)
    assert lead is not None and "degraded" in lead.group(1), section[:2000]
    assert section.index("lead rolled-back") < section.index("<svg")
    assert "not enough data" not in section
    # Each legend entry carries its line's colour, in the swatch and in the name.
    strokes = {
        series: colour
        for colour, series in re.findall(
            r'<path d="M[^"]+" stroke="([^"]+)"[^>]*data-series="([\w.-]+)"', section
        )
    }
    legend = re.findall(
        r'data-legend="([\w.-]+)"><line [^>]*stroke="([^"]+)"[^>]*></line><text [^>]*'
        r'style="fill: ([^";]+);?">',
        section,
    )
    assert {"canary", "stable"} <= {name for name, _, _ in legend}, section[:3000]
    for name, swatch, text in legend:
        assert swatch == text == strokes.get(name, swatch), (name, swatch, text)
    # The table's numbers are report --json's.
    shown = {tuple(dict(_CELL.findall(row))[f] for f in AB_FIELDS) for row in _AB_ROW.findall(dom)}
    assert shown == {tuple(str(r[f]) for f in AB_FIELDS) for r in expected["ab"]}
    assert f'id="fail-open">{expected["fail_open"]}<' in dom
