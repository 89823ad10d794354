"""One launcher per kind of process a local stack runs: a fake model backend, switchyard,
Envoy, Prometheus and redis-server. Each starts its process on 127.0.0.1 and returns a
`Proc` that is not waited for yet: `launcher(...).wait_ready(seconds)` waits until it
serves, so that several can start side by side first."""

from __future__ import annotations

import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from extproc.tools.devstack.core import Proc, free_port, http_get

if TYPE_CHECKING:
    from extproc.config import Config

BIN = Path(sys.executable).parent


def _venv_or_path(name: str) -> str:
    candidate = BIN / name
    found = str(candidate) if candidate.is_file() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is neither in {BIN} nor on PATH (make install)")
    return found


SWITCHYARD: list[str] = (
    [str(BIN / "switchyard")]
    if (BIN / "switchyard").is_file()
    else [sys.executable, "-m", "extproc.cli"]
)
"""The installed `switchyard` command (this interpreter's)."""


def envoy_binary() -> str:
    """The virtualenv's `envoy` (it execs the real binary: the PID is Envoy's own), else PATH's."""
    return _venv_or_path("envoy")


def taskset(cpus: str | None) -> list[str]:
    """The command prefix that pins a process to `cpus` ("0", "1", "0-1"), or nothing."""
    return ["taskset", "-c", cpus] if cpus else []


def _serving(
    name: str,
    command: list[str],
    workdir: Path,
    port: tuple[str, int],
    path: str,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    tls: bool = False,
) -> Proc:
    """`command` started as `name`, ready when GET `path` on its port (named) says 200."""
    label, number = port
    return Proc.start(
        name,
        command,
        workdir,
        env=env,
        cwd=cwd,
        ports={label: number},
        probe=lambda: http_get(number, path, tls=tls)[0] == 200,
        what=f"{path} to answer",
    )


def fake_backend(
    workdir: Path,
    name: str,
    port: int,
    *args: str,
    switchyard: Sequence[str] = SWITCHYARD,
) -> Proc:
    """`switchyard fake-backend` for backend `name` (log `backend-<name>.log`); ready when
    its /stats answers (over TLS when `args` give it a certificate)."""
    tls = "--tls-cert" in args
    command = [*switchyard, "fake-backend", "--name", name, "--port", str(port), *args]
    return _serving(f"backend-{name}", command, workdir, ("http", port), "/stats", tls=tls)


def switchyard(
    workdir: Path,
    config: Path,
    metrics_port: int,
    *,
    name: str = "switchyard",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    cpus: str | None = None,
    switchyard: Sequence[str] = SWITCHYARD,
) -> Proc:
    """`switchyard [args] serve -c config`; ready when /healthz on `metrics_port` says 200."""
    command = [*taskset(cpus), *switchyard, *args, "serve", "-c", str(config)]
    return _serving(name, command, workdir, ("metrics", metrics_port), "/healthz", env=env, cwd=cwd)


def write_bootstrap(
    path: Path,
    config: Config,
    *,
    static: bool = False,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Envoy's bootstrap for `config`, as `switchyard envoy [--static]` writes it: with
    `static` every resource inline, else the routes and clusters from switchyard's xDS.
    `edit` may change it first."""
    from extproc.envoy_config import bootstrap, render  # only the stacks that run Envoy

    rendered = render(config) if static else bootstrap(config)
    if edit is not None:
        edit(rendered)
    path.write_text(yaml.safe_dump(rendered, sort_keys=False))
    return path


def envoy(
    workdir: Path,
    bootstrap: Path,
    admin_port: int,
    *,
    name: str = "envoy",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    cpus: str | None = None,
    log_level: str = "warn",
) -> Proc:
    """Envoy on one worker thread; ready when its admin's /ready says 200."""
    command = [
        *taskset(cpus),
        envoy_binary(),
        "-c",
        str(bootstrap),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "--log-level",
        log_level,
    ]
    return _serving(name, command, workdir, ("admin", admin_port), "/ready", env=env, cwd=cwd)


def scrape(
    job: str, address: str, path: str = "/metrics", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """One of Prometheus' scrape_configs: `address` (host:port) at `path`."""
    target: dict[str, Any] = {"targets": [address], **({"labels": labels} if labels else {})}
    return {"job_name": job, "metrics_path": path, "static_configs": [target]}


def prometheus(
    workdir: Path, scrape_configs: list[dict[str, Any]], name: str = "prometheus"
) -> Proc:
    """Prometheus scraping every second (`scrape(...)` makes each entry), its data in
    `workdir/<name>-data`; ready when /-/ready says 200. Its port is `ports["http"]`."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus is not installed (make system-deps installs it)")
    config = workdir / f"{name}.yml"
    settings = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}
    config.write_text(yaml.safe_dump({**settings, "scrape_configs": scrape_configs}))
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / f'{name}-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return _serving(name, command, workdir, ("http", port), "/-/ready")


def redis(
    workdir: Path,
    port: int,
    *,
    name: str | None = None,
    password: str | None = None,
    tls: tuple[Path, Path] | None = None,
    cpus: str | None = None,
) -> Proc:
    """redis-server without persistence; ready when it answers PING.
    tls: (certificate, key) to serve TLS only (rediss://)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (make system-deps installs it)")
    ports = ["--port", str(port)]
    if tls:
        ports = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls[0]),
                 "--tls-key-file", str(tls[1]), "--tls-auth-clients", "no"]  # fmt: skip
    args = [binary, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir)]
    if password:
        args += ["--requirepass", password]

    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            if tls:
                return True  # listening; the TLS handshake is the client's business
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))

    command = [*taskset(cpus), *args]
    return Proc.start(
        name or f"redis-{port}", command, workdir, ports={"redis": port}, probe=answers,
        what="to answer PING",
    )  # fmt: skip


class RedisServer:
    """A redis-server on a free port of 127.0.0.1 that can be stopped and started again on
    the same port (the fleet's state store for the fleet demo and the tests)."""

    def __init__(
        self, workdir: Path, password: str | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        """tls: (certificate, key) to serve TLS only (rediss://)."""
        self.workdir = workdir
        self.port = free_port()
        self.password = password
        self.tls = tls
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        proc = redis(self.workdir, self.port, password=self.password, tls=self.tls)
        self.proc = proc.wait_ready(10)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stops it (by default as a crash would: SIGKILL, nothing saved)."""
        if self.proc is not None:
            self.proc.stop(sig)
        self.proc = None
