"""switchyard: an Envoy ext_proc sidecar that routes LLM requests by meaning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llm-switchyard")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
