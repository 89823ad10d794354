"""The process's own sections: server, envoy, state, auth and passthrough."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from extproc.config.fields import Model, Name, check_address, is_loopback


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
    workers: int = Field(default=1, ge=1, le=64)
    """Processes serving ext_proc, for a pod whose CPU request is more than one core (one
    Python process uses one core at most). Worker i > 0 serves ext_proc on `listen`'s port
    + i (a unix socket: its path + `.i`) and /metrics on `metrics_listen`'s port + i;
    worker 0 alone serves xDS, the admin HTTP API and watches the config file. More than
    one needs state.store redis: every worker is then a member of the fleet. Takes effect
    when switchyard restarts (Envoy's bootstrap names every worker). docs/WORKERS.md."""
    chat_paths: list[Annotated[str, Field(pattern=r"^/")]] = ["/v1/chat/completions"]
    """Path prefixes of chat requests (POST). Envoy forwards no other path, except those
    listed in `passthrough`; GET /v1/models it answers itself."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return check_address(value, allow_unix=True)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics(cls, value: str) -> str:
        return check_address(value, allow_unix=False)

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
    observe_sample: float = Field(default=0.1, gt=0, le=1)
    """The share of stable responses observed (every canary response is, and every one a
    cache fill needs): below 1, the A/B totals, tokens and cost of stable are estimates
    scaled from the sample (labelled so in the report; Envoy's own counts stay exact), and
    the analysis compares the canary with stable's sample. 0.1 by default: observing costs
    about half of switchyard's CPU per request, and a tenth of stable's responses still
    outnumbers the canary's at every step below 50 % (docs/BENCHMARKS.md shows the trade).
    1 observes every response (exact switchyard totals, feedback on every request)."""
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
        return None if value is None else check_address(value, allow_unix=False)

    @field_validator("admin")
    @classmethod
    def _admin(cls, value: str) -> str:
        check_address(value, allow_unix=False)
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
        return None if value is None else check_address(value, allow_unix=True)

    @model_validator(mode="after")
    def _distinct_ports(self) -> EnvoyConfig:
        if self.stats_listen is not None and self.stats_listen in (self.listen, self.admin):
            raise ValueError("stats_listen: expected an address of its own")
        return self


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
