"""server.workers: one pod's switchyard in several processes behind one real Envoy, with the
fleet's state in a real redis-server.

Every backend is strict (`--served-model`, as vLLM): a body rewritten for one backend and
sent to another answers 404, so "every reply 200" means Envoy and the worker that decided
each request agreed on the config version, through reloads and a worker's restart.
"""

from __future__ import annotations

import json
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.classifier.test_label_thresholds import catalogue
from tests.e2e.stack import (
    MODEL_DIR,
    REPO,
    Load,
    Stack,
    backend_shares,
    http_get,
    wait_until,
)
from tests.e2e.workers_stack import (
    WORKERS,
    fail_opens,
    worker_children,
    worker_decisions,
    worker_metric,
    workers_stack,
)

pytestmark = pytest.mark.e2e

EXAMPLE = yaml.safe_load((REPO / "switchyard.yaml").read_text())
EXAMPLE_LABELS = {label["name"]: label for label in EXAMPLE["labels"]}


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _status(stack: Stack) -> dict[str, Any]:
    return dict(json.loads(http_get(stack.metrics_port, "/rollout")[1]))


def _reloaded(stack: Stack, old: str) -> str | None:
    version = str(_status(stack)["config"]["version"])
    return version if version != old else None


def test_both_workers_decide_and_a_reload_reaches_both_before_envoy_switches(
    tmp_path: Path,
) -> None:
    with workers_stack(tmp_path) as stack:
        # A child worker serves metrics, not the admin API.
        assert http_get(stack.metrics_port + 1, "/healthz")[0] == 200
        with Load(stack, "hello there", threads=6) as load:
            wait_until(lambda: len(load.sent) > 300, 30, "traffic")
            assert all(count > 30 for count in worker_decisions(stack)), worker_decisions(stack)
            old = _status(stack)["config"]["version"]

            # Weights 70/30 -> 30/70, twice over: every worker decides with the version
            # Envoy matched each request with.
            for weights in ((30, 70), (70, 30), (30, 70)):
                stack.config["routes"][0]["backends"] = [
                    {"backend": "a", "weight": weights[0]},
                    {"backend": "b", "weight": weights[1]},
                ]
                stack.write_config()
                old = wait_until(partial(_reloaded, stack, old), 15, "the reload")
                time.sleep(1.0)
            since = time.monotonic()
            wait_until(lambda: len(load.since(since)) > 400, 30, "traffic on the last weights")
            before = worker_decisions(stack)
            time.sleep(1.0)
            after = worker_decisions(stack)
        stable = [s for s in load.since(since) if s.cohort == "stable"]
        assert 0.6 < backend_shares(stable).get("b", 0) < 0.8, backend_shares(stable)
        # Both workers still decide on the new version.
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
        failed = [s for s in load.sent if s.status != 200]
        assert not failed, f"{len(failed)} of {len(load.sent)} failed, first: {failed[:3]}"
        assert fail_opens(stack) == 0
        reloads = worker_metric(stack, 0, 'switchyard_config_reloads_total{result="success"}')
        assert reloads == 3
        log = stack.log("switchyard")
        assert "worker_refused" not in log and "cannot build it" not in log


