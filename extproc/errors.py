"""switchyard's exceptions, in one tree.

SwitchyardError
├── ConfigError          a config file is unreadable or invalid (names file and key path)
├── RequestError         a request switchyard must answer itself (bad body, too large, blocked)
├── PurgeRefused         a cache purge naming a route or partition source the config lacks
├── PurgeNotShared       a purge that emptied this replica but not Redis; also a
│                        RuntimeError, like the store's other failures (extproc.cache.shared)
├── RolloutError         an operator action that does not apply (extproc.rollout.canary)
├── FeedbackError        a POST /feedback body that cannot be used; also a ValueError
│                        (extproc.rollout.quality)
├── ReportError          Envoy or switchyard could not be read (extproc.rollout.report)
├── AdminError           the admin API refused or was unreachable (extproc.cli.admin_commands)
└── InvalidLimit         the fake backend's answer to a bad token limit; also a ValueError
                         (extproc.tools.fake_backend)

The ones defined elsewhere live beside the one module that raises them.
RequestError carries the HTTP status and a machine-readable code; the stream
handler turns it into an ImmediateResponse in one place (extproc.server).
"""

from __future__ import annotations

from dataclasses import dataclass


class SwitchyardError(Exception):
    """Base of every error switchyard raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None
    """Where the YAML wrote the key, when it is known."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(SwitchyardError):
    """A config that cannot be used. Every issue names the key path and what was expected."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(
            f"  {source}:{issue.line}: {issue}" if issue.line else f"  {source}: {issue}"
            for issue in issues
        )
        super().__init__(f"invalid config {source} ({len(issues)} problem(s)):\n{lines}")


class RequestError(SwitchyardError):
    """A request that switchyard answers itself instead of forwarding."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}")


class PurgeRefused(SwitchyardError):
    """`cache purge` named what the config does not have: a typo must not look like success."""
