"""Canaries and what judges them: canary, shadow, sessions, analysis and answer quality."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from extproc.config.fields import Model, Name, each_once


class HoldConfig(Model):
    seconds: float = Field(default=300.0, ge=0)
    requests: int = Field(default=200, ge=0)


class AllowlistConfig(Model):
    sessions: list[str] = []
    users: list[str] = []
    clients: list[str] = []
    """Client names from auth.keys_file whose every request goes to the canary (a test
    team's key, say)."""


class CanaryConfig(Model):
    backend: Name
    percent: float = Field(ge=0, le=100)
    """The share of sessions on the canary when switchyard starts."""
    steps: list[Annotated[float, Field(gt=0, le=100)]] = []
    """Progressive rollout: the percentages to climb through, in order."""
    hold: HoldConfig = HoldConfig()
    """Minimum time and canary requests at a step before promotion."""
    auto: bool = True
    """Promote and roll back automatically from the canary analysis."""
    allow: AllowlistConfig = AllowlistConfig()
    retry_on_stable: bool = True
    """A canary answer that fails (5xx, reset, connect failure; not 4xx) is tried once more
    on the stable backend the session would have had, with that backend's body, key and
    Host: the client gets the stable answer, the analysis still counts the canary's
    failure."""
    retry_budget_percent: float = Field(default=50.0, gt=0, le=100)
    """Retries on stable at most this share of the canary's requests in flight (Envoy's
    retry budget, at least 5 at once): a failing canary cannot pile its load onto stable."""

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("expected strictly increasing percentages")
        return steps


class ShadowConfig(Model):
    """A copy of some sessions' requests goes to this backend; clients only see the primary's
    answers (docs/CANARY.md, shadow phase)."""

    backend: Name
    percent: float = Field(gt=0, le=100)
    """The share of sessions whose every request is copied to the shadow."""


_SESSION_SOURCE = re.compile(
    r"^(header:[a-z0-9-]+|cookie:[A-Za-z0-9_.-]+|user|client|first_message|fingerprint)$"
)
_FINGERPRINT_PART = re.compile(r"^(header:[a-z0-9-]+|client_address|system_prompt|first_message)$")


def _session_source(source: str) -> str:
    if not _SESSION_SOURCE.match(source):
        raise ValueError(
            f"{source!r}: expected header:<name>, cookie:<name>, user, client, first_message or "
            "fingerprint"
        )
    return source


def _fingerprint_part(part: str) -> str:
    if not _FINGERPRINT_PART.match(part):
        raise ValueError(
            f"{part!r}: expected header:<name> (lower case), client_address, system_prompt"
            " or first_message"
        )
    return part


QualityCheckName = Literal["score", "unsafe", "refusal", "wrong", "empty", "truncated"]
QUALITY_CHECKS: tuple[QualityCheckName, ...] = (
    "score",
    "unsafe",
    "refusal",
    "wrong",
    "empty",
    "truncated",
)


class QualityAnalysisConfig(Model):
    """Canary vs stable on answer quality (extproc.rollout.quality_checks)."""

    checks: Annotated[list[QualityCheckName], AfterValidator(each_once)] = list(QUALITY_CHECKS)
    """Which signals can roll a canary back: the mean score, and the rate of each flag
    per answered request."""
    score_margin: float = Field(default=0.05, ge=0, le=1)
    """Drop in mean score (0..1) tolerated: H0 is mean_stable - mean_canary <= this."""
    min_scores: int = Field(default=30, ge=2)
    """Scored requests per cohort in the window before the score check speaks; fewer:
    inconclusive, never a rollback."""
    flag_margin: float = Field(default=0.1, ge=0)
    """Relative increase of a flag's rate tolerated (0.1 = 10 %)."""
    flag_floor: float = Field(default=0.01, ge=0, le=1)
    """Absolute increase of a flag's rate below which nothing is a verdict."""
    min_flags: int = Field(default=5, ge=1)
    """Flags of a kind on the canary in the window before that flag's check speaks."""


class RouteAnalysisConfig(Model):
    quality: QualityAnalysisConfig
    """Replaces analysis.quality for this route."""


class SessionConfig(Model):
    sources: Annotated[
        list[Annotated[str, AfterValidator(_session_source)]], AfterValidator(each_once)
    ] = ["header:x-session-id", "cookie:session_id", "user", "fingerprint"]
    """Where the session key comes from, first found wins (docs/CANARY.md)."""
    fingerprint: Annotated[
        list[Annotated[str, AfterValidator(_fingerprint_part)]],
        Field(min_length=1),
        AfterValidator(each_once),
    ] = [
        "header:authorization",
        "header:x-api-key",
        "client_address",
        "system_prompt",
        "first_message",
    ]
    """What the `fingerprint` source hashes together: parts that tell clients apart and
    stay the same through a conversation. Found when any part has a value."""


class ForceCohortConfig(Model):
    """Lets testers force a cohort with a header, only together with the secret token."""

    header: str = "x-switchyard-force-cohort"
    token_header: str = "x-switchyard-token"
    token_env: str = "SWITCHYARD_FORCE_TOKEN"
    """Environment variable holding the token; forcing is off when it is unset or empty."""


class AnalysisConfig(Model):
    """Canary vs stable comparison (extproc.rollout.analysis)."""

    interval_s: float = Field(default=1.0, gt=0)
    window_s: float = Field(default=60.0, gt=0)
    min_requests: int = Field(default=20, ge=2)
    """Per cohort in the window before any verdict."""
    error_margin: float = Field(default=0.05, ge=0)
    """Relative degradation of the error rate tolerated (0.05 = 5 %)."""
    error_floor: float = Field(default=0.01, ge=0, le=1)
    """Absolute error-rate increase below which nothing is a verdict."""
    latency_margin: float = Field(default=0.05, ge=0)
    latency_floor_ms: float = Field(default=20.0, ge=0)
    confidence: float = Field(default=0.999, gt=0.5, lt=1)
    """One-sided confidence needed to call a canary degraded."""
    quality: QualityAnalysisConfig = QualityAnalysisConfig()
    """Answer-quality checks for every canary route (routes[].analysis.quality overrides)."""
    source: Literal["observed", "envoy"] = "observed"
    """Where canary and stable requests, errors and latencies come from: the responses
    switchyard observes, or Envoy's own per-route statistics, read from envoy.admin every
    interval_s (extproc.rollout.envoy_stats); with envoy, observing is needed only for
    tokens and cost, so envoy.observe_sample can be low or envoy.observe off."""


DEFAULT_REFUSAL_PATTERNS = [
    r"i(['\u2019]m| am) (so |very |really )?(sorry|afraid),? (but )?"
    r"i (can(['\u2019]|no)?t|won['\u2019]t|am (unable|not able) to)",
    r"^\W*i (can(['\u2019]|no)?t|won['\u2019]t|am (unable|not able) to) "
    r"(help|assist|comply|provide|answer|do that)",
    r"i must (decline|refuse)",
    r"d[ée]sol[ée]e?,? (mais )?je ne (peux|pourrai|suis pas en mesure)",
    r"^\W*je ne (peux|pourrai) pas (vous )?(aider|répondre|fournir|faire)",
    r"je ne suis pas en mesure de (vous )?(aider|répondre|fournir)",
    r"je dois (refuser|décliner)",
]
"""quality.refusal_patterns' default, kept with the model rather than beside
extproc.rollout.quality that matches them: extproc.rollout imports the config, so the
config importing them from there would tie the two packages in a cycle. Each starts
with a literal: Python's re then skips to candidate places fast (a leading \\b or
case-insensitive flag makes every pattern ~20x slower)."""


def _patterns(patterns: list[str]) -> list[str]:
    for index, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"[{index}]: expected a Python regular expression: {exc}") from None
        if any(char.isupper() for char in re.sub(r"\\.", "", pattern)):
            raise ValueError(
                f"[{index}]: expected lower case ({pattern!r}): patterns are matched against "
                "the lower-cased answer"
            )
    return patterns


