"""The routing decision: which route, which cohort, which sticky value.

A Router is compiled once from a Config (regexes, keyword sets, label sets)
and then only read by the request path. The classifier's label is supplied by
the caller; this module does no I/O.
"""

from __future__ import annotations

import hmac
import os
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from extproc import headers as h
from extproc.config import Config, MatchConfig, RouteConfig
from extproc.errors import RequestError
from extproc.request.chat import ChatRequest
from extproc.request.session import cohort_bucket, session_key, sticky_value
from extproc.rollout.canary import Rollouts, in_shadow_phase
from extproc.upstream import backend_for

Matcher = Callable[[ChatRequest, Mapping[str, str], str | None], bool]


def _compile_match(match: MatchConfig) -> Matcher:
    """One matcher that holds when every condition of match holds."""
    conditions = _compile_conditions(match)
    if len(conditions) == 1:
        return conditions[0]
    return lambda chat, headers, label: all(c(chat, headers, label) for c in conditions)


def _compile_conditions(match: MatchConfig) -> list[Matcher]:
    conditions: list[Matcher] = []
    if match.label is not None:
        labels = frozenset(match.label)
        conditions.append(lambda chat, headers, label: label in labels)
    if match.language is not None:
        languages = frozenset(match.language)
        conditions.append(lambda chat, headers, label: chat.language in languages)
    if match.keywords is not None:
        conditions.append(_keywords_matcher(match.keywords))
    if match.regex is not None:
        regex = re.compile(match.regex)
        conditions.append(lambda chat, headers, label: regex.search(chat.text) is not None)
    if match.model is not None:
        models = frozenset(match.model)
        conditions.append(lambda chat, headers, label: chat.model in models)
    if match.header is not None:
        name, value = match.header.name, match.header.value
        conditions.append(lambda chat, headers, label: headers.get(name) == value)
    if match.any_of is not None:
        alternatives = [_compile_match(alternative) for alternative in match.any_of]
        conditions.append(
            lambda chat, headers, label: any(a(chat, headers, label) for a in alternatives)
        )
    return conditions


def _keywords_matcher(keywords: list[str]) -> Matcher:
    """Any keyword as a whole word, ignoring case."""
    pattern = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(k) for k in keywords) + r")(?!\w)", re.IGNORECASE
    )
    # ASCII keywords on ASCII text: a prompt holding none of them, even inside a word,
    # is answered without the regex (most long prompts, at 1/20 of its cost).
    lowered = [k.lower() for k in keywords] if all(k.isascii() for k in keywords) else None

    def matches(chat: ChatRequest, headers: Mapping[str, str], label: str | None) -> bool:
        if lowered is not None:
            text = chat.ascii_lower_text
            if text is not None and not any(word in text for word in lowered):
                return False
        return pattern.search(chat.text) is not None

    return matches


@dataclass(frozen=True)
class CompiledRoute:
    config: RouteConfig
    matches: Matcher | None
    needs_label: bool


@dataclass(frozen=True)
class Decision:
    route: str
    cohort: str
    sticky: int
    label: str | None
    backend: str
    """The backend Envoy will forward to (extproc.upstream.backend_for)."""
    shadow: bool = False
    """A copy goes to the route's shadow backend too (extproc.request.shadow)."""
    retry_on: str | None = None
    """For a canary request: the stable backend Envoy retries a failed canary answer on."""

    def headers(self) -> dict[str, str]:
        out = {
            h.ROUTE: self.route,
            h.COHORT: self.cohort,
            h.STICKY: str(self.sticky),
            h.UPSTREAM: self.backend,
        }
        if self.retry_on is not None:
            out[h.RETRY_ON] = self.retry_on
        if self.label is not None:
            out[h.LABEL] = self.label
        return out


