"""The one config model: switchyard.yaml, loaded and validated here and nowhere else.

Every default lives in this module. The server compiles a loaded Config into a
Runtime (extproc.request.runtime); the Envoy renderer (envoy/render.py) reads the same
Config. Errors name the file, the line, the key path and what was expected.

Relative file paths (classifier.model, the TLS and CA files) resolve from the folder
of the config file (of the values file, for `switchyard check --values`), never from
the working directory: every command reads them the same way.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from classifier.text import LANGUAGES  # word lists only: loads no model
from extproc.config_issues import explain, located, named_path, unknown
from extproc.config_yaml import YamlDocument, read_yaml
from extproc.errors import ConfigError, ConfigIssue

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
_SESSION_SOURCE = re.compile(
    r"^(header:[a-z0-9-]+|cookie:[A-Za-z0-9_.-]+|user|client|first_message|fingerprint)$"
)
_FINGERPRINT_PART = re.compile(r"^(header:[a-z0-9-]+|client_address|system_prompt|first_message)$")


def _check_address(value: str, *, allow_unix: bool) -> str:
    if allow_unix and value.startswith("unix:"):
        if len(value) <= len("unix:"):
            raise ValueError("expected unix:/path/to/socket")
        return value
    match = _HOST_PORT.match(value)
    if not match or not 0 < int(match["port"]) < 65536:
        expected = "host:port" + (" or unix:/path" if allow_unix else "")
        raise ValueError(f"expected {expected}, got {value!r}")
    return value


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8, ::1, or ::ffff:127.x (an IPv4 peer on an IPv6 socket)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerTlsConfig(Model):
    """Mutual TLS on the ext_proc port: only clients with a certificate from client_ca_file
    get in. Files as cert-manager writes them (tls.crt, tls.key, ca.crt), read at start."""

    cert_file: Path
    """switchyard's certificate chain (PEM)."""
    key_file: Path
    """Its private key (PEM)."""
    client_ca_file: Path
    """CA certificates (PEM) that sign the certificates of the Envoys allowed in."""


class ProcessorTlsConfig(Model):
    """How the rendered Envoy reaches a switchyard that requires mutual TLS."""

    cert_file: Path
    """Envoy's client certificate chain (PEM)."""
    key_file: Path
    """Its private key (PEM)."""
    ca_file: Path
    """CA certificates (PEM) that switchyard's certificate must chain to."""
    server_name: str
    """Sent as SNI, and a DNS name switchyard's certificate must carry."""


class ServerConfig(Model):
    listen: str = "127.0.0.1:50051"
    """Where the ext_proc gRPC server listens: host:port or unix:/path."""
    metrics_listen: str = "127.0.0.1:9464"
    """HTTP address of /metrics (Prometheus), /healthz, /stats and /rollout (operator actions)."""
    admin_token_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = (
        "SWITCHYARD_ADMIN_TOKEN"
    )
    """Environment variable holding the bearer token that POST /rollout requires. When it
    is unset or empty, POST /rollout answers loopback clients only."""
    tls: ServerTlsConfig | None = None
    """Mutual TLS on `listen` (TCP only); plaintext when absent."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    """Bodies above this get a 413 from switchyard."""
    log_prompts: bool = False
    """Debug only: log prompts (redacted). Prompts are never logged otherwise."""
    reload_interval_s: float = Field(default=2.0, gt=0)
    """How often the config file is checked for changes."""
    drain_s: float = Field(default=5.0, ge=0)
    """On SIGTERM: how long to keep accepting new streams (health NOT_SERVING) before stopping."""
    grace_s: float = Field(default=30.0, ge=0)
    """On SIGTERM, after draining: how long in-flight streams may take to finish."""
    classify_threads: int = Field(default=1, ge=1, le=64)
    """onnxruntime intra-op threads per classification. One is the most work per CPU
    (batches run one after another); more lowers the latency of long prompts on an idle
    machine."""
    chat_paths: list[Annotated[str, Field(pattern=r"^/")]] = ["/v1/chat/completions"]
    """Path prefixes of chat requests (POST). Envoy forwards no other path, except those
    listed in `passthrough`; GET /v1/models it answers itself."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _check_address(value, allow_unix=True)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics(cls, value: str) -> str:
        return _check_address(value, allow_unix=False)

    @model_validator(mode="after")
    def _tls_needs_tcp(self) -> ServerConfig:
        if self.tls is not None and self.listen.startswith("unix:"):
            raise ValueError("tls: expected a host:port listen address (a unix socket has no TLS)")
        return self