def test_a_killed_worker_costs_only_fail_opens_and_is_started_again(tmp_path: Path) -> None:
    with workers_stack(tmp_path) as stack:
        [child] = worker_children(stack)
        with Load(stack, "hello there", threads=6) as load:
            wait_until(lambda: len(load.sent) > 300, 30, "traffic")
            opened_before = fail_opens(stack)
            os.kill(child, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(
                lambda: worker_children(stack) and worker_children(stack) != [child],
                30,
                "worker 1 again",
            )
            wait_until(
                lambda: http_get(stack.metrics_port + 1, "/healthz")[0] == 200, 60, "worker 1"
            )
            restarted_after = time.monotonic() - killed_at
            serving = worker_decisions(stack)[1]
            wait_until(lambda: worker_decisions(stack)[1] > serving + 30, 30, "worker 1's streams")
        failed = [s for s in load.sent if s.status != 200]
        opened = fail_opens(stack) - opened_before
        print(
            f"worker 1 restarted after {restarted_after:.2f}s; {opened} of "
            f"{len(load.sent)} requests failed open meanwhile"
        )
        # Every request was answered: the ones worker 1 held failed open (to the default
        # route's split, rewritten for its backend), none failed.
        assert not failed, f"{len(failed)} of {len(load.sent)} failed, first: {failed[:3]}"
        assert opened < 50
        assert worker_metric(stack, 0, "switchyard_worker_restarts_total") == 1
        assert worker_metric(stack, 0, "switchyard_workers_running") == WORKERS - 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopping_worker_0_leaves_no_child_behind(tmp_path: Path, sig: int) -> None:
    with workers_stack(tmp_path) as stack:
        children = worker_children(stack)
        assert len(children) == WORKERS - 1
        stack.stop_switchyard(sig)
        wait_until(lambda: not any(_alive(pid) for pid in children), 15, "no child left")


def test_a_reload_that_takes_every_worker_long_to_build_is_waited_for(tmp_path: Path) -> None:
    """A 1,000-example catalogue takes each worker seconds to embed, longer than Envoy's
    ack timeout (2 s here): worker 0 waits for its children as long as its own build took
    (and more), rather than refusing a config every worker can build."""
    with workers_stack(tmp_path, adjust=_semantic) as stack:
        medical = "What dose of ibuprofen is safe for a child with a fever of 39 degrees?"
        with Load(stack, medical, threads=4) as load:
            wait_until(partial(_decided_by_every_worker, stack, "clinical"), 60, "both workers")
            old = _status(stack)["config"]["version"]
            big = catalogue()
            examples = list(big.examples[:1000])
            stack.config["labels"].append({"name": big.name, "examples": examples})
            stack.config["envoy"]["xds_ack_timeout_s"] = 2.0
            stack.write_config()
            wait_until(
                lambda: _reloaded(stack, old) or "refused" in stack.log("switchyard"),
                240,
                "the reload, or its refusal",
            )
        log = stack.log("switchyard")
        refusals = [line for line in log.splitlines() if "refused" in line]
        assert not refusals, refusals
        # No route names the new label: the reload says so, as `switchyard check` would.
        assert 'labels "catalogue": no route\'s match names this label' in log
        assert _reloaded(stack, old)
        assert {s.status for s in load.sent} == {200}
        assert {s.backend for s in load.sent} == {"v2"}
        assert worker_metric(stack, 0, 'switchyard_config_reloads_total{result="success"}') == 1


def _semantic(config: dict[str, Any]) -> None:
    """Medical questions to v2 by meaning; the rest to the 70/30 split (no canary)."""
    config["labels"] = [EXAMPLE_LABELS["medical"], EXAMPLE_LABELS["finance"]]
    config["classifier"] = {**EXAMPLE["classifier"], "model": str(MODEL_DIR)}
    del config["routes"][0]["canary"]
    clinical = {"name": "clinical", "match": {"label": "medical"}, "backends": [{"backend": "v2"}]}
    config["routes"].insert(0, clinical)


def _route_decisions(stack: Stack, worker: int, route: str) -> float:
    text = http_get(stack.metrics_port + worker, "/metrics")[1].decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("switchyard_decisions_total{") and f'route="{route}"' in line
    )


def _decided_by_every_worker(stack: Stack, route: str) -> bool:
    return all(_route_decisions(stack, w, route) >= 10 for w in range(WORKERS))


def test_every_worker_routes_by_meaning_and_a_label_added_live_reaches_each(
    tmp_path: Path,
) -> None:
    with workers_stack(tmp_path, adjust=_semantic) as stack:
        medical = "What dose of ibuprofen is safe for a child with a fever of 39 degrees?"
        with Load(stack, medical, threads=6) as load:
            wait_until(partial(_decided_by_every_worker, stack, "clinical"), 60, "both workers")
        assert {s.status for s in load.sent} == {200}
        assert {s.backend for s in load.sent} == {"v2"}

        old = _status(stack)["config"]["version"]
        stack.config["labels"].append(EXAMPLE_LABELS["cooking"])
        kitchen = {"name": "kitchen", "match": {"label": "cooking"}, "backends": [{"backend": "a"}]}
        stack.config["routes"].insert(0, kitchen)
        stack.write_config()
        wait_until(partial(_reloaded, stack, old), 60, "the reload")
        time.sleep(1.0)  # requests Envoy matched with the old version have finished
        with Load(stack, "How long should I knead bread dough before it rises?", threads=6) as load:
            wait_until(partial(_decided_by_every_worker, stack, "kitchen"), 60, "both workers")
        assert {s.status for s in load.sent} == {200}
        assert {s.backend for s in load.sent} == {"a"}
        assert fail_opens(stack) == 0