class Router:
    def __init__(self, config: Config, rollouts: Rollouts) -> None:
        self.config = config
        self._rollouts = rollouts
        self._routes = [
            CompiledRoute(
                route,
                _compile_match(route.match) if route.match else None,
                bool(route.match and route.match.label_conditions("")),
            )
            for route in config.routes
            if route.match is not None
        ]
        self._default = config.default_route
        self._route_configs = {route.name: route for route in config.routes}
        self._blocked = frozenset(label.name for label in config.labels if label.action == "block")
        self._sources = tuple(config.session.sources)
        self._fingerprint = tuple(config.session.fingerprint)
        self._allow_sessions = {
            route.name: frozenset(route.canary.allow.sessions)
            for route in config.routes
            if route.canary
        }
        self._allow_users = {
            route.name: frozenset(route.canary.allow.users)
            for route in config.routes
            if route.canary
        }
        self._allow_clients = {
            route.name: frozenset(route.canary.allow.clients)
            for route in config.routes
            if route.canary
        }
        self._shadow_percent = {
            route.name: route.shadow.percent for route in config.routes if route.shadow
        }
        force = config.force_cohort
        self._force_header = force.header
        self._token_header = force.token_header
        self._force_token = os.environ.get(force.token_env, "").encode()

    @property
    def needs_label(self) -> bool:
        """Whether any decision can depend on the classifier."""
        return bool(self._blocked) or any(route.needs_label for route in self._routes)

    def decide(
        self, chat: ChatRequest, headers: Mapping[str, str], label: str | None
    ) -> Decision | None:
        """The decision for a chat request, or None when no route applies (no routes configured)."""
        if label in self._blocked:
            raise RequestError(
                403,
                "prompt_blocked",
                f"this request was classified as {label!r}, which this deployment does not serve",
            )
        route_name = self._default
        for route in self._routes:
            assert route.matches is not None
            if route.matches(chat, headers, label):
                route_name = route.config.name
                break
        if route_name is None:
            return None
        key = session_key(self._sources, headers, chat, fingerprint=self._fingerprint)
        cohort = self._cohort(route_name, key, chat.user, headers)
        if cohort == h.CANARY:
            self._rollouts.record_canary_request(route_name)
        # Without a session the pick is random, but made here rather than by
        # Envoy, so that switchyard knows which backend the body is for.
        sticky = sticky_value(key) if key is not None else random.getrandbits(53)
        chosen = self._route_configs[route_name]
        canary = chosen.canary
        retry = cohort == h.CANARY and canary is not None and canary.retry_on_stable
        return Decision(
            route=route_name,
            cohort=cohort,
            sticky=sticky,
            label=label,
            backend=backend_for(chosen, cohort, sticky),
            shadow=cohort == h.STABLE and key is not None and self._shadowed(route_name, key),
            retry_on=backend_for(chosen, h.STABLE, sticky) if retry else None,
        )

    def _shadowed(self, route: str, key: str) -> bool:
        percent = self._shadow_percent.get(route)
        if percent is None or not in_shadow_phase(self._rollouts.state(route)):
            return False
        # The cohort's own bucket: the sessions a canary's first step takes are among
        # those its shadow saw (when the step is at most the shadow's percent).
        return cohort_bucket(route, key) < percent * 100

    def _forced_cohort(self, headers: Mapping[str, str]) -> str | None:
        forced = headers.get(self._force_header)
        if forced not in (h.CANARY, h.STABLE) or not self._force_token:
            return None
        token = headers.get(self._token_header, "").encode()
        return forced if hmac.compare_digest(token, self._force_token) else None

    def _cohort(
        self, route: str, key: str | None, user: str | None, headers: Mapping[str, str]
    ) -> str:
        state = self._rollouts.state(route)
        if state is None:
            return h.STABLE
        forced = self._forced_cohort(headers)
        if forced is not None:
            return forced
        if state.serving_percent <= 0:
            return h.STABLE
        client = headers.get(h.CLIENT_NAME)
        if (
            (key is not None and key in self._allow_sessions[route])
            or (user is not None and user in self._allow_users[route])
            or (client is not None and client in self._allow_clients[route])
        ):
            return h.CANARY
        if key is None:
            return h.STABLE
        return h.CANARY if cohort_bucket(route, key) < state.serving_percent * 100 else h.STABLE
