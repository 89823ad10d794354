"""Reading a config file: YAML in, a validated Config out, or one ConfigError naming every
problem (file, line, key path, what was expected).

Relative file paths (classifier.model, the TLS and CA files, auth.keys_file) resolve from
the folder of the config file (of the values file, for `switchyard check --values`), never
from the working directory: every command reads them the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from extproc.config.fields import Model
from extproc.config.issues import explain, located, named_path
from extproc.config.model import Config
from extproc.config.references import cross_reference_issues
from extproc.config.yaml_document import YamlDocument, read_yaml
from extproc.errors import ConfigError, ConfigIssue


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
    issues = cross_reference_issues(cfg)
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
