"""The benchmark harness itself: bench/run.py --quick on the ceiling and rules-only scenarios.

Runs the real stack (backend Envoy, Envoy, switchyard, wrk) for 2 s per
concurrency and checks the results file and the report are well-formed. The
numbers themselves are not checked: this machine is shared and noisy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.configs import RULES_PROMPT, RULES_ROUTE, chat_body
from bench.report import kept_by_hand
from bench.scenarios import start_stack
from bench.stacks import Lab, Pinning

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_quick_run_is_well_formed(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "wrk missing: make test installs it (scripts/system-deps.sh)"
    doc = tmp_path / "BENCHMARKS.md"
    # A section make bench does not measure survives the rewrite; the rest is replaced.
    doc.write_text(
        "# Benchmarks\n\nstale header\n\n### Large bodies (`make bench-heavy`, by hand)\n\n"
        "measured elsewhere: 1.10 x\n\n## Raw runs\n\nstale runs\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--quick",
            "--scenarios",
            "ceiling,rules",
            "--results-dir",
            str(tmp_path),
            "--doc",
            str(doc),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (results_file,) = tmp_path.glob("bench-*.json")
    results = json.loads(results_file.read_text())

    assert results["skipped"] == {}
    seen = {(run["scenario"], run["concurrency"]) for run in results["runs"]}
    assert seen == {(s, c) for s in ("ceiling", "rules") for c in (1, 16, 64)}
    for run in results["runs"]:
        wrk = run["wrk"]
        assert wrk["requests"] > 0 and wrk["rps"] > 0, run
        assert wrk["non_2xx"] == 0 and wrk["socket_errors"] == 0, run
        assert 0 < wrk["p50_ms"] <= wrk["p99_ms"], run
        assert run["envoy"]["downstream_rq_5xx"] == 0, run
        if run["scenario"] == "rules":
            # Every request went through switchyard, none failed open.
            assert run["envoy"]["streams_started"] >= wrk["requests"], run
            assert run["envoy"]["failure_mode_allowed"] == 0, run
            assert run["envoy"]["message_timeouts"] == 0, run
            assert run["cpu_ms_per_request"]["processor"] > 0, run
            assert run["memory_mib"]["VmRSS"] > 0, run

    handler = results["handler"]["cases"]["rules"]
    assert 0 < handler["handler_us"]["p50"] <= handler["with_protobuf_us"]["p99"]
    heavy = results["handler"]["cases"]["rules-heavy"]
    assert 0 < handler["with_protobuf_cpu_us"]["p50"] < heavy["with_protobuf_cpu_us"]["p50"]

    text = doc.read_text()
    for heading in ("## Targets", "## Machine", "## How it was run", "## Results", "## Raw runs"):
        assert heading in text
    assert "rules-only throughput at c=64" in text
    assert "measured elsewhere: 1.10 x" in text
    assert "stale header" not in text and "stale runs" not in text
    assert text.index("measured elsewhere") < text.index("## Raw runs")


def test_only_sections_kept_by_hand_are_carried_over() -> None:
    doc = (
        "# Benchmarks\n\n## Results\n\n### Throughput\n\nt\n\n"
        "### Two workers (`--pin both`, by hand)\n\nw 1.20 x\n\n"
        "### Heavy (by hand)\n\nh 1.10 x\n\n## Handler micro-benchmark\n\nm\n"
    )
    assert kept_by_hand(doc) == [
        "### Two workers (`--pin both`, by hand)\n\nw 1.20 x",
        "### Heavy (by hand)\n\nh 1.10 x",
    ]
    assert kept_by_hand("# Benchmarks\n\n## Results\n") == []


def test_the_trivial_processor_stack_starts_and_routes(tmp_path: Path) -> None:
    """Its Envoy gets every resource inline: the trivial processor serves no xDS."""
    lab = Lab(tmp_path, Pinning.named("none"))
    try:
        lab.start_backend()
        stack = start_stack(lab, "trivial")  # waits until a request is routed
        assert stack.probe(chat_body(RULES_PROMPT)) == (200, RULES_ROUTE)
    finally:
        lab.stop()
