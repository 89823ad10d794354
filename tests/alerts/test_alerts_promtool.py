"""The alert rules, evaluated by Prometheus' own promtool on synthetic series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent


def test_alert_rules_fire_when_they_should_and_only_then() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: make test installs the Debian prometheus package"
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yaml"], cwd=HERE, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
