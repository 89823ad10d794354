"""server.workers: the config's checks, Envoy's clusters over the workers, and worker 0's
hand-off of config versions to its children (real child processes that follow it with
extproc.workers.follower and write down what they were told)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.config import Config, config_warnings, load_config
from extproc.envoy_config import bootstrap, render
from extproc.errors import ConfigError
from extproc.workers.addresses import worker_address, worker_addresses
from extproc.workers.pool import WorkerMetrics, WorkerPool

REPO = Path(__file__).resolve().parents[2]
ENVOY = str(Path(sys.executable).parent / "envoy")
RECORDER = Path(__file__).parent / "data" / "recording_worker.py"


def _example(tmp_path: Path, server: dict[str, Any], **sections: Any) -> Path:
    config = yaml.safe_load((REPO / "switchyard.yaml").read_text())
    config["classifier"]["model"] = str(REPO / "build" / "model")
    config["server"] = {**config.get("server", {}), **server}
    config.update(sections)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(issue) for issue in caught.value.issues]


def test_one_worker_is_the_default() -> None:
    assert Config().server.workers == 1


def test_several_workers_need_the_shared_store(tmp_path: Path) -> None:
    path = _example(tmp_path, {"workers": 2})
    [problem] = _problems(path)
    assert "server.workers" in problem and "state.store: redis" in problem
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    line = path.read_text().splitlines().index("  workers: 2") + 1
    assert f"s.yaml:{line}: server.workers" in text
    ok = _example(tmp_path, {"workers": 2}, state={"store": "redis"})
    assert load_config(ok).server.workers == 2


def test_feedback_without_shared_ids_is_a_warning_with_workers(tmp_path: Path) -> None:
    path = _example(
        tmp_path, {"workers": 2}, state={"store": "redis"}, quality={"share_ids": False}
    )
    warnings = [str(issue) for issue in config_warnings(load_config(path))]
    assert any("quality.share_ids" in w and "worker 0" in w for w in warnings)


def test_the_workers_ports_must_exist_and_stay_apart(tmp_path: Path) -> None:
    redis = {"state": {"store": "redis"}}
    high = _example(tmp_path, {"workers": 3, "listen": "127.0.0.1:65534"}, **redis)
    [problem] = _problems(high)
    assert "server.workers" in problem and "65534-65536" in problem
    overlap = {"workers": 3, "listen": "127.0.0.1:9000", "metrics_listen": "127.0.0.1:9002"}
    [problem] = _problems(_example(tmp_path, overlap, **redis))
    assert "9000-9002" in problem and "9002-9004" in problem and "apart" in problem
    too_many = _example(tmp_path, {"workers": 65}, **redis)
    assert any("server.workers" in p for p in _problems(too_many))


def test_worker_i_serves_on_the_port_plus_i_or_the_socket_path_dot_i() -> None:
    assert worker_addresses("127.0.0.1:50051", 3) == [
        "127.0.0.1:50051",
        "127.0.0.1:50052",
        "127.0.0.1:50053",
    ]
    assert worker_address("[::1]:9464", 1) == "[::1]:9465"
    assert worker_addresses("unix:/run/sy.sock", 2) == ["unix:/run/sy.sock", "unix:/run/sy.sock.1"]


def _cluster(rendered: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in rendered["static_resources"]["clusters"] if c["name"] == name)


def _ports(cluster: dict[str, Any]) -> list[int]:
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    return [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints]


def test_envoy_spreads_streams_over_every_worker_and_ejects_a_dead_one(tmp_path: Path) -> None:
    path = _example(tmp_path, {"workers": 3}, state={"store": "redis"})
    rendered = bootstrap(load_config(path))
    for name in ("_switchyard_ext_proc", "_switchyard_observe"):
        cluster = _cluster(rendered, name)
        assert _ports(cluster) == [50051, 50052, 50053]
        assert cluster["lb_policy"] == "LEAST_REQUEST"
        outlier = cluster["outlier_detection"]
        assert outlier["consecutive_gateway_failure"] == 2
        assert outlier["max_ejection_percent"] == 100
    # Worker 0 alone serves xDS.
    assert _ports(_cluster(rendered, "_switchyard_xds")) == [50051]
    one = bootstrap(load_config(REPO / "switchyard.yaml"))
    single = _cluster(one, "_switchyard_ext_proc")
    assert _ports(single) == [50051]
    assert "lb_policy" not in single and "outlier_detection" not in single


def test_envoy_accepts_the_workers_clusters(tmp_path: Path) -> None:
    path = _example(tmp_path, {"workers": 2}, state={"store": "redis"})
    out = tmp_path / "envoy.yaml"
    out.write_text(yaml.safe_dump(render(load_config(path))))
    result = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(out)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _told(tmp_path: Path, worker: int) -> list[list[Any]]:
    path = tmp_path / f"worker-{worker}.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _until(check: Any, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_every_child_holds_a_version_before_the_offer_returns(tmp_path: Path) -> None:
    pool = WorkerPool([sys.executable, str(RECORDER), str(tmp_path)], 3, WorkerMetrics())
    config = Config()
    await pool.start("v1", config)
    try:
        assert pool.live == [1, 2]
        for worker in (1, 2):
            assert _told(tmp_path, worker) == [["start", "v1", ["v1"]]]
        assert await pool.offer("v2", config, timeout_s=10) is None
        # Acknowledged means built: both wrote it down before the offer returned.
        for worker in (1, 2):
            assert _told(tmp_path, worker)[-1] == ["offer", "v2", 1]
        await pool.switch("v2")
        await pool.retire_all_but("v2")
        await _until(lambda: all(_told(tmp_path, w)[-1] == ["retire", "v2"] for w in (1, 2)))
        assert _told(tmp_path, 1)[-2:] == [["switch", "v2"], ["retire", "v2"]]
    finally:
        await pool.stop(1.0)


async def test_a_version_one_child_cannot_build_is_refused_and_withdrawn(tmp_path: Path) -> None:
    pool = WorkerPool([sys.executable, str(RECORDER), str(tmp_path)], 2, WorkerMetrics())
    await pool.start("v1", Config())
    try:
        refused = await pool.offer("bad", Config(), timeout_s=10)
        assert refused is not None
        assert "worker 1" in refused and "cannot load it" in refused
        slow = await pool.offer("slow", Config(), timeout_s=0.5)
        assert slow is not None and slow == "worker 1: no answer within 0.5s"
        await pool.withdraw("bad")
        await _until(lambda: _told(tmp_path, 1)[-1] == ["withdraw", "bad"])
    finally:
        await pool.stop(1.0)


async def test_a_dead_child_is_started_again_with_what_worker_0_holds(tmp_path: Path) -> None:
    metrics = WorkerMetrics()
    pool = WorkerPool([sys.executable, str(RECORDER), str(tmp_path)], 2, metrics)
    await pool.start("v1", Config())
    try:
        assert await pool.offer("v2", Config(), timeout_s=10) is None
        await pool.switch("v2")
        first = pool.pids()[1]
        os.kill(first, signal.SIGKILL)
        await _until(lambda: pool.pids().get(1, first) != first)
        # The new child starts on v2 and still holds v1 (not retired yet).
        assert _told(tmp_path, 1)[-1] == ["start", "v2", ["v1", "v2"]]
        assert metrics.restarts.labels("1")._value.get() == 1
        assert await pool.offer("v3", Config(), timeout_s=10) is None
        assert _told(tmp_path, 1)[-1] == ["offer", "v3", 1]
        pids = pool.pids().values()
    finally:
        await pool.stop(1.0)
    # Stopped: gone, and not started again.
    await asyncio.sleep(0.5)
    assert pool.live == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


async def test_a_child_that_dies_during_an_offer_gets_the_version_when_restarted(
    tmp_path: Path,
) -> None:
    pool = WorkerPool([sys.executable, str(RECORDER), str(tmp_path)], 2, WorkerMetrics())
    await pool.start("v1", Config())
    try:
        first = pool.pids()[1]
        # Not a refusal: the restarted worker builds it from its start message.
        assert await pool.offer("die", Config(), timeout_s=10) is None
        await _until(lambda: pool.pids().get(1, first) != first)
        assert _told(tmp_path, 1)[-1] == ["start", "v1", ["die", "v1"]]
    finally:
        await pool.stop(1.0)
