"""Checks of a valid config against where it runs: files, environment variables, the model."""

from __future__ import annotations

import os
from collections.abc import Mapping

from extproc.config.model import Config
from extproc.errors import ConfigIssue


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
