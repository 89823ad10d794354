"""What an operator sees through a real stack: a starved canary's status says what it
waits for, actions print status's table, a rollback reads the same in the log and the
status, and `cache purge` refuses names the config does not have."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import SWITCHYARD, Stack, canary_config, running_stack, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A 1 % canary: a few canary requests per window, far from analysis.min_requests (20).
    config = canary_config(percent=1, steps=[1, 5, 100], hold={"seconds": 0, "requests": 0})
    with running_stack(tmp_path_factory.mktemp("operator"), config) as running:
        yield running


def switchyard(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWITCHYARD, *args, "-c", str(stack.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_starved_canarys_status_says_what_it_waits_for(stack: Stack) -> None:
    client = stack.client
    for n in range(150):
        assert client.chat("symptom: cough", headers={"x-session-id": f"s-{n}"}).status == 200
    client.close()

    def judged() -> dict[str, object] | None:
        state = stack.switchyard_stats()["rollouts"]["clinical"]
        return state if "not enough data" in str(state["verdict"]) else None

    state = wait_until(judged, 10, "a verdict on the canary")
    assert state["percent"] == 1 and state["steps"] == [1, 5, 100]
    shown = switchyard(stack, "rollout", "status")  # the address comes from -c
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.startswith("clinical "))
    assert row.split()[1:5] == ["progressing", "1%", "med-v2", "1"], shown.stdout
    assert "verdict: not enough data (n=" in shown.stdout
    waiting = next(line for line in shown.stdout.splitlines() if "waiting for:" in line)
    assert "more canary requests in the window" in waiting, shown.stdout
    assert "/min" in waiting or "no canary request" in waiting
    as_json = json.loads(switchyard(stack, "rollout", "status", "--json").stdout)
    assert "more canary requests" in as_json["rollouts"]["clinical"]["waiting_for"]


def test_a_rollback_reads_the_same_in_the_log_and_the_status(stack: Stack) -> None:
    done = switchyard(stack, "rollout", "rollback", "clinical")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("clinical "))
    assert row.split()[1:3] == ["rolled_back", "0%"], done.stdout  # status's table shape
    assert "verdict: rolled back: " in done.stdout
    assert "rollout reset clinical" in done.stdout
    log = stack.log("switchyard")
    assert "progressing 1% -> rolled_back 0%" in log, log[-2000:]
    assert switchyard(stack, "rollout", "reset", "clinical").returncode == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--route", "nosuch"], "unknown route 'nosuch'; expected one of clinical, general"),
        (["--route", "clinicl"], "unknown route 'clinicl'; did you mean 'clinical'?"),
        (["--partition", "tenant=acme"], "'tenant' is not a partition source"),
    ],
)
def test_cache_purge_refuses_what_the_config_does_not_have(
    stack: Stack, args: list[str], said: str
) -> None:
    refused = switchyard(stack, "cache", "purge", *args)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert said in refused.stderr and "purged" not in refused.stdout
    assert switchyard(stack, "cache", "purge", "--route", "clinical").returncode == 0


def test_report_reads_both_addresses_from_the_config(stack: Stack, tmp_path: Path) -> None:
    done = switchyard(stack, "report", "--json")
    assert done.returncode == 0, done.stderr
    assert "clinical" in done.stdout
