"""Free TCP ports for the servers a test starts: the package's one allocator."""

from extproc.tools.devstack import free_port, free_ports

__all__ = ["free_port", "free_ports"]
