"""extproc.rollout.envoy_stats: Envoy's per-route statistics as per-second summaries."""

from __future__ import annotations

import math
import subprocess
import sys
import urllib.parse
from pathlib import Path

import yaml

from extproc.config import load_config
from extproc.envoy_config import render
from extproc.rollout.envoy_stats import EnvoyRouteStats, stats_url

REPO = Path(__file__).resolve().parents[2]
ENVOY = str(Path(sys.executable).parent / "envoy")

PREFIX = "vhost.switchyard.route."


def snapshot(total: int, errors: int, buckets: list[tuple[float, float, int]]) -> dict:
    """The shape of GET /stats?format=json&histogram_buckets=detailed (Envoy 1.40)."""
    details = [
        {
            "name": PREFIX + "clinical.canary.upstream_rq_time",
            "totals": [{"lower_bound": lo, "width": w, "count": n} for lo, w, n in buckets],
            "intervals": [],
            "percentiles": [],
        }
    ]
    return {
        "stats": [
            {"name": PREFIX + "clinical.canary.upstream_rq_total", "value": total},
            {"name": PREFIX + "clinical.canary.upstream_rq_5xx", "value": errors},
            {"name": PREFIX + "unrouted.upstream_rq_total", "value": 999},
            {"histograms": {"supported_percentiles": [50], "details": details}},
        ]
    }


def test_each_read_gives_what_changed_since_the_last() -> None:
    reads = iter(
        [
            snapshot(10, 1, [(0, 0, 4), (100, 1, 5)]),
            snapshot(30, 3, [(0, 0, 4), (100, 1, 15), (200, 1, 8)]),
            snapshot(2, 0, [(100, 1, 2)]),  # Envoy restarted: counters went down
            snapshot(5, 0, [(100, 1, 5)]),
        ]
    )
    stats = EnvoyRouteStats(lambda: next(reads))
    assert stats.deltas() == {}  # the first read is the baseline
    summary = stats.deltas()[("clinical", "canary")]
    assert (summary.requests, summary.errors, summary.answered) == (20, 2, 18)
    expected = 10 * math.log(0.1005) + 8 * math.log(0.2005)
    assert math.isclose(summary.log_sum, expected)
    assert summary.median_latency() is not None and 0.095 < summary.median_latency() < 0.106
    assert stats.deltas() == {}  # a restart is a new baseline, not negative traffic
    assert stats.deltas()[("clinical", "canary")].requests == 3


def test_the_admin_is_asked_only_for_switchyards_route_statistics() -> None:
    query = urllib.parse.parse_qs(urllib.parse.urlparse(stats_url("127.0.0.1:9901")).query)
    assert query["format"] == ["json"] and query["histogram_buckets"] == ["detailed"]
    assert query["filter"][0].startswith(r"^vhost\.switchyard\.route\.")


def test_envoy_merges_histograms_every_analysis_interval(tmp_path: Path) -> None:
    config = load_config(REPO / "switchyard.yaml")
    assert "stats_flush_interval" not in render(config)
    analysis = config.analysis.model_copy(update={"source": "envoy", "interval_s": 0.5})
    bootstrap = render(config.model_copy(update={"analysis": analysis}))
    assert bootstrap["stats_flush_interval"] == "0.500s"
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    done = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
