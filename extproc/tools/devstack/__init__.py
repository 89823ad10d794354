"""What every local stack needs, whoever starts it (`switchyard demo`, the end-to-end
tests, the benchmarks): free ports from one allocator, waits bound to a condition, plain
HTTP calls to 127.0.0.1, and one launcher per kind of process (fake backend, switchyard,
Envoy, Prometheus, redis-server), each returning a `Proc` that knows its name, ports and
log file, how to tell it serves and how to stop it."""

from extproc.tools.devstack.core import (
    CLOCK_TICKS,
    Proc,
    ProcessExited,
    free_port,
    free_ports,
    http_get,
    http_post,
    stop_all,
    wait_until,
)
from extproc.tools.devstack.launchers import (
    SWITCHYARD,
    RedisServer,
    envoy,
    envoy_binary,
    fake_backend,
    prometheus,
    redis,
    scrape,
    switchyard,
    taskset,
    write_bootstrap,
)

__all__ = [
    "CLOCK_TICKS",
    "SWITCHYARD",
    "Proc",
    "ProcessExited",
    "RedisServer",
    "envoy",
    "envoy_binary",
    "fake_backend",
    "free_port",
    "free_ports",
    "http_get",
    "http_post",
    "prometheus",
    "redis",
    "scrape",
    "stop_all",
    "switchyard",
    "taskset",
    "wait_until",
    "write_bootstrap",
]
