"""`switchyard demo --fleet` on the example config, for real. Its own file, so that the
suite's workers run it beside the plain demo: it moves every port of the config to a
free one, so the two never meet."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_demo import demo

pytestmark = pytest.mark.e2e


def test_fleet_demo_shows_a_rollback_reaching_both_replicas_and_surviving_a_restart() -> None:
    out = demo("--fleet").stdout
    took = re.search(r"rolled back on both replicas ([\d.]+)s after the failure", out)
    assert took and float(took.group(1)) < 15, out
    after_restart = out.split("== 4.")[1]
    assert after_restart.count("rolled_back 0%") == 2, out
    replicas = re.findall(r"replica (\d) \(([^)]+)\)", out.split("== 4.")[0])
    restarted = re.findall(r"replica 1 \(([^)]+)\)", after_restart)
    assert restarted and restarted[0] not in {name for i, name in replicas if i == "1"}
