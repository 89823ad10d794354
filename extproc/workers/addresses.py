"""Where each worker serves: worker i on the configured address's port + i (a unix socket:
its path + `.i`). The one place that says so, for the server, its children and Envoy."""

from __future__ import annotations


def worker_address(address: str, worker: int) -> str:
    """Worker 0 serves on `address` itself."""
    if worker == 0:
        return address
    if address.startswith("unix:"):
        return f"{address}.{worker}"
    host, _, port = address.rpartition(":")
    return f"{host}:{int(port) + worker}"


def worker_addresses(address: str, workers: int) -> list[str]:
    return [worker_address(address, worker) for worker in range(workers)]
