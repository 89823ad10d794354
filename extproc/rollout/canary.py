"""Progressive rollout of each route's canary: a small state machine per route.

Phases and steps follow Flagger's canary analysis: the canary climbs through
its steps while healthy and its hold is met, and a rollback keeps it at 0 %
until an operator resets it (no flapping). State lives in this process: every
replica with the same config starts from the same point and takes the same
verdicts from the same rules.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from extproc.config import CanaryConfig, Config

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


@dataclass(frozen=True)
class CanaryState:
    backend: str
    phase: Phase
    percent: float
    step_started: float
    step_requests: int = 0
    reason: str = ""

    @property
    def serving_percent(self) -> float:
        return 0.0 if self.phase is Phase.ROLLED_BACK else self.percent


def next_step(canary: CanaryConfig, percent: float) -> float | None:
    """The step after `percent`, or None at the top."""
    return next((step for step in canary.steps if step > percent), None)


def hold_met(canary: CanaryConfig, state: CanaryState, now: float) -> bool:
    return (
        now - state.step_started >= canary.hold.seconds
        and state.step_requests >= canary.hold.requests
    )


class RolloutError(Exception):
    """An operator action that does not apply (unknown route, no canary)."""


Listener = Callable[[str, CanaryState, CanaryState], None]


class Rollouts:
    """The canary state of every route; thread-safe, read on every request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, CanaryState] = {}
        self._canaries: dict[str, CanaryConfig] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def apply_config(self, config: Config) -> None:
        """Adopts a new config: routes whose canary backend is unchanged keep their state."""
        now = self._clock()
        with self._lock:
            canaries = {route.name: route.canary for route in config.routes if route.canary}
            states = {}
            for name, canary in canaries.items():
                old = self._states.get(name)
                if old and old.backend == canary.backend:
                    states[name] = old
                else:
                    phase = Phase.PROGRESSING if canary.auto else Phase.PAUSED
                    states[name] = CanaryState(canary.backend, phase, canary.percent, now)
            self._states, self._canaries = states, canaries

    def state(self, route: str) -> CanaryState | None:
        return self._states.get(route)

    def states(self) -> dict[str, CanaryState]:
        return dict(self._states)

    def record_canary_request(self, route: str) -> None:
        with self._lock:
            state = self._states.get(route)
            if state is not None:
                self._states[route] = replace(state, step_requests=state.step_requests + 1)

    def _transition(
        self, route: str, change: Callable[[CanaryState, CanaryConfig], CanaryState]
    ) -> CanaryState:
        with self._lock:
            old = self._states.get(route)
            canary = self._canaries.get(route)
            if old is None or canary is None:
                raise RolloutError(f"route {route!r} has no canary")
            new = change(old, canary)
            self._states[route] = new
        if new != old:
            log.warning(
                "rollout %s: %s %.4g%% -> %s %.4g%% (%s)",
                route,
                old.phase,
                old.percent,
                new.phase,
                new.percent,
                new.reason,
            )
            for listener in self._listeners:
                listener(route, old, new)
        return new

    def promote(self, route: str, reason: str = "operator") -> CanaryState:
        now = self._clock()

        def change(state: CanaryState, canary: CanaryConfig) -> CanaryState:
            target = next_step(canary, state.percent) if canary.steps else 100.0
            if target is None or state.phase is Phase.ROLLED_BACK:
                return state
            at_top = target >= 100 or next_step(canary, target) is None
            phase = Phase.PROMOTED if at_top else state.phase
            return CanaryState(state.backend, phase, target, now, 0, reason)

        return self._transition(route, change)

    def pause(self, route: str) -> CanaryState:
        def change(state: CanaryState, canary: CanaryConfig) -> CanaryState:
            if state.phase is not Phase.PROGRESSING:
                return state
            return replace(state, phase=Phase.PAUSED, reason="operator")

        return self._transition(route, change)

    def resume(self, route: str) -> CanaryState:
        def change(state: CanaryState, canary: CanaryConfig) -> CanaryState:
            if state.phase is not Phase.PAUSED:
                return state
            return replace(state, phase=Phase.PROGRESSING, reason="operator")

        return self._transition(route, change)

    def rollback(self, route: str, reason: str = "operator") -> CanaryState:
        now = self._clock()

        def change(state: CanaryState, canary: CanaryConfig) -> CanaryState:
            if state.phase is Phase.ROLLED_BACK:
                return state
            return replace(state, phase=Phase.ROLLED_BACK, step_started=now, reason=reason)

        return self._transition(route, change)

    def reset(self, route: str) -> CanaryState:
        """Back to the configured starting percentage, progressing again."""
        now = self._clock()

        def change(state: CanaryState, canary: CanaryConfig) -> CanaryState:
            phase = Phase.PROGRESSING if canary.auto else Phase.PAUSED
            return CanaryState(state.backend, phase, canary.percent, now, 0, "operator reset")

        return self._transition(route, change)

    def due_for_promotion(self, route: str) -> bool:
        state, canary = self._states.get(route), self._canaries.get(route)
        return (
            state is not None
            and canary is not None
            and canary.auto
            and state.phase is Phase.PROGRESSING
            and hold_met(canary, state, self._clock())
        )

    def is_automatic(self, route: str) -> bool:
        canary = self._canaries.get(route)
        state = self._states.get(route)
        return bool(canary and canary.auto and state and state.phase is Phase.PROGRESSING)