class EnvoyConfig(Model):
    listen: str = "127.0.0.1:10000"
    admin: str = "127.0.0.1:9901"
    """Envoy's admin interface (stop, drain, runtime changes...): loopback addresses only."""
    stats_listen: str | None = "127.0.0.1:9902"
    """A listener that serves only GET /stats/prometheus and GET /ready from the admin
    interface, for Prometheus and probes; everything else is 404. null: none."""
    processor: str | None = None
    """Where Envoy reaches switchyard; defaults to server.listen."""
    processor_tls: ProcessorTlsConfig | None = None
    """Mutual TLS to a switchyard whose server.tls is set; plaintext when absent."""
    message_timeout_ms: int = Field(default=1000, ge=10, le=60_000)
    failure_mode_allow: bool = True
    """Fail open: with switchyard down or slow, requests go to the default route."""
    upstream_timeout_s: float = Field(default=120.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    """Retries on connect failure or reset before the upstream answered."""
    observe: Literal["all", "canaries", "off"] = "all"
    """Which responses Envoy shows switchyard in observability mode (the A/B numbers:
    tokens, cost, latency; the canary analysis): every routed response, only those of
    routes with a canary or a cache (the analysis and the cache still work; about half of
    switchyard's CPU per request is observing), or none (no A/B numbers, no automatic
    rollback, no cache)."""
    observe_close_timeout_ms: int = Field(default=500, ge=100, le=5000)
    observe_sample: float = Field(default=1.0, gt=0, le=1)
    """The share of stable responses observed (every canary response is): below 1, the
    A/B totals, tokens and cost of stable are estimates scaled from the sample (labelled
    so in the report), and the analysis compares the canary with stable's sample."""
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)
    """How many proxies in front of Envoy append to x-forwarded-for (a cloud load balancer:
    1). Envoy takes the client's address that many entries from the right of that header;
    with 0 it is the TCP peer, which a client cannot forge. The session fingerprint's
    client_address is this address."""
    ca_bundle: Path = Path("/etc/ssl/certs/ca-certificates.crt")
    """The system CA bundle (in Envoy's file system) that verifies TLS backends."""
    xds: bool = True
    """Envoy takes its listeners, routes and clusters from switchyard over xDS (the bootstrap
    `switchyard envoy` writes): a saved change reaches Envoy without a restart, and Envoy and
    the request path switch to it together, once Envoy has acknowledged it. false: another
    controller owns Envoy's config (Envoy Gateway; the chart's extproc-only mode), and a reload
    that changes which backend a request goes to, or how its body is rewritten for it, is
    refused: that Envoy would not follow."""
    xds_ack_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long a new config version waits for every connected Envoy to acknowledge it; an
    Envoy that rejects it, or does not answer in time, leaves both on the running version."""

    @field_validator("listen", "stats_listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value, allow_unix=False)

    @field_validator("admin")
    @classmethod
    def _admin(cls, value: str) -> str:
        _check_address(value, allow_unix=False)
        if not is_loopback(value.rpartition(":")[0]):
            raise ValueError(
                f"expected a loopback address such as 127.0.0.1:9901, got {value!r}: whoever "
                "reaches Envoy's admin can stop Envoy or change its weights (use stats_listen "
                "for Prometheus and probes)"
            )
        return value

    @field_validator("processor")
    @classmethod
    def _processor(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value, allow_unix=True)

    @model_validator(mode="after")
    def _distinct_ports(self) -> EnvoyConfig:
        if self.stats_listen is not None and self.stats_listen in (self.listen, self.admin):
            raise ValueError("stats_listen: expected an address of its own")
        return self


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
        return _check_address(value, allow_unix=False)

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


def _unique(values: list[str]) -> list[str]:
    duplicates = sorted({value for value in values if values.count(value) > 1})
    if duplicates:
        raise ValueError(f"expected each entry once; repeated: {', '.join(duplicates)}")
    return values


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
        AfterValidator(_unique),
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

    checks: Annotated[list[QualityCheckName], AfterValidator(_unique)] = list(QUALITY_CHECKS)
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
        list[Annotated[str, AfterValidator(_session_source)]], AfterValidator(_unique)
    ] = ["header:x-session-id", "cookie:session_id", "user", "fingerprint"]
    """Where the session key comes from, first found wins (docs/CANARY.md)."""
    fingerprint: Annotated[
        list[Annotated[str, AfterValidator(_fingerprint_part)]],
        Field(min_length=1),
        AfterValidator(_unique),
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


class StateConfig(Model):
    """Where the rollout state lives (extproc.store)."""

    store: Literal["memory", "redis"] = "memory"
    """memory: this process alone (one replica, the demo). redis: shared by every replica
    of the fleet, durable across restarts; needed as soon as more than one replica
    serves a route that has a canary."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """redis://host:port/db, rediss:// for TLS, or unix:///path/to/socket. No password
    here: see password_env."""
    password_env: str | None = None
    """Environment variable holding the Redis password (from a Kubernetes Secret)."""
    tls_ca_file: Path | None = None
    """rediss:// only: trust this CA for the Redis server's certificate instead of the
    system's. The certificate is always verified."""
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "switchyard"
    """Every key starts with it: several deployments can share one Redis."""
    timeout_ms: int = Field(default=500, ge=10, le=10_000)
    """Per Redis command. Nothing on the request path waits for Redis."""
    sync_interval_s: float = Field(default=1.0, gt=0, le=60)
    """How often every replica re-reads the fleet's state (the safety net under pub/sub)
    and the leader renews its lease."""
    flush_interval_s: float = Field(default=0.25, gt=0, le=10)
    """How often a replica adds its observations to the fleet's buckets."""
    lease_ttl_s: float = Field(default=5.0, gt=0, le=300)
    """The analysis leader's lease: a dead leader is replaced within it."""
    start_timeout_s: float = Field(default=10.0, ge=0, le=600)
    """How long a starting replica waits for the fleet's state before it serves anyway,
    with every canary held at 0 % until the state is known."""

    @field_validator("redis_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(rediss?://[^/\s]+(/\d+)?|unix:///\S+)$", value):
            raise ValueError(
                f"expected redis://host:port/db, rediss://host:port/db or unix:///path, "
                f"got {value!r}"
            )
        if re.match(r"^rediss?://[^@/]*:[^@/]*@", value):
            raise ValueError("expected no password in the URL: set state.password_env instead")
        return value

    @model_validator(mode="after")
    def _lease_outlives_renewals(self) -> StateConfig:
        if self.tls_ca_file is not None and not self.redis_url.startswith("rediss://"):
            raise ValueError("tls_ca_file: expected a rediss:// redis_url (TLS) with it")
        if self.lease_ttl_s < 2 * self.sync_interval_s:
            raise ValueError(
                "expected lease_ttl_s at least twice sync_interval_s (the lease is renewed "
                "every sync_interval_s)"
            )
        return self


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
"""Each starts with a literal: Python's re then skips to candidate places fast
(a leading \\b or case-insensitive flag makes every pattern ~20x slower)."""


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
        list[Literal["empty", "refusal", "truncated"]], AfterValidator(_unique)
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


