"""Tools beside the sidecar: the demo and the fake model backend."""
