"""The dev-stack helpers every local stack uses: ports, condition-bound waits, and the
launchers' processes (ready when they serve, a clear error when they exit first)."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from extproc.tools.devstack import (
    Proc,
    ProcessExited,
    envoy,
    fake_backend,
    free_port,
    http_get,
    redis,
    stop_all,
    switchyard,
    wait_until,
)


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(20_000 <= port < 32_000 for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_wait_until_returns_the_first_truthy_result_and_treats_errors_as_not_yet() -> None:
    calls = []

    def check() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not listening yet")
        return len(calls)

    assert wait_until(check, 5, "the third call", interval=0.01) == 3


def test_wait_until_names_what_it_waited_for_and_the_last_error() -> None:
    def never() -> bool:
        raise KeyError("phase")

    with pytest.raises(TimeoutError, match=r"waiting for the rollback \(last error: 'phase'\)"):
        wait_until(never, 0.1, "the rollback", interval=0.01)


def test_a_process_gone_ends_the_wait_at_once() -> None:
    def gone() -> bool:
        raise ProcessExited("switchyard exited")

    started = time.monotonic()
    with pytest.raises(ProcessExited):
        wait_until(gone, 30, "switchyard")
    assert time.monotonic() - started < 1


def _python(workdir: Path, name: str, code: str, port: int | None = None) -> Proc:
    """A Proc running `code`, ready once `port` answers HTTP (if given)."""
    return Proc.start(
        name,
        [sys.executable, "-c", code],
        workdir,
        ports={"http": port} if port else None,
        probe=(lambda: http_get(port, "/")[0] == 200) if port else None,
        what="/ to answer",
    )


def test_a_process_that_exits_before_it_serves_raises_process_exited_naming_its_log(
    tmp_path: Path,
) -> None:
    proc = _python(tmp_path, "early", "print('bad config'); raise SystemExit(3)", free_port())
    started = time.monotonic()
    with pytest.raises(ProcessExited, match=r"early exited with 3 \(log .*early\.log\)") as exc:
        proc.wait_ready(30)
    assert "bad config" in str(exc.value)
    assert time.monotonic() - started < 10
    assert proc.log == tmp_path / "early.log"


def test_a_launcher_waits_until_its_process_serves_then_stops_it(tmp_path: Path) -> None:
    port = free_port()
    server = f"import http.server as h; h.HTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler).serve_forever()"
    proc = _python(tmp_path, "server", server, port).wait_ready(30)
    assert proc.ports == {"http": port}
    assert http_get(port, "/")[0] == 200
    assert proc.stop(timeout=10) == -signal.SIGTERM
    assert proc.poll() is not None
    proc.stop()  # stopping a stopped process is a no-op


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    proc = _python(tmp_path, "stubborn", code)
    wait_until(lambda: "up" in proc.tail(), 10, "the handler installed")
    assert proc.stop(timeout=0.5) == -signal.SIGKILL


def test_the_fake_backend_launcher_serves_on_its_port_and_logs_to_its_file(tmp_path: Path) -> None:
    port = free_port()
    backend = fake_backend(tmp_path, "b1", port, "--seed", "1").wait_ready(60)
    try:
        assert backend.name == "backend-b1" and backend.ports == {"http": port}
        assert json.loads(http_get(port, "/stats")[1])["requests"] == 0
        assert backend.command[-4:] == ["--port", str(port), "--seed", "1"]
    finally:
        backend.stop()
    assert backend.log == tmp_path / "backend-b1.log" and backend.log.exists()


def test_switchyard_with_a_broken_config_raises_process_exited_with_its_error(
    tmp_path: Path,
) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("routes: [}\n")
    proc = switchyard(tmp_path, config, free_port(), name="sw")
    with pytest.raises(ProcessExited, match=r"sw exited with \d+ \(log .*sw\.log\)"):
        proc.wait_ready(60)


def test_envoy_commands_run_one_worker_and_take_a_taskset_prefix(tmp_path: Path) -> None:
    bootstrap = tmp_path / "envoy.yaml"
    bootstrap.write_text("not_a_field: 1\n")  # Envoy refuses it
    proc = envoy(tmp_path, bootstrap, free_port(), name="edge", cpus="0")
    try:
        assert proc.command[:3] == ["taskset", "-c", "0"]
        assert proc.command[proc.command.index("--concurrency") + 1] == "1"
        with pytest.raises(ProcessExited, match=r"edge exited"):
            proc.wait_ready(30)
    finally:
        proc.stop()


def test_redis_answers_and_stop_all_ends_every_process(tmp_path: Path) -> None:
    server = redis(tmp_path, free_port(), name="store").wait_ready(10)
    sleeper = _python(tmp_path, "sleeper", "import time; time.sleep(60)")
    stop_all([server, sleeper, None], timeout=5)
    assert server.poll() is not None and sleeper.poll() is not None
