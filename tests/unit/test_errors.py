"""One exception tree: every exception class extproc defines derives from SwitchyardError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import extproc
from extproc.errors import SwitchyardError


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(extproc.__path__, "extproc."):
        if module_info.name == "extproc.cli.__main__":
            continue  # running it is running the command
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_extproc_exception_is_a_switchyard_error() -> None:
    classes = _exception_classes()
    # The walk reached the modules that define exceptions outside errors.py.
    assert {
        "extproc.errors.ConfigError",
        "extproc.cache.shared.PurgeNotShared",
        "extproc.rollout.canary.RolloutError",
        "extproc.rollout.quality.FeedbackError",
        "extproc.rollout.report.ReportError",
        "extproc.cli.admin_commands.AdminError",
        "extproc.tools.fake_backend.InvalidLimit",
    } <= set(classes)
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, SwitchyardError))
    assert outside == []


def test_re_based_errors_are_still_caught_as_before() -> None:
    """Callers catch these by their former base (http_api: RuntimeError; the fake
    backend and /feedback: ValueError)."""
    from extproc.cache.shared import PurgeNotShared
    from extproc.rollout.quality import FeedbackError
    from extproc.tools.fake_backend import InvalidLimit

    assert issubclass(PurgeNotShared, RuntimeError)
    assert issubclass(FeedbackError, ValueError)
    assert issubclass(InvalidLimit, ValueError)