class AuthConfig(Model):
    """Client keys: every request needs one of them (Authorization: Bearer <key> or
    x-api-key: <key>), checked by Envoy before any routing (docs/SECURITY.md)."""

    keys_file: Path
    """One client a line, `<name> <sha256 hex of its key>` (`switchyard keys add NAME`
    makes one); `#` starts a comment. Relative to the config file; read again when it
    changes, like the config itself."""
    clients: dict[str, str] = {}
    """Read from keys_file when the config loads (name by key digest); not written in the
    YAML."""

    @functools.cached_property
    def names(self) -> frozenset[str]:
        """The clients' names: the only values a client label takes in the metrics."""
        return frozenset(self.clients.values())


MODELS_PATH = "/v1/models"
"""Answered by Envoy itself with the model names clients may use (extproc.envoy_config)."""


class PassthroughConfig(Model):
    """A path the gateway forwards untouched to one backend, with that backend's key: opened
    on purpose, since every path not named here or in server.chat_paths gets a 404."""

    path: Annotated[str, Field(pattern=r"^/[^?#]*[^/?#]$")]
    """This path and everything below it (/v1/files covers /v1/files/abc), any method."""
    backend: Name
    """The one backend it goes to: never split by weight, so that requests such as
    embeddings always reach the same model."""


