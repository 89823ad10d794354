"""envoy.observe_sample: the per-request choice, the rendered route variants, the scaled totals."""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from extproc import headers as h
from extproc.config import load_config
from extproc.envoy_config import OBSERVE_FILTER, render
from extproc.response.sampling import in_sample, observe_response, sampling, weight
from extproc.rollout.metrics import RolloutMetrics
from extproc.rollout.report import requests_cell
from extproc.rollout.traffic import TrafficStats

REPO = Path(__file__).resolve().parents[2]
ENVOY = str(Path(sys.executable).parent / "envoy")


def _config(sample: float, observe: str = "all"):  # type: ignore[no-untyped-def]
    config = load_config(REPO / "switchyard.yaml")
    envoy = config.envoy.model_copy(update={"observe_sample": sample, "observe": observe})
    return config.model_copy(update={"envoy": envoy})


def _ids(count: int) -> list[str]:
    return [str(uuid.UUID(int=random.Random(7).getrandbits(128) + i)) for i in range(count)]


def test_every_canary_and_every_body_a_feature_needs_a_share_of_the_rest() -> None:
    envoy = _config(0.25).envoy
    assert sampling(envoy) and not sampling(_config(1.0).envoy)
    assert not sampling(_config(0.25, observe="off").envoy)
    ids = _ids(4000)
    outside = next(i for i in ids if not in_sample(i, 0.25))
    assert observe_response(envoy, h.CANARY, outside)
    assert observe_response(envoy, h.STABLE, outside, needs_body=True)
    assert not observe_response(envoy, h.STABLE, outside)
    share = sum(observe_response(envoy, h.STABLE, i) for i in ids) / len(ids)
    assert 0.22 < share < 0.28


def test_the_sample_is_decided_by_the_request_id_so_every_process_agrees() -> None:
    ids = _ids(2000)
    first = [in_sample(i, 0.1) for i in ids]
    assert first == [in_sample(i, 0.1) for i in ids]  # same id, same answer, any process
    assert 150 < sum(first) < 250
    # A larger share keeps every request a smaller one had: raising the share adds requests.
    assert all(in_sample(i, 0.5) for i, taken in zip(ids, first, strict=True) if taken)


def test_weight_scales_sampled_stable_responses_and_drops_body_only_ones() -> None:
    envoy = _config(0.25).envoy
    ids = _ids(200)
    inside = next(i for i in ids if in_sample(i, 0.25))
    outside = next(i for i in ids if not in_sample(i, 0.25))
    assert weight(envoy, h.STABLE, inside) == 4.0
    assert weight(envoy, h.STABLE, outside) == 0.0  # observed for a cache fill only
    assert weight(envoy, h.CANARY, outside) == 1.0
    assert weight(_config(1.0).envoy, h.STABLE, outside) == 1.0


def _routes(bootstrap: dict) -> dict[str, dict]:
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    return {route["name"]: route for route in routes}


def test_stable_routes_observe_only_marked_requests_and_envoy_accepts_it(tmp_path: Path) -> None:
    bootstrap = render(_config(0.1))
    routes = _routes(bootstrap)
    names = list(routes)
    observed = routes["clinical.stable.clinical-v1.observed"]
    stable = routes["clinical.stable.clinical-v1"]
    assert names.index(observed["name"]) < names.index(stable["name"])
    assert {"name": h.OBSERVE, "string_match": {"exact": "1"}} in observed["match"]["headers"]
    assert OBSERVE_FILTER not in observed.get("typed_per_filter_config", {})
    assert stable["typed_per_filter_config"][OBSERVE_FILTER]["disabled"] is True
    assert observed["route"] == stable["route"]
    assert OBSERVE_FILTER not in routes["clinical.canary.clinical-v2.clinical-v1"].get(
        "typed_per_filter_config", {}
    )
    assert not any(name.endswith(".observed") for name in _routes(render(_config(1.0))))
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    done = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_sampled_totals_are_scaled_and_labelled_estimates() -> None:
    metrics = RolloutMetrics()
    traffic = TrafficStats(metrics)
    for i in range(10):
        traffic.record("r", "stable", "b", 500 if i < 2 else 200, 0.01, None, (10, 5), 0.5, 4.0)
    traffic.record("r", "canary", "c", 200, 0.01, None, (10, 5), 0.5)
    rows = {r["cohort"]: r for r in traffic.snapshot()}
    stable, canary = rows["stable"], rows["canary"]
    assert (stable["observed"], stable["requests"], stable["errors"]) == (10, 40, 8)
    assert stable["prompt_tokens"] == 400 and stable["cost"] == 20.0
    assert requests_cell(stable) == "~40 (est.)" and requests_cell(canary) == "1"
    labels = {"route": "r", "cohort": "stable", "backend": "b", "status": "2xx"}
    assert metrics.registry.get_sample_value("switchyard_upstream_requests_total", labels) == 32
