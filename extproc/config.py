"""The one config model: switchyard.yaml, loaded and validated here and nowhere else.

Every default lives in this module. The server compiles a loaded Config into a
Runtime (extproc.request.runtime); the Envoy renderer (envoy/render.py) reads the same
Config. Errors name the file, the key path and what was expected.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from extproc.errors import ConfigError, ConfigIssue

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
_SESSION_SOURCE = re.compile(r"^(header:[a-z0-9-]+|cookie:[A-Za-z0-9_.-]+|user|first_message)$")


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


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Model):
    listen: str = "127.0.0.1:50051"
    """Where the ext_proc gRPC server listens: host:port or unix:/path."""
    metrics_listen: str = "127.0.0.1:9464"
    """HTTP address of /metrics (Prometheus) and /rollout (operator actions)."""
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
    """Path prefixes of chat requests; other paths pass through untouched."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _check_address(value, allow_unix=True)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics(cls, value: str) -> str:
        return _check_address(value, allow_unix=False)


class EnvoyConfig(Model):
    listen: str = "127.0.0.1:10000"
    admin: str = "127.0.0.1:9901"
    processor: str | None = None
    """Where Envoy reaches switchyard; defaults to server.listen."""
    message_timeout_ms: int = Field(default=1000, ge=10, le=60_000)
    failure_mode_allow: bool = True
    """Fail open: with switchyard down or slow, requests go to the default route."""
    upstream_timeout_s: float = Field(default=120.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    """Retries on connect failure or reset before the upstream answered."""
    observe: Literal["all", "canaries", "off"] = "all"
    """Which responses Envoy shows switchyard in observability mode (the A/B numbers:
    tokens, cost, latency; the canary analysis): every routed response, only those of
    routes with a canary (the analysis still works; about half of switchyard's CPU per
    request is observing), or none (no A/B numbers, no automatic rollback)."""
    observe_close_timeout_ms: int = Field(default=500, ge=100, le=5000)

    @field_validator("listen", "admin")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_address(value, allow_unix=False)

    @field_validator("processor")
    @classmethod
    def _processor(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value, allow_unix=True)


class ClassifierConfig(Model):
    model: Path = Path("build/model")
    """Directory with model.onnx and tokenizer.json, relative to the config file."""
    encoder: Literal["minilm", "use", "minilm+use"] = "use"
    """Sentence encoder(s) inside `model` (docs/CLASSIFIER.md compares them): USE multilingual
    v3 (16 languages; the default: best French, as good in English, fastest), all-MiniLM-L6-v2
    (English), or both with their scores averaged (best in English, ~1 ms more per prompt)."""
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    """Score under which a prompt gets the fallback. Omitted: calibrated from the labels'
    own examples when the model loads (`switchyard check --model` prints it and why)."""
    fallback: Name = "other"
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


class PriceConfig(Model):
    prompt_per_1m: float = Field(ge=0)
    completion_per_1m: float = Field(ge=0)


class BackendConfig(Model):
    name: Name
    address: str
    tls: bool = False
    price: PriceConfig | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_address(value, allow_unix=False)


class HeaderMatch(Model):
    name: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]
    value: str


class MatchConfig(Model):
    """Exactly one condition; a route's match is true when it holds."""

    label: list[Name] | None = None
    keywords: list[Annotated[str, Field(min_length=1)]] | None = None
    regex: str | None = None
    model: list[str] | None = None
    header: HeaderMatch | None = None

    @field_validator("label", "model", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

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
    def _exactly_one(self) -> MatchConfig:
        present = [key for key, value in self if value is not None]
        if len(present) != 1:
            raise ValueError(
                "expected exactly one of label, keywords, regex, model, header"
                f" (got {', '.join(present) or 'none'})"
            )
        return self


class WeightedBackend(Model):
    backend: Name
    weight: int = Field(default=1, ge=1, le=10_000)


class HoldConfig(Model):
    seconds: float = Field(default=300.0, ge=0)
    requests: int = Field(default=200, ge=0)


class AllowlistConfig(Model):
    sessions: list[str] = []
    users: list[str] = []


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

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("expected strictly increasing percentages")
        return steps


class RouteConfig(Model):
    name: Name
    match: MatchConfig | None = None
    backends: list[WeightedBackend] = Field(min_length=1)
    canary: CanaryConfig | None = None


class SessionConfig(Model):
    sources: list[str] = ["header:x-session-id", "cookie:session_id", "user", "first_message"]
    """Where the session key comes from, first found wins."""

    @field_validator("sources")
    @classmethod
    def _sources(cls, sources: list[str]) -> list[str]:
        for source in sources:
            if not _SESSION_SOURCE.match(source):
                raise ValueError(
                    f"{source!r}: expected header:<name>, cookie:<name>, user or first_message"
                )
        return sources


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
                        f"unknown backend {weighted.backend!r}; expected one of backends[].name: "
                        f"{sorted(backend_names)}",
                    )
                )
        if route.match and route.match.label:
            for label in route.match.label:
                if label not in label_names | {cfg.classifier.fallback}:
                    issues.append(
                        ConfigIssue(
                            f"routes[{r}].match.label",
                            f"unknown label {label!r}; expected one of {known_labels}",
                        )
                    )
        if route.canary:
            if route.canary.backend not in backend_names:
                issues.append(
                    ConfigIssue(
                        f"routes[{r}].canary.backend",
                        f"unknown backend {route.canary.backend!r}",
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
    if cfg.routes:
        route_names = [route.name for route in cfg.routes]
        if cfg.default_route is None:
            issues.append(ConfigIssue("default_route", "expected the name of a route"))
        elif cfg.default_route not in route_names:
            issues.append(
                ConfigIssue(
                    "default_route",
                    f"unknown route {cfg.default_route!r}; expected one of {route_names}",
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
    return issues


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def parse_config(data: Any, source: str) -> Config:
    """Validates already-parsed YAML data; raises ConfigError naming every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", "expected a mapping at the top level")])
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check its spelling and indentation)"
            issues.append(ConfigIssue(_key_path(error["loc"]), message))
        raise ConfigError(source, issues) from None
    issues = _cross_reference_issues(cfg)
    if issues:
        raise ConfigError(source, issues)
    return cfg


def load_config(path: Path | str) -> Config:
    """Reads and validates a switchyard.yaml; relative model paths resolve against its folder."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read file: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigIssue("", f"{where}invalid YAML: {problem}")]) from None
    cfg = parse_config(data, source)
    if not cfg.classifier.model.is_absolute():
        model_dir = (path.parent / cfg.classifier.model).resolve()
        cfg = cfg.model_copy(
            update={"classifier": cfg.classifier.model_copy(update={"model": model_dir})}
        )
    return cfg