class Config(Model):
    server: ServerConfig = ServerConfig()
    envoy: EnvoyConfig = EnvoyConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    labels: list[LabelConfig] = []
    backends: list[BackendConfig] = []
    routes: list[RouteConfig] = []
    default_route: Name | None = None
    session: SessionConfig = SessionConfig()
    force_cohort: ForceCohortConfig = ForceCohortConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    quality: QualityConfig = QualityConfig()
    state: StateConfig = StateConfig()
    auth: AuthConfig | None = None
    """Client keys; without it anyone who reaches Envoy's listener spends the backends'
    keys (switchyard check warns when a backend has a credential)."""
    passthrough: list[PassthroughConfig] = []
    """Paths besides the chat paths that Envoy forwards (see PassthroughConfig)."""

    def route(self, name: str) -> RouteConfig:
        return next(route for route in self.routes if route.name == name)

    def backend(self, name: str) -> BackendConfig:
        return next(backend for backend in self.backends if backend.name == name)

    @property
    def processor_address(self) -> str:
        return self.envoy.processor or self.server.listen


def _cross_reference_issues(cfg: Config) -> list[ConfigIssue]:
    """Checks that span sections: names unique, references resolve."""
    issues: list[ConfigIssue] = []

    def unique(section: str, names: list[str]) -> None:
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name in seen:
                issues.append(ConfigIssue(f"{section}[{index}].name", f"duplicate name {name!r}"))
            seen.add(name)

    unique("labels", [label.name for label in cfg.labels])
    unique("backends", [backend.name for backend in cfg.backends])
    unique("routes", [route.name for route in cfg.routes])

    if cfg.labels and cfg.classifier.max_wait_ms >= cfg.envoy.message_timeout_ms:
        issues.append(
            ConfigIssue(
                "classifier.max_wait_ms",
                f"expected less than envoy.message_timeout_ms ({cfg.envoy.message_timeout_ms}), "
                "so that switchyard sheds load before Envoy gives up on it",
            )
        )
    if cfg.envoy.processor_tls is not None and cfg.processor_address.startswith("unix:"):
        issues.append(
            ConfigIssue(
                "envoy.processor_tls",
                f"expected a host:port processor address, not {cfg.processor_address!r} "
                "(a unix socket takes no TLS)",
            )
        )
    label_names = {label.name for label in cfg.labels}
    if cfg.classifier.fallback in label_names:
        issues.append(
            ConfigIssue("classifier.fallback", "expected a name that is not one of labels[]")
        )
    backend_names = {backend.name for backend in cfg.backends}
    known_labels = sorted(label_names | {cfg.classifier.fallback})
    for r, route in enumerate(cfg.routes):
        for b, weighted in enumerate(route.backends):
            if weighted.backend not in backend_names:
                issues.append(
                    ConfigIssue(
                        f"routes[{r}].backends[{b}].backend",
                        unknown("backend", weighted.backend, backend_names),
                    )
                )
        if route.cache.enabled and cfg.envoy.observe == "off":
            issues.append(
                ConfigIssue(
                    f"routes[{r}].cache.enabled",
                    "the cache fills from the responses switchyard observes: expected "
                    "envoy.observe all or canaries, not off",
                )
            )
        for path, labels in (
            route.match.label_conditions(f"routes[{r}].match") if route.match else ()
        ):
            for label in labels:
                if label not in label_names | {cfg.classifier.fallback}:
                    issues.append(
                        ConfigIssue(
                            path, unknown("label", label, known_labels)
                        )
                    )
        if route.canary:
            if route.canary.backend not in backend_names:
                issues.append(
                    ConfigIssue(
                        f"routes[{r}].canary.backend",
                        unknown("backend", route.canary.backend, backend_names),
                    )
                )
            elif route.canary.backend in {w.backend for w in route.backends}:
                issues.append(
                    ConfigIssue(
                        f"routes[{r}].canary.backend",
                        "expected a backend that is not already in the route's stable backends",
                    )
                )
            steps = route.canary.steps
            if steps and route.canary.percent not in [0.0, *steps]:
                issues.append(
                    ConfigIssue(
                        f"routes[{r}].canary.percent",
                        f"expected 0 or one of steps {steps}",
                    )
                )
        if route.shadow:
            issues += _shadow_issues(cfg, f"routes[{r}]", route)
        stable = {w.backend for w in route.backends}
        for f, fallback in enumerate(route.fallbacks):
            if fallback.backend not in backend_names:
                issues.append(
                    ConfigIssue(
                        f"routes[{r}].fallbacks[{f}].backend",
                        f"unknown backend {fallback.backend!r}",
                    )
                )
            elif fallback.backend in stable:
                issues.append(
                    ConfigIssue(
                        f"routes[{r}].fallbacks[{f}].backend",
                        "expected a backend that is not one of the route's own backends",
                    )
                )
    if cfg.routes:
        route_names = [route.name for route in cfg.routes]
        if cfg.default_route is None:
            issues.append(ConfigIssue("default_route", "expected the name of a route"))
        elif cfg.default_route not in route_names:
            issues.append(
                ConfigIssue(
                    "default_route",
                    unknown("route", cfg.default_route, route_names),
                )
            )
        elif cfg.route(cfg.default_route).match is not None:
            index = route_names.index(cfg.default_route)
            issues.append(ConfigIssue(f"routes[{index}].match", "the default route takes no match"))
        for r, route in enumerate(cfg.routes):
            if route.match is None and route.name != cfg.default_route:
                issues.append(
                    ConfigIssue(
                        f"routes[{r}].match", "expected a match (only default_route has none)"
                    )
                )
    issues += _gateway_issues(cfg, backend_names)
    return issues


