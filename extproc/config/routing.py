"""Where a request goes: the classifier, labels, backends, matches and routes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from classifier.text import LANGUAGES  # word lists only: loads no model
from extproc.config.fields import Model, Name, check_address, each_once
from extproc.config.rollout import CanaryConfig, RouteAnalysisConfig, ShadowConfig


class ClassifierConfig(Model):
    model: Path = Path("build/model")
    """Directory with model.onnx and tokenizer.json; a relative path is resolved from the
    config file's folder (`switchyard build-model --out DIR` writes one)."""
    encoder: Literal["minilm", "use", "minilm+use", "use+minilm-when-unsure"] = (
        "use+minilm-when-unsure"
    )
    """Sentence encoder(s) inside `model` (docs/research/2026-classifier-log.md compares
    them): USE multilingual v3 alone (16 languages, the fastest), all-MiniLM-L6-v2 alone
    (English), both for every English prompt (`minilm+use`: the mean of their scores; other
    languages USE's alone), or the default: USE for every prompt and MiniLM averaged in only
    for the English prompts
    whose best two labels USE scores within 0.05 of each other (and that might be routed):
    most of the ensemble's gain on English intents and exam topics, with MiniLM's inference
    paid by 3-45 % of English prompts (our label sets) instead of all."""
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    """Score under which a prompt gets the fallback, for every label that sets no threshold
    of its own. Omitted: each label's is calibrated from its own examples against the other
    labels' and a neutral corpus when the model loads; a label with fewer than 6 examples
    gets the threshold calibrated from all labels' examples pooled (`switchyard check
    --model` prints each label's threshold and why)."""
    fallback: Name = "other"
    warn_moved_percent: float = Field(default=10.0, ge=0, le=100)
    """On a reload, a warning names each label whose examples change decision (each left
    out of its label) in a larger share than this; every label gets an info line."""
    max_tokens: int = Field(default=128, ge=8, le=512)
    cache_size: int = Field(default=10_000, ge=0)
    max_batch: int = Field(default=16, ge=1, le=256)
    max_wait_ms: int = Field(default=400, ge=10)
    """Longest a request waits for the classifier before it is routed without a label
    (load shedding, counted); must stay under envoy.message_timeout_ms."""


class LabelConfig(Model):
    name: Name
    description: str | None = None
    examples: list[str] = Field(min_length=1)
    action: Literal["route", "block"] = "route"
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    """This label's score threshold, over classifier.threshold and the calibration."""
    force: bool = False
    """For `action: block`: accept a config change that lowers the share of this label's
    examples it still blocks (each left out of it). Without it such a reload is refused."""


class PriceConfig(Model):
    prompt_per_1m: float = Field(ge=0)
    completion_per_1m: float = Field(ge=0)


class CredentialConfig(Model):
    """A header Envoy adds to every request to this backend, its value from the environment."""

    header: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")] = "authorization"
    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    """The environment variable (of Envoy's process) holding the key; in Kubernetes, from a
    Secret. The key itself is never written in a config file."""
    prefix: str = ""
    """Put before the key, e.g. "Bearer "."""


class BackendConfig(Model):
    name: Name
    address: str
    tls: bool = False
    """HTTPS to the backend, its certificate verified against envoy.ca_bundle
    (or tls_ca_file) and the address's host name."""
    tls_ca_file: Path | None = None
    """Trust this CA (PEM file, relative to the config file) for this backend instead."""
    insecure_skip_verify: bool = False
    """Accept any certificate. Only for tests: anyone on the path can read what is sent."""
    model: str | None = None
    """The model name this backend serves: the body's `model` is rewritten to it."""
    credential: CredentialConfig | None = None
    forward_client_authorization: bool = False
    """Pass the client's Authorization header on to this backend (removed by default)."""
    path_prefix: Annotated[str, Field(pattern=r"^/[^?#]*[^/?#]$")] | None = None
    """Put before the request's path, e.g. /openai for /openai/v1/chat/completions."""
    query: dict[Annotated[str, Field(min_length=1)], str] = {}
    """Query parameters added to chat requests to this backend, e.g. api-version."""
    price: PriceConfig | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value, allow_unix=False)

    @model_validator(mode="after")
    def _consistent(self) -> BackendConfig:
        if not self.tls and (self.tls_ca_file is not None or self.insecure_skip_verify):
            raise ValueError("tls_ca_file and insecure_skip_verify need tls: true")
        if self.tls_ca_file is not None and self.insecure_skip_verify:
            raise ValueError("expected tls_ca_file or insecure_skip_verify, not both")
        if (
            self.forward_client_authorization
            and self.credential is not None
            and self.credential.header == "authorization"
        ):
            raise ValueError(
                "forward_client_authorization: the backend's credential already sets authorization"
            )
        return self

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]

    @property
    def host_header(self) -> str:
        """The Host the backend expects: its own, the port left out when it is the scheme's."""
        port = int(self.address.rpartition(":")[2])
        return self.host if port == (443 if self.tls else 80) else self.address


