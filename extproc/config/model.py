"""Config: the whole switchyard.yaml, one field per top-level section."""

from __future__ import annotations

from extproc.config.fields import Model, Name
from extproc.config.rollout import (
    AnalysisConfig,
    ForceCohortConfig,
    QualityConfig,
    SessionConfig,
)
from extproc.config.routing import BackendConfig, ClassifierConfig, LabelConfig, RouteConfig
from extproc.config.server import (
    AuthConfig,
    EnvoyConfig,
    PassthroughConfig,
    ServerConfig,
    StateConfig,
)


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
