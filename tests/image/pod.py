"""A kubelet stand-in: runs the Deployment `helm template` rendered, container by container.

Everything comes from the rendered manifest: images, commands, args, env, ports,
probes, volumes and mounts, users and security contexts, the order of init and
sidecar containers, preStop hooks and the termination grace period. Nothing of the
chart is copied here, so a chart change that breaks the pod breaks this run.

What a laptop has no cluster for is stood in for, and said so: the pod shares the
host's network (its ports are picked free by the test, the probes go to 127.0.0.1),
a ConfigMap volume is a directory laid out as the kubelet's atomic writer lays it
(`..data` switched by a rename), an emptyDir is a world-writable directory group-owned
by fsGroup, and an image other than switchyard's runs from a stand-in (`STAND_INS`).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from proto import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


def engine() -> list[str]:
    """docker where its engine answers, else podman with the project's settings (make image)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return [docker]
    return [str(REPO / "scripts" / "podman")]


@dataclass(frozen=True)
class StandIn:
    """Runs a container whose image is not built here: `image`, with host files bound in."""

    image: str
    binds: dict[str, str]
    """Container path -> host file."""


class PodFailed(AssertionError):
    pass


@dataclass
class Pod:
    name: str
    spec: dict[str, Any]
    """The rendered Deployment's spec.template.spec."""
    config_maps: dict[str, dict[str, str]]
    """Rendered ConfigMaps by name: their data."""
    images: dict[str, str | StandIn]
    """The manifest's image -> the local image that runs it, or a stand-in."""
    workdir: Path
    cmd: list[str] = field(default_factory=engine)
    started: list[str] = field(default_factory=list)
    """Container names, in start order."""
    volumes: dict[str, Path] = field(default_factory=dict)

    # -- volumes ------------------------------------------------------------------

    def _prepare_volumes(self) -> None:
        fs_group = self.spec.get("securityContext", {}).get("fsGroup")
        for volume in self.spec.get("volumes", []):
            path = self.workdir / "volumes" / volume["name"]
            path.mkdir(parents=True)
            if "configMap" in volume:
                data = self.config_maps[volume["configMap"]["name"]]
                write_config_map(path, data)
            elif "emptyDir" in volume:
                path.chmod(0o777)  # the kubelet's emptyDir mode
                if fs_group is not None:
                    os.chown(path, -1, fs_group)
            else:
                kind = next(k for k in volume if k != "name")
                raise PodFailed(f"volume {volume['name']}: no stand-in for a {kind} volume")
            self.volumes[volume["name"]] = path

    def update_config_map(self, name: str, data: dict[str, str]) -> None:
        """What the kubelet does when a ConfigMap changes: a new `..data`, switched atomically."""
        for volume in self.spec.get("volumes", []):
            if volume.get("configMap", {}).get("name") == name:
                write_config_map(self.volumes[volume["name"]], data)

    def host_path(self, container: str, path: str) -> Path:
        """Where a path inside a container's volume mount lies on this machine."""
        for mount in self.container(container).get("volumeMounts", []):
            prefix = mount["mountPath"].rstrip("/") + "/"
            if path.startswith(prefix):
                return self.volumes[mount["name"]] / path[len(prefix) :]
        raise PodFailed(f"{container}: {path} is on no volume")

    # -- containers ---------------------------------------------------------------

    def container(self, name: str) -> dict[str, Any]:
        for item in self.spec.get("initContainers", []) + self.spec["containers"]:
            if item["name"] == name:
                return dict(item)
        raise PodFailed(f"no container {name!r} in the pod")

    def engine_name(self, container: str) -> str:
        return f"{self.name}-{container}"

    def _run_args(self, c: dict[str, Any]) -> list[str]:
        pod_sc = self.spec.get("securityContext", {})
        sc = {**pod_sc, **c.get("securityContext", {})}
        image = self.images.get(c["image"])
        if image is None:
            raise PodFailed(f"{c['name']}: no local image or stand-in for {c['image']}")
        args = ["--name", self.engine_name(c["name"]), "--network", "host", "--pull", "never"]
        if "runAsUser" in sc:
            args += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
        if sc.get("runAsNonRoot"):
            uid = sc["runAsUser"] if "runAsUser" in sc else self._image_uid(image)
            if uid in (None, 0):
                raise PodFailed(f"{c['name']}: runAsNonRoot, but the container would run as root")
        if "fsGroup" in pod_sc:
            args += ["--group-add", str(pod_sc["fsGroup"])]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
            if Path(self.cmd[0]).name == "podman":
                # podman adds writable tmpfs on /tmp, /run, /var/tmp to a read-only
                # container; the kubelet does not, so neither does this pod.
                args.append("--read-only-tmpfs=false")
        if sc.get("privileged"):
            args.append("--privileged")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for cap in sc.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", cap]
        for cap in sc.get("capabilities", {}).get("add", []):
            args += ["--cap-add", cap]
        for var in c.get("env", []):
            args += ["--env", f"{var['name']}={self._env_value(c['name'], var)}"]
        for mount in c.get("volumeMounts", []):
            if mount.get("subPath"):
                raise PodFailed(f"{c['name']}: subPath mounts have no stand-in here")
            host = self.volumes[mount["name"]]
            ro = ":ro" if mount.get("readOnly") else ""
            args += ["--volume", f"{host}:{mount['mountPath']}{ro}"]
        if isinstance(image, StandIn):
            for inside, host_file in image.binds.items():
                args += ["--volume", f"{host_file}:{inside}:ro"]
            image = image.image
        if "command" in c:
            args += ["--entrypoint", json.dumps(c["command"])]
        return [*args, image, *c.get("args", [])]

    def _image_uid(self, image: str | StandIn) -> int | None:
        ref = image.image if isinstance(image, StandIn) else image
        user = self._engine("image", "inspect", "--format", "{{.Config.User}}", ref).strip()
        head = user.split(":", 1)[0]
        return int(head) if head.isdigit() else (0 if head in ("", "root") else None)

    def _env_value(self, container: str, var: dict[str, Any]) -> str:
        if "value" in var:
            return str(var["value"])
        field_path = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field_path == "metadata.name":
            return self.name
        raise PodFailed(f"{container}: env {var['name']} has no stand-in: {var}")

    def _engine(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run([*self.cmd, *args], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise PodFailed(f"{' '.join(args[:2])}: {result.stderr.strip()}")
        return result.stdout

    def logs(self, container: str) -> str:
        result = subprocess.run(
            [*self.cmd, "logs", self.engine_name(container)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout + result.stderr

    def exit_code(self, container: str) -> int | None:
        state = json.loads(
            self._engine("inspect", "--format", "{{json .State}}", self.engine_name(container))
        )
        return None if state.get("Running") else int(state["ExitCode"])

    def _start(self, c: dict[str, Any]) -> None:
        self._engine("run", "--detach", *self._run_args(c))
        self.started.append(c["name"])

    def _run_to_completion(self, c: dict[str, Any], timeout: float) -> None:
        self._start(c)
        code = self._engine("wait", self.engine_name(c["name"]), timeout=timeout).strip()
        if code != "0":
            raise PodFailed(f"init container {c['name']} exited {code}: {self.logs(c['name'])}")

    # -- probes -------------------------------------------------------------------

    def _port(self, c: dict[str, Any], port: int | str) -> int:
        if isinstance(port, int):
            return port
        for item in c.get("ports", []):
            if item.get("name") == port:
                return int(item["containerPort"])
        raise PodFailed(f"{c['name']}: probe port {port!r} is not among its ports")

    def probe(self, container: str, kind: str) -> bool:
        """One try of a container's startupProbe / readinessProbe / livenessProbe."""
        c = self.container(container)
        spec = c[kind]
        try:
            if "httpGet" in spec:
                port = self._port(c, spec["httpGet"]["port"])
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                try:
                    conn.request("GET", spec["httpGet"]["path"])
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if "grpc" in spec:
                target = f"127.0.0.1:{self._port(c, spec['grpc']['port'])}"
                return grpc_health(target, spec["grpc"].get("service", "")) == SERVING
            if "tcpSocket" in spec:
                port = self._port(c, spec["tcpSocket"]["port"])
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    return True
        except (OSError, http.client.HTTPException, grpc.RpcError):
            return False
        raise PodFailed(f"{container}: {kind} has no stand-in: {spec}")

    def _wait_probe(self, container: str, kind: str, budget: float | None = None) -> None:
        spec = self.container(container)[kind]
        if budget is None:
            budget = spec.get("periodSeconds", 10) * spec.get("failureThreshold", 3)
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            code = self.exit_code(container)
            if code is not None:
                raise PodFailed(f"{container} exited {code}: {self.logs(container)}")
            if self.probe(container, kind):
                return
            time.sleep(0.25)
        raise PodFailed(
            f"{container}: {kind} still failing after {budget:.0f}s: {self.logs(container)}"
        )

    # -- the pod's life -----------------------------------------------------------

    def start(self, ready_budget: float = 60) -> None:
        """Init containers in order (a sidecar's startupProbe passes before the next one),
        then the main containers, then waits until every container with a readinessProbe
        is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._prepare_volumes()
        grace = float(self.spec.get("terminationGracePeriodSeconds", 30))
        for c in self.spec.get("initContainers", []):
            if c.get("restartPolicy") == "Always":
                self._start(c)
                if "startupProbe" in c:
                    self._wait_probe(c["name"], "startupProbe")
            else:
                self._run_to_completion(c, timeout=max(grace, 60))
        for c in self.spec["containers"]:
            self._start(c)
        sidecars = [c for c in self.spec.get("initContainers", []) if c.get("restartPolicy")]
        for c in sidecars + self.spec["containers"]:
            if "readinessProbe" in c:
                self._wait_probe(c["name"], "readinessProbe", ready_budget)

    def stop_container(self, container: str) -> float:
        """SIGTERM, SIGKILL after the pod's terminationGracePeriodSeconds (as `kubectl delete`
        does); returns the seconds it took."""
        grace = int(self.spec.get("terminationGracePeriodSeconds", 30))
        start = time.monotonic()
        self._engine("stop", "--time", str(grace), self.engine_name(container), timeout=grace + 30)
        return time.monotonic() - start

    def terminate(self) -> dict[str, int | None]:
        """Pod deletion: each main container's preStop, then SIGTERM; then the sidecars,
        last started first. Returns the exit codes."""
        codes: dict[str, int | None] = {}
        for c in self.spec["containers"]:
            if c["name"] not in self.started:
                continue
            sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
            if sleep:
                time.sleep(float(sleep))
            self.stop_container(c["name"])
            codes[c["name"]] = self.exit_code(c["name"])
        for name in reversed(self.started):
            if name not in codes:
                if self.exit_code(name) is None:
                    self.stop_container(name)
                codes[name] = self.exit_code(name)
        return codes

    def remove(self) -> None:
        for name in self.started:
            subprocess.run(
                [*self.cmd, "rm", "--force", self.engine_name(name)],
                capture_output=True,
                timeout=120,
            )
        self.started.clear()


def write_config_map(path: Path, data: dict[str, str]) -> None:
    """The kubelet's atomic writer: files in a fresh `..<stamp>` dir, `..data` pointing at
    it (switched with a rename), and each key a symlink through `..data`."""
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    (path / stamp).mkdir()
    for key, text in data.items():
        (path / stamp / key).write_text(text)
        (path / stamp / key).chmod(0o644)
    old = os.readlink(path / "..data") if (path / "..data").is_symlink() else None
    os.symlink(stamp, path / "..data_tmp")
    os.replace(path / "..data_tmp", path / "..data")
    for key in data:
        if not (path / key).is_symlink():
            os.symlink(f"..data/{key}", path / key)
    if old is not None:
        shutil.rmtree(path / old)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def grpc_health(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        return status
