"""The one config model: switchyard.yaml, loaded and validated here and nowhere else.

Every default lives in the models (fields, server, routing, rollout; model.Config holds
them together). The server compiles a loaded Config into a Runtime
(extproc.request.runtime); the Envoy renderer (extproc.envoy_config) reads the same Config.

- loading: read the YAML, validate, resolve relative paths, read auth.keys_file;
- references: checks between sections (errors), and config_warnings;
- environment: checks against the files and environment variables where it runs;
- issues, yaml_document: errors that name the file, the line, the key path and what was
  expected;
- edit: `switchyard tune --write` sets classifier.threshold in the file's text.

Everything is importable from here: `from extproc.config import Config, load_config`.
"""

from extproc.config.environment import environment_issues, model_issues
from extproc.config.fields import NAME_PATTERN, Model, Name, is_loopback
from extproc.config.loading import (
    KEY_LINE,
    load_config,
    load_values_config,
    parse_config,
    read_keys_file,
)
from extproc.config.model import Config
from extproc.config.references import config_warnings, insecure_backends
from extproc.config.rollout import (
    QUALITY_CHECKS,
    AllowlistConfig,
    AnalysisConfig,
    CanaryConfig,
    ForceCohortConfig,
    HoldConfig,
    QualityAnalysisConfig,
    QualityCheckName,
    QualityConfig,
    RouteAnalysisConfig,
    SessionConfig,
    ShadowConfig,
)
from extproc.config.routing import (
    BackendConfig,
    CacheConfig,
    ClassifierConfig,
    CredentialConfig,
    FallbackConfig,
    FallbackTrigger,
    HeaderMatch,
    LabelConfig,
    MatchConfig,
    PriceConfig,
    RouteConfig,
    WeightedBackend,
)
from extproc.config.server import (
    MODELS_PATH,
    AuthConfig,
    EnvoyConfig,
    PassthroughConfig,
    ProcessorTlsConfig,
    ServerConfig,
    ServerTlsConfig,
    StateConfig,
)

__all__ = [
    "KEY_LINE",
    "MODELS_PATH",
    "NAME_PATTERN",
    "QUALITY_CHECKS",
    "AllowlistConfig",
    "AnalysisConfig",
    "AuthConfig",
    "BackendConfig",
    "CacheConfig",
    "CanaryConfig",
    "ClassifierConfig",
    "Config",
    "CredentialConfig",
    "EnvoyConfig",
    "FallbackConfig",
    "FallbackTrigger",
    "ForceCohortConfig",
    "HeaderMatch",
    "HoldConfig",
    "LabelConfig",
    "MatchConfig",
    "Model",
    "Name",
    "PassthroughConfig",
    "PriceConfig",
    "ProcessorTlsConfig",
    "QualityAnalysisConfig",
    "QualityCheckName",
    "QualityConfig",
    "RouteAnalysisConfig",
    "RouteConfig",
    "ServerConfig",
    "ServerTlsConfig",
    "SessionConfig",
    "ShadowConfig",
    "StateConfig",
    "WeightedBackend",
    "config_warnings",
    "environment_issues",
    "insecure_backends",
    "is_loopback",
    "load_config",
    "load_values_config",
    "model_issues",
    "parse_config",
    "read_keys_file",
]
