"""bench/heavy_clients.py on the rules-only stack: one short round, well-formed results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.configs import HEAVY_BYTES, heavy_body

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_heavy_body_is_a_valid_chat_request_of_the_announced_size() -> None:
    body = json.loads(heavy_body())
    assert len(body["messages"][1]["content"]) == HEAVY_BYTES
    assert "[" in body["messages"][1]["content"] and "{" in body["messages"][1]["content"]


def test_one_round_measures_small_requests_alone_and_loaded() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "heavy_clients.py"), "--stacks", "rules",
         "--rounds", "1", "--seconds", "1", "--json"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    (round_,) = results["rules"]["rounds"]
    for mode in ("alone", "loaded"):
        small = round_[mode]["small"]
        assert small["requests"] > 0 and small["non_2xx"] == 0 and small["socket_errors"] == 0
    heavy = round_["loaded"]["heavy"]
    assert heavy["requests"] > 0 and heavy["non_2xx"] == 0 and heavy["socket_errors"] == 0
    assert results["rules"]["p50_ratio"] > 0