class QualityConfig(Model):
    """Where answer-quality signals come from (extproc.rollout.quality)."""

    score_header: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")] | None = "x-quality-score"
    """A response header from the backend (or a judge in front of it) carrying a score
    0..1 for the answer; null: none read."""
    auto_flags: Annotated[
        list[Literal["empty", "refusal", "truncated"]], AfterValidator(each_once)
    ] = ["empty", "refusal", "truncated"]
    """What switchyard flags itself from the observed answer: an empty answer, a refusal
    (refusal_patterns), an answer cut by length (finish_reason "length")."""
    refusal_patterns: Annotated[list[str], AfterValidator(_patterns)] = DEFAULT_REFUSAL_PATTERNS
    """Regular expressions searched in the first 400 characters of the answer, lower-cased
    (so written in lower case)."""
    remember_s: float = Field(default=600.0, gt=0, le=86_400)
    """How long a request id stays known to POST /feedback; a later signal is counted
    as unknown."""
    share_ids: bool = True
    """With state.store: redis, also write each request id to Redis (about 150 bytes
    each, for remember_s), so that POST /feedback on any replica finds it; false: only
    the replica that served a request knows its id. Takes effect at restart."""
    remember_max: int = Field(default=100_000, ge=100, le=10_000_000)
    """At most this many request ids are remembered (oldest forgotten first); each takes
    about 250 bytes of memory."""