class HeaderMatch(Model):
    name: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]
    value: str


class MatchConfig(Model):
    """Conditions on a request: the match holds when every condition given holds
    (`{label: support, language: fr}`); `any_of` holds when one of its matches does."""

    label: list[Name] | None = None
    keywords: list[Annotated[str, Field(min_length=1)]] | None = None
    regex: str | None = None
    model: list[str] | None = None
    header: HeaderMatch | None = None
    language: list[str] | None = None
    """The language guessed from the user messages (the newest that gives one), as the
    classifier guesses it: ISO codes such as en, fr, de. No model is needed (~20 µs)."""
    any_of: list[MatchConfig] | None = Field(default=None, min_length=2)

    @field_validator("label", "model", "language", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("language")
    @classmethod
    def _language(cls, value: list[str] | None) -> list[str] | None:
        unknown = [code for code in value or () if code not in LANGUAGES]
        if unknown:
            raise ValueError(
                f"unknown language {', '.join(unknown)}; expected codes the language guess "
                f"gives: {', '.join(sorted(LANGUAGES))}"
            )
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expected a Python regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> MatchConfig:
        if all(value is None for _, value in self):
            raise ValueError(
                "expected at least one of label, keywords, regex, model, header, language, any_of"
            )
        return self

    def label_conditions(self, path: str) -> list[tuple[str, list[str]]]:
        """Every label condition in this match and the ones nested in any_of, with its key
        path (path is this match's)."""
        found = [(f"{path}.label", self.label)] if self.label is not None else []
        for i, alternative in enumerate(self.any_of or ()):
            found += alternative.label_conditions(f"{path}.any_of[{i}]")
        return found


class WeightedBackend(Model):
    backend: Name
    weight: int = Field(default=1, ge=1, le=10_000)


_CACHE_PARTITION_SOURCE = re.compile(r"^(header:[a-z0-9-]+|cookie:[A-Za-z0-9_.-]+|user|client)$")


def _cache_partition_source(source: str) -> str:
    if not _CACHE_PARTITION_SOURCE.match(source):
        raise ValueError(
            f"{source!r}: expected header:<name> (lower case), cookie:<name>, user or client"
        )
    return source


class CacheConfig(Model):
    """The route's response cache (docs/CACHE.md): off unless enabled."""

    enabled: bool = False
    min_similarity: float = Field(default=0.9, gt=0, le=1)
    """Cosine between last user messages for a hit by meaning (which the guard must also
    pass); 1 caches exact repeats only. Exact repeats always count. Re-picked on
    data/cache_pairs/dev.jsonl: 0.88 is the lowest without a wrong answer served, 0.9
    keeps a margin; held out at 0.9, 0 of 67 wrong answers and 90 % of rewordings served
    (docs/CACHE.md)."""
    ttl_s: float = Field(default=86_400.0, gt=0)
    partition_by: Annotated[
        list[Annotated[str, AfterValidator(_cache_partition_source)]],
        Field(min_length=1),
        AfterValidator(each_once),
    ] = ["header:x-tenant-id", "user"]
    """A hit never crosses these; a request that has none of them is not cached."""
    max_entries: int = Field(default=100_000, ge=1, le=10_000_000)
    """Per route and replica; the least recently used entry goes first."""
    max_answer_bytes: int = Field(default=65_536, ge=1024, le=16 * 1_048_576)
    """Larger responses are not cached."""


FallbackTrigger = Literal[429, 500, 502, 503, 504, "connect"]


class FallbackConfig(Model):
    backend: Name


class RouteConfig(Model):
    name: Name
    match: MatchConfig | None = None
    backends: list[WeightedBackend] = Field(min_length=1)
    canary: CanaryConfig | None = None
    analysis: RouteAnalysisConfig | None = None
    """This route's own canary analysis settings (analysis.quality otherwise)."""
    shadow: ShadowConfig | None = None
    """With a canary (same backend, percent 0): the canary's shadow phase, until
    `switchyard rollout launch` takes it to its first step."""
    cache: CacheConfig = CacheConfig()
    fallbacks: list[FallbackConfig] = []
    """Tried in order when the chosen backend answers with one of `fallback_on` (before any
    byte reaches the client), each with its own model name, key, Host and TLS. A session
    stays on its own backend whenever that answers; fallback answers are counted apart and
    kept out of the canary analysis."""
    fallback_on: list[FallbackTrigger] = [429, 503, "connect"]
    """The answers that move a request to the next fallback: status codes, and `connect`
    (connection refused or reset before an answer)."""
