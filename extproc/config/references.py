"""Checks that span sections, run once the sections are valid on their own.

cross_reference_issues: errors (a duplicate name, a route naming an unknown backend...);
config_warnings: valid, but probably not what was meant.
"""

from __future__ import annotations

import re

from extproc.config.issues import unknown
from extproc.config.model import Config
from extproc.config.routing import MatchConfig, RouteConfig
from extproc.config.server import MODELS_PATH
from extproc.errors import ConfigIssue


def cross_reference_issues(cfg: Config) -> list[ConfigIssue]:
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
    issues += _worker_issues(cfg)
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
                    issues.append(ConfigIssue(path, unknown("label", label, known_labels)))
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


def _worker_issues(cfg: Config) -> list[ConfigIssue]:
    workers = cfg.server.workers
    if workers == 1:
        return []
    issues = []
    if cfg.state.store != "redis":
        issues.append(
            ConfigIssue(
                "server.workers",
                f"{workers} workers need state.store: redis (each worker is a member of the "
                "fleet, like a replica, and they share the rollout state there); expected "
                "state.store: redis, or workers: 1",
            )
        )
    addresses = {
        "server.listen": cfg.server.listen,
        "server.metrics_listen": cfg.server.metrics_listen,
        "envoy.processor": cfg.envoy.processor,
    }
    ports: dict[str, range] = {}
    for key, address in addresses.items():
        if address is None or address.startswith("unix:"):
            continue
        port = int(address.rpartition(":")[2])
        ports[key] = range(port, port + workers)
        if ports[key].stop - 1 > 65535:
            issues.append(
                ConfigIssue(
                    "server.workers",
                    f"{workers} workers need {key}'s port and the {workers - 1} after it "
                    f"({_span(ports[key])}), beyond 65535: expected a lower port or fewer "
                    "workers",
                )
            )
    serving, metrics = ports.get("server.listen"), ports.get("server.metrics_listen")
    if serving and metrics and set(serving) & set(metrics):
        issues.append(
            ConfigIssue(
                "server.workers",
                f"worker i serves on server.listen's port + i ({_span(serving)}) and "
                f"server.metrics_listen's port + i ({_span(metrics)}): expected the two "
                "ranges apart",
            )
        )
    return issues


def _span(ports: range) -> str:
    return f"{ports.start}-{ports.stop - 1}"


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
    issues += _repeated_examples(cfg)
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
    if cfg.server.workers > 1 and not cfg.quality.share_ids:
        issues.append(
            ConfigIssue(
                "quality.share_ids",
                "false with several workers: POST /feedback reaches worker 0, which knows only "
                "the request ids it served itself (about 1 in server.workers)",
            )
        )
    return issues


def _repeated_examples(cfg: Config) -> list[ConfigIssue]:
    """Examples given twice (the same words, whatever the case and spacing): in two labels
    a prompt like it goes to whichever scores higher by a hair; in one label each copy
    finds the other when left out, so the calibration sees a perfect match where real
    prompts have none."""
    issues: list[ConfigIssue] = []
    first: dict[str, tuple[str, int]] = {}
    for label in cfg.labels:
        for index, example in enumerate(label.examples):
            key = " ".join(example.casefold().split())
            where = f'labels "{label.name}".examples[{index}]'
            if key not in first:
                first[key] = (label.name, index)
                continue
            name, at = first[key]
            why = (
                "a repeat adds nothing and makes the label look tighter than it is"
                if name == label.name
                else "a prompt like it goes to whichever label scores higher; keep it in one"
            )
            issues.append(ConfigIssue(where, f'repeats labels "{name}".examples[{at}]: {why}'))
    return issues


def _matches_everything(match: MatchConfig, every_label: set[str]) -> bool:
    if match.regex is not None:
        regex = re.compile(match.regex)
        return all(regex.search(text) for text in ("", "zq", "\nzq\n"))
    return match.label is not None and every_label <= set(match.label)


def insecure_backends(cfg: Config) -> list[str]:
    return [backend.name for backend in cfg.backends if backend.insecure_skip_verify]
