"""`switchyard demo` on the example config, for real (on the config's own ports)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack import REPO, SWITCHYARD
from tests.helm.conftest import tool

pytestmark = pytest.mark.e2e


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    """`switchyard demo` on the example config, which must exit 0."""
    done = subprocess.run(
        [SWITCHYARD, "demo", *args, "-c", str(REPO / "switchyard.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_demo_writes_an_html_report_with_the_canary_charted() -> None:
    done = demo()
    found = re.search(r"^HTML report \(switchyard report --html\): (\S+)$", done.stdout, re.M)
    assert found, done.stdout[-3000:]
    # The support route's cache: the FAQ step's repeats are hits, with the cost they saved.
    cache = re.search(r"^support\s+\d+\s+(\d+)\s+.*\s([\d.]+)$", done.stdout, re.M)
    assert cache and int(cache.group(1)) > 0 and float(cache.group(2)) > 0, done.stdout[-3000:]
    page = Path(found.group(1))
    dom = subprocess.run(
        [
            tool("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    clinical = dom[dom.index('data-route="clinical"') : dom.index("</section>")]
    drawn = {
        series
        for d, series in re.findall(r'<path d="(M[^"]+)"[^>]*data-series="([\w.-]+)"', clinical)
        if d.count("L") >= 5
    }
    # Error rate and latency per cohort, the canary's percent per canary backend.
    assert {"canary", "stable", "clinical-v2"} <= drawn, clinical[:3000]