def _gateway_issues(cfg: Config, backend_names: set[str]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if cfg.auth is not None and not cfg.envoy.xds:
        issues.append(
            ConfigIssue(
                "auth",
                "expected envoy.xds true: the client key check runs in the routes switchyard "
                "serves Envoy (with another controller's Envoy, authenticate clients there)",
            )
        )
    for r, route in enumerate(cfg.routes):
        if route.canary is not None and route.canary.allow.clients and cfg.auth is None:
            issues.append(
                ConfigIssue(
                    f"routes[{r}].canary.allow.clients",
                    "expected auth.keys_file: clients are known by their keys",
                )
            )
    taken = [*cfg.server.chat_paths, MODELS_PATH]
    for p, passthrough in enumerate(cfg.passthrough):
        if passthrough.backend not in backend_names:
            issues.append(
                ConfigIssue(
                    f"passthrough[{p}].backend",
                    f"unknown backend {passthrough.backend!r}; expected one of backends[].name: "
                    f"{sorted(backend_names)}",
                )
            )
        if passthrough.path in taken:
            issues.append(
                ConfigIssue(
                    f"passthrough[{p}].path",
                    f"{passthrough.path!r} is already served (a chat path, {MODELS_PATH} or an "
                    "earlier passthrough): expected another path",
                )
            )
        taken.append(passthrough.path)
    return issues


def _shadow_issues(cfg: Config, path: str, route: RouteConfig) -> list[ConfigIssue]:
    assert route.shadow is not None
    shadow = route.shadow.backend
    backend_names = {backend.name for backend in cfg.backends}
    if cfg.envoy.observe == "off":
        return [
            ConfigIssue(
                f"{path}.shadow",
                "expected envoy.observe all or canaries: a shadow's answers are only seen "
                "by observing them",
            )
        ]
    if shadow not in backend_names:
        return [
            ConfigIssue(
                f"{path}.shadow.backend",
                unknown("backend", shadow, backend_names),
            )
        ]
    if shadow in {w.backend for w in route.backends}:
        return [
            ConfigIssue(
                f"{path}.shadow.backend",
                "expected a backend that is not one of the route's stable backends (a copy "
                "to the backend that already answers shows nothing)",
            )
        ]
    if route.canary is not None and route.canary.backend != shadow:
        return [
            ConfigIssue(
                f"{path}.shadow.backend",
                f"expected the canary's backend {route.canary.backend!r}: the shadow phase "
                "is that canary's first phase",
            )
        ]
    if route.canary is not None and route.canary.percent != 0:
        return [
            ConfigIssue(
                f"{path}.canary.percent",
                "expected 0 with a shadow: the canary starts in its shadow phase and "
                "`switchyard rollout launch` takes it to its first step",
            )
        ]
    return []


def environment_issues(cfg: Config, environ: Mapping[str, str]) -> list[ConfigIssue]:
    """What a valid config still needs from where it runs: `switchyard check` warns of
    these, `switchyard check --env` refuses them.

    The key variables and CA files are Envoy's: run `check --env` with Envoy's
    environment and file system. The model is switchyard's (model_issues).
    """
    issues: list[ConfigIssue] = []
    for backend in cfg.backends:
        where = f'backends "{backend.name}"'
        if backend.tls and not backend.insecure_skip_verify:
            if backend.tls_ca_file is not None:
                ca, path, source = backend.tls_ca_file, f"{where}.tls_ca_file", "it"
            else:
                ca, path, source = cfg.envoy.ca_bundle, f"{where}.tls", "envoy.ca_bundle"
            if not ca.is_file() or not os.access(ca, os.R_OK):
                issues.append(
                    ConfigIssue(
                        path,
                        f"no way to verify {backend.host}'s certificate: {source} ({ca}) is not "
                        "a readable file; set tls_ca_file, or install the system CA bundle",
                    )
                )
        if backend.credential is not None and not environ.get(backend.credential.env):
            issues.append(
                ConfigIssue(
                    f"{where}.credential.env",
                    f"environment variable {backend.credential.env} is not set "
                    "(it holds this backend's key)",
                )
            )
    return issues + model_issues(cfg)


def config_warnings(cfg: Config) -> list[ConfigIssue]:
    """Valid, but probably not what was meant: labels no route uses, routes no request
    reaches (routes are tried in order, the first match wins)."""
    issues: list[ConfigIssue] = []
    used = {name for route in cfg.routes if route.match for name in route.match.label or []}
    for label in cfg.labels:
        if label.action == "route" and label.name not in used:
            issues.append(
                ConfigIssue(
                    f'labels "{label.name}"',
                    "no route's match names this label: its prompts take the default route",
                )
            )
    every_label = {label.name for label in cfg.labels if label.action == "route"}
    every_label.add(cfg.classifier.fallback)
    catch_all: str | None = None
    for route in cfg.routes:
        if route.match is None:
            continue
        if catch_all is not None:
            issues.append(
                ConfigIssue(
                    f'routes "{route.name}"',
                    f"no request reaches this route: route {catch_all!r} before it matches "
                    "every request",
                )
            )
        elif _matches_everything(route.match, every_label):
            catch_all = route.name
    spent = [backend.name for backend in cfg.backends if backend.credential is not None]
    if spent and cfg.auth is None:
        issues.append(
            ConfigIssue(
                "auth",
                f"backends {', '.join(spent)} carry a credential and no client auth is "
                "configured (auth.keys_file): whoever reaches Envoy's listener spends those keys",
            )
        )
    return issues


def _matches_everything(match: MatchConfig, every_label: set[str]) -> bool:
    if match.regex is not None:
        regex = re.compile(match.regex)
        return all(regex.search(text) for text in ("", "zq", "\nzq\n"))
    return match.label is not None and every_label <= set(match.label)


def model_issues(cfg: Config) -> list[ConfigIssue]:
    """Labels and the response cache need the encoder model: is it where the config says?"""
    model = cfg.classifier.model
    if not cfg.labels and not any(route.cache.enabled for route in cfg.routes):
        return []
    if not model.is_dir():
        found = f"{model} does not exist"
    else:
        # A fine-tuned classifier (labels.json) is one graph; encoders: one per subfolder.
        encoder = "minilm" if (model / "labels.json").is_file() else cfg.classifier.encoder
        needed = [model / "model.onnx"] if "minilm" in encoder else []
        needed += [model / "use" / "model.onnx"] if "use" in encoder else []
        missing = [str(path) for path in needed if not path.is_file()]
        if not missing:
            return []
        found = f"{model} has no {', '.join(missing)} (encoder {cfg.classifier.encoder})"
    return [
        ConfigIssue(
            "classifier.model",
            f"{found} (a relative classifier.model is resolved from the config file's "
            f"folder); build it with `switchyard build-model --out {model}` or point "
            "classifier.model at a built model",
        )
    ]


def insecure_backends(cfg: Config) -> list[str]:
    return [backend.name for backend in cfg.backends if backend.insecure_skip_verify]


def parse_config(data: Any, source: str, document: YamlDocument | None = None) -> Config:
    """Validates already-parsed YAML data; raises ConfigError naming every problem.

    With the YamlDocument the data came from, each problem also carries its line.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", "expected a mapping at the top level")])
    document = document or YamlDocument(data)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        issues = [
            ConfigIssue(
                named_path(tuple(error["loc"]), data),
                explain(error, Config),
                document.line_of(tuple(error["loc"])),
            )
            for error in exc.errors()
        ]
        raise ConfigError(source, issues) from None
    issues = _cross_reference_issues(cfg)
    if issues:
        raise ConfigError(source, [located(issue, document) for issue in issues])
    return cfg


def _read(path: Path) -> YamlDocument:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, [ConfigIssue("", "expected UTF-8 text")]) from None
    return read_yaml(text, source)


def load_config(path: Path | str) -> Config:
    """Reads and validates a switchyard.yaml; relative paths resolve against its folder."""
    path = Path(path)
    document = _read(path)
    cfg = parse_config(document.data, str(path), document)
    return _with_clients(_resolve_paths(cfg, path.parent), str(path))


def load_values_config(path: Path | str) -> Config:
    """The `config:` part of a Helm values file (helm/switchyard), validated like a
    switchyard.yaml; relative paths resolve against the values file's folder."""
    path = Path(path)
    document = _read(path)
    source = f"{path} (config:)"
    if not isinstance(document.data, dict) or "config" not in document.data:
        raise ConfigError(source, [ConfigIssue("config", "expected a config: mapping")])
    part = YamlDocument(
        document.data["config"],
        {loc[1:]: line for loc, line in document.lines.items() if loc[:1] == ("config",)},
    )
    cfg = parse_config(part.data, source, part)
    return _with_clients(_resolve_paths(cfg, path.parent), source)


def _with_clients(cfg: Config, source: str) -> Config:
    """The config with auth.clients read from auth.keys_file (part of the config)."""
    if cfg.auth is None:
        return cfg
    if cfg.auth.clients:
        issue = ConfigIssue("auth.clients", "expected no clients here: they come from keys_file")
        raise ConfigError(source, [issue])
    auth = cfg.auth.model_copy(update={"clients": read_keys_file(cfg.auth.keys_file)})
    return cfg.model_copy(update={"auth": auth})


KEY_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,62})\s+(?P<digest>[0-9a-f]{64})$")


