"""Progressive rollout of each route's canary: a small state machine per route.

Phases and steps follow Flagger's canary analysis: the canary climbs through
its steps while healthy and its hold is met, and a rollback keeps it at 0 %
until an operator resets it (no flapping).

Rollouts is this process's copy of every route's state, read on every request.
Changes come from a store (extproc.store): the store plans a transition here
(`plan`), commits it (in memory, or as a compare-and-set on the version in Redis)
and hands the committed state back (`adopt`). Versions only grow, so a late or
repeated update never undoes a newer one.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from extproc.config import CanaryConfig, Config
from extproc.errors import SwitchyardError

log = logging.getLogger("switchyard.rollout")


class Phase(enum.StrEnum):
    PROGRESSING = "progressing"
    """Serving the current step; promoted when healthy and the hold is met."""
    PAUSED = "paused"
    """Serving the current step; no automatic promotion."""
    PROMOTED = "promoted"
    """At the last step; nothing more to do."""
    ROLLED_BACK = "rolled_back"
    """0 % until an operator resets it."""
    WAITING = "waiting"
    """0 %: the fleet's state is not known yet (state store unreachable at start)."""


ACTIONS = ("promote", "pause", "resume", "rollback", "reset", "launch")
"""launch: from 0 % (a shadowed canary's shadow phase) to the first step."""


@dataclass(frozen=True)
class CanaryState:
    backend: str
    phase: Phase
    percent: float
    step_started: float
    """Seconds on the store's clock (Redis's own in a fleet): when this step began."""
    reason: str = ""
    version: int = 0
    """Grows by one with every committed transition; 0: never committed."""
    updated_by: str = ""
    """The replica that committed this version."""
    updated_at: float = 0.0

    @property
    def serving_percent(self) -> float:
        if self.phase in (Phase.ROLLED_BACK, Phase.WAITING):
            return 0.0
        return self.percent


def in_shadow_phase(state: CanaryState | None) -> bool:
    """Whether a route's shadow receives copies: with no canary, or one not yet launched
    (0 %, neither rolled back nor waiting for the fleet's state)."""
    if state is None:
        return True
    return state.percent == 0 and state.phase in (Phase.PROGRESSING, Phase.PAUSED)


def initial_state(canary: CanaryConfig, now: float) -> CanaryState:
    """A new rollout: the config's starting percent."""
    phase = Phase.PROGRESSING if canary.auto else Phase.PAUSED
    return CanaryState(canary.backend, phase, canary.percent, now, "new rollout")


def waiting_state(canary: CanaryConfig, now: float) -> CanaryState:
    return CanaryState(canary.backend, Phase.WAITING, canary.percent, now, "waiting for the store")


def next_step(canary: CanaryConfig, percent: float) -> float | None:
    """The step after `percent`, or None at the top."""
    return next((step for step in canary.steps if step > percent), None)


def hold_met(canary: CanaryConfig, state: CanaryState, now: float, step_requests: int) -> bool:
    return now - state.step_started >= canary.hold.seconds and step_requests >= canary.hold.requests


def plan(
    action: str, state: CanaryState, canary: CanaryConfig, now: float, reason: str
) -> CanaryState:
    """The state `action` leads to from `state`; `state` itself when it changes nothing."""
    if action == "promote":
        target = next_step(canary, state.percent) if canary.steps else 100.0
        if target is None or state.phase in (Phase.ROLLED_BACK, Phase.WAITING):
            return state
        at_top = target >= 100 or next_step(canary, target) is None
        phase = Phase.PROMOTED if at_top else state.phase
        return replace(state, phase=phase, percent=target, step_started=now, reason=reason)
    if action == "launch":
        if not in_shadow_phase(state):
            raise RolloutError(
                f"expected a canary at 0 % (its shadow phase), not {state.phase} at "
                f"{state.percent:g} %"
            )
        return plan("promote", state, canary, now, reason)
    if action == "pause":
        if state.phase is not Phase.PROGRESSING:
            return state
        return replace(state, phase=Phase.PAUSED, reason=reason)
    if action == "resume":
        if state.phase is not Phase.PAUSED:
            return state
        return replace(state, phase=Phase.PROGRESSING, reason=reason)
    if action == "rollback":
        if state.phase in (Phase.ROLLED_BACK, Phase.WAITING):
            return state
        return replace(state, phase=Phase.ROLLED_BACK, step_started=now, reason=reason)
    if action == "reset":
        return replace(initial_state(canary, now), reason=reason or "operator reset")
    raise RolloutError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")


