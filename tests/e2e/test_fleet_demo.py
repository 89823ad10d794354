"""`switchyard demo --fleet` on the example config: what `make demo-fleet` shows, for real."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.e2e.stack import REPO, SWITCHYARD

pytestmark = pytest.mark.e2e


def test_fleet_demo_shows_a_rollback_reaching_both_replicas_and_surviving_a_restart() -> None:
    done = subprocess.run(
        [SWITCHYARD, "demo", "--fleet", "-c", str(REPO / "switchyard.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    took = re.search(r"rolled back on both replicas ([\d.]+)s after the failure", out)
    assert took and float(took.group(1)) < 15, out
    after_restart = out.split("== 4.")[1]
    assert after_restart.count("rolled_back 0%") == 2, out
    replicas = re.findall(r"replica (\d) \(([^)]+)\)", out.split("== 4.")[0])
    restarted = re.findall(r"replica 1 \(([^)]+)\)", after_restart)
    assert restarted and restarted[0] not in {name for i, name in replicas if i == "1"}