def read_keys_file(path: Path) -> dict[str, str]:
    """The clients in a keys file, by the SHA-256 hex digest of their key."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read file: {exc.strerror}")]) from None
    clients: dict[str, str] = {}
    issues: list[ConfigIssue] = []
    names: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = KEY_LINE.match(line)
        if match is None:
            issues.append(
                ConfigIssue(
                    f"line {number}",
                    "expected `<name> <sha256 hex of the key>` (64 lower-case hex digits)",
                )
            )
            continue
        name, digest = match["name"], match["digest"]
        if name in names or digest in clients:
            issues.append(ConfigIssue(f"line {number}", f"duplicate client or key ({name!r})"))
            continue
        names.add(name)
        clients[digest] = name
    if issues:
        raise ConfigError(source, issues)
    return clients


def _resolve_paths(cfg: Config, base: Path) -> Config:
    """Relative file paths (the model, TLS files) resolve against the config file's folder."""

    def resolved(section: Model, *fields: str) -> Any:
        update = {
            name: (base / getattr(section, name)).resolve()
            for name in fields
            if not getattr(section, name).is_absolute()
        }
        return section.model_copy(update=update) if update else section

    server, envoy = cfg.server, cfg.envoy
    if server.tls is not None:
        tls = resolved(server.tls, "cert_file", "key_file", "client_ca_file")
        server = server.model_copy(update={"tls": tls})
    if envoy.processor_tls is not None:
        tls = resolved(envoy.processor_tls, "cert_file", "key_file", "ca_file")
        envoy = envoy.model_copy(update={"processor_tls": tls})
    auth = cfg.auth
    if auth is not None:
        auth = resolved(auth, "keys_file")
    state = cfg.state
    if state.tls_ca_file is not None:
        state = resolved(state, "tls_ca_file")
    backends = [
        resolved(backend, "tls_ca_file") if backend.tls_ca_file is not None else backend
        for backend in cfg.backends
    ]
    return cfg.model_copy(
        update={
            "classifier": resolved(cfg.classifier, "model"),
            "server": server,
            "envoy": envoy,
            "state": state,
            "auth": auth,
            "backends": backends,
        }
    )
