"""Compiling a validated Config into what the request path reads, and swapping it safely."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from extproc.config import Config
from extproc.errors import ConfigError, ConfigIssue
from extproc.request.adapt import BackendAdapter, compile_adapters
from extproc.request.classify import BatchingClassifier
from extproc.request.metrics import RequestMetrics
from extproc.request.routing import Router
from extproc.rollout.canary import Rollouts

if TYPE_CHECKING:
    from classifier.labels import LabelClassifier, SequenceClassifier

log = logging.getLogger("switchyard.runtime")


@dataclass(frozen=True)
class Runtime:
    config: Config
    router: Router
    classifier: BatchingClassifier | None
    """None when no route or label depends on a label: rules-only routing loads no model."""
    adapters: dict[str, BackendAdapter]
    """Per backend name, for the backends whose requests switchyard rewrites."""
    threshold_note: str = ""
    """The classifier's threshold and how it was chosen (empty without a classifier)."""


def load_label_classifier(config: Config) -> LabelClassifier | SequenceClassifier:
    """The classifier the config's labels and model describe (loads the model)."""
    # Imported here: rules-only routing never loads onnxruntime.
    from classifier.labels import Label, load_classifier

    spec = config.classifier
    labels = [
        Label(
            name=label.name,
            examples=tuple(label.examples),
            description=label.description,
            threshold=label.threshold,
        )
        for label in config.labels
    ]
    classifier = load_classifier(
        spec.model,
        labels,
        threshold=spec.threshold,
        fallback=spec.fallback,
        max_tokens=spec.max_tokens,
        threads=config.server.classify_threads,
        encoder=spec.encoder,
    )
    for line in classifier.explain_threshold().splitlines():
        log.info("classifier: encoder %s; %s", spec.encoder, line)
    return classifier


def build_runtime(config: Config, rollouts: Rollouts, metrics: RequestMetrics) -> Runtime:
    """Everything that can fail (model loading included) happens here, before any swap."""
    router = Router(config, rollouts)
    classifier = None
    note = ""
    if router.needs_label:
        spec = config.classifier
        labels = load_label_classifier(config)
        note = labels.explain_threshold()
        classifier = BatchingClassifier(
            labels,
            max_batch=spec.max_batch,
            cache_size=spec.cache_size,
            max_wait_s=spec.max_wait_ms / 1000,
            observe_latency=metrics.observe_classification,
            observe_degraded=lambda mode, count: metrics.classifier_degraded.labels(mode).inc(
                count
            ),
            observe_second_opinions=metrics.classifier_second_opinions.inc,
        )
    return Runtime(
        config=config,
        router=router,
        classifier=classifier,
        adapters=compile_adapters(config),
        threshold_note=note,
    )


def check_reload(source: str, old: Runtime, new: Runtime) -> None:
    """Before new replaces old: raise ConfigError when new would block less of a block
    label's own examples than old does (leave-one-out), unless that label says `force:
    true`; else log what moves, one line per label, and warn when a label's examples move
    more than classifier.warn_moved_percent."""
    if old.classifier is None or new.classifier is None:
        return
    from classifier.changes import moves
    from classifier.labels import LabelClassifier

    before, after = old.classifier.classifier, new.classifier.classifier
    if not isinstance(before, LabelClassifier) or not isinstance(after, LabelClassifier):
        return
    issues = block_issues(before, after, new.config)
    if issues:
        raise ConfigError(source, issues)
    limit = new.config.classifier.warn_moved_percent
    for change in moves(before, after):
        if change.examples and 100 * change.examples_moved_share > limit:
            log.warning(
                "reload: more than %g %% of label %s's examples change decision: %s",
                limit,
                change.label,
                change.explain(),
            )
        else:
            log.info("reload: %s", change.explain())


def block_issues(
    before: LabelClassifier, after: LabelClassifier, config: Config
) -> list[ConfigIssue]:
    """One issue per block label of config (without force) whose leave-one-out recall is
    lower in after than in before."""
    from classifier.changes import weakened

    blocks = {
        label.name: index
        for index, label in enumerate(config.labels)
        if label.action == "block" and not label.force
    }
    return [
        ConfigIssue(
            f"labels[{blocks[change.label]}]",
            f"{change.label} (action: block): {change.explain()}; a change that lets more of "
            "what it blocks through is refused (set force: true on the label to accept it)",
        )
        for change in weakened(before, after, blocks)
    ]


class RuntimeHolder:
    """The runtimes the request path decides with, by config version.

    Envoy matches a request with one route table for its whole life and says which config
    version that table is (extproc.envoy_config); while Envoy moves from one version to the
    next, requests of both arrive, and each is decided with its own version's runtime.
    Streams that name no version (an Envoy whose config switchyard does not serve) get the
    current one."""

    def __init__(self, runtime: Runtime, version: str) -> None:
        self.current = runtime
        self._by_version = {version: runtime}

    def for_version(self, version: str | None) -> Runtime:
        if version is None:
            return self.current
        return self._by_version.get(version, self.current)

    def holds(self, version: str) -> bool:
        return version in self._by_version

    def offer(self, version: str, runtime: Runtime) -> None:
        """Envoy may match requests with this version from now on."""
        self._by_version[version] = runtime

    def withdraw(self, version: str) -> None:
        """Envoy refused this version: no request is matched with it."""
        if self._by_version.get(version) is not self.current:
            self._by_version.pop(version, None)

    def switch(self, version: str) -> None:
        """Envoy runs this version now; the others only serve requests already under way."""
        self.current = self._by_version[version]

    def retire_all_but(self, version: str) -> None:
        # Streams that already hold an older runtime finish with it; its classifier and
        # worker thread go when the last of them lets go.
        self._by_version = {version: self._by_version[version]}