class RolloutError(SwitchyardError):
    """An operator action that does not apply (unknown route, no canary, store away)."""


Listener = Callable[[str, CanaryState | None, CanaryState], None]


class Rollouts:
    """This process's copy of the canary state of every route; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, CanaryState] = {}
        self._canaries: dict[str, CanaryConfig] = {}
        self._step_requests: dict[str, int] = {}
        self._unshared_requests: dict[tuple[str, int], int] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def apply_config(
        self, config: Config, start: Callable[[CanaryConfig], CanaryState]
    ) -> set[str]:
        """Adopts a config; returns the routes whose rollout is new (new canary backend).

        Routes whose canary backend is unchanged keep their state; a new one starts
        as `start` says (the config's percent in memory, waiting in a fleet).
        """
        canaries = {route.name: route.canary for route in config.routes if route.canary}
        new_routes = set()
        with self._lock:
            states = {}
            for name, canary in canaries.items():
                old = self._states.get(name)
                if old and old.backend == canary.backend:
                    states[name] = old
                else:
                    states[name] = start(canary)
                    new_routes.add(name)
                    self._step_requests[name] = 0
            self._states, self._canaries = states, canaries
        for name in new_routes:
            self._notify(name, None, self._states[name])
        return new_routes

    def canary(self, route: str) -> CanaryConfig | None:
        return self._canaries.get(route)

    def state(self, route: str) -> CanaryState | None:
        return self._states.get(route)

    def states(self) -> dict[str, CanaryState]:
        return dict(self._states)

    def get(self, route: str) -> tuple[CanaryState, CanaryConfig]:
        state, canary = self._states.get(route), self._canaries.get(route)
        if state is None or canary is None:
            raise RolloutError(f"route {route!r} has no canary")
        return state, canary

    # -- requests served at the current step (the hold) -------------------------------

    def record_canary_request(self, route: str) -> None:
        state = self._states.get(route)
        if state is None:
            return
        with self._lock:
            self._step_requests[route] = self._step_requests.get(route, 0) + 1
            key = (route, state.version)
            self._unshared_requests[key] = self._unshared_requests.get(key, 0) + 1

    def step_requests(self, route: str) -> int:
        """Canary requests this process served at the route's current step."""
        return self._step_requests.get(route, 0)

    def take_unshared_requests(self) -> dict[tuple[str, int], int]:
        """Canary requests per (route, version) not yet added to the fleet's count."""
        with self._lock:
            taken, self._unshared_requests = self._unshared_requests, {}
        return taken

    # -- changes ----------------------------------------------------------------------

    def adopt(self, route: str, new: CanaryState, *, force: bool = False) -> bool:
        """Takes a committed state if it is newer than the one held (or `force`)."""
        with self._lock:
            old = self._states.get(route)
            canary = self._canaries.get(route)
            if old is None or canary is None or new.backend != canary.backend:
                return False
            if not force and new.version <= old.version:
                return False
            self._states[route] = new
            if (new.percent, new.step_started) != (old.percent, old.step_started):
                self._step_requests[route] = 0
        if new != old:
            self._notify(route, old, new)
        return True

    def _notify(self, route: str, old: CanaryState | None, new: CanaryState) -> None:
        if old is not None and (old.phase, old.percent) != (new.phase, new.percent):
            # The percent actually served, as `rollout status` shows it: a rolled-back
            # canary keeps its step's percent for a reset, but serves 0 %.
            log.warning(
                "rollout %s: %s %.4g%% -> %s %.4g%% (v%d, %s)",
                route,
                old.phase,
                old.serving_percent,
                new.phase,
                new.serving_percent,
                new.version,
                new.reason,
            )
        for listener in self._listeners:
            listener(route, old, new)
