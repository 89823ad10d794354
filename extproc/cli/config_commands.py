"""Commands on config files: check (and check --diff), keys add, envoy."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
from pathlib import Path

from extproc.cli.common import load_or_exit, warn_insecure
from extproc.config import (
    KEY_LINE,
    config_warnings,
    environment_issues,
    load_values_config,
    read_keys_file,
)
from extproc.errors import ConfigError


def cmd_check(args: argparse.Namespace) -> int:
    if args.diff:
        return _check_diff(args.diff[0], args.diff[1], args.prompts)
    source = args.values or args.config
    config = load_values_config(args.values) if args.values else load_or_exit(args.config)
    warn_insecure(config)
    problems = environment_issues(config, os.environ)
    if problems and args.env:
        print(ConfigError(source, problems), file=sys.stderr)
        return 2
    for issue in [*problems, *config_warnings(config)]:
        print(f"WARNING: {source}: {issue}", file=sys.stderr)
    if args.model:
        from extproc.request.metrics import RequestMetrics
        from extproc.request.runtime import build_runtime
        from extproc.rollout.canary import Rollouts

        runtime = build_runtime(config, Rollouts(), RequestMetrics())
        if runtime.threshold_note:
            print(f"classifier: encoder {config.classifier.encoder}")
            for line in runtime.threshold_note.splitlines():
                print(f"  {line}")
    routes = ", ".join(route.name for route in config.routes) or "none"
    unchecked = (
        f"; {len(problems)} environment warning(s) above, which `check --env` refuses"
        if problems
        else ""
    )
    print(f"{source}: OK ({len(config.labels)} labels, routes: {routes}){unchecked}")
    return 0


def _read_prompts(path: str) -> list[str]:
    """One prompt per line; a JSON object line gives its "text" (a JSONL eval set)."""
    prompts = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("{"):
            line = str(json.loads(line).get("text", ""))
        if line:
            prompts.append(line)
    return prompts


def _check_diff(old_path: str, new_path: str, prompts_path: str | None) -> int:
    """What NEW changes for each label of OLD, and whether a reload would be refused."""
    from classifier.changes import moves
    from classifier.labels import LabelClassifier
    from extproc.request.runtime import block_issues, load_label_classifier

    old_config, new_config = load_or_exit(old_path), load_or_exit(new_path)
    try:
        prompts = _read_prompts(prompts_path) if prompts_path else []
    except (OSError, ValueError, AttributeError) as exc:
        print(f"switchyard: --prompts {prompts_path}: {exc}", file=sys.stderr)
        return 2
    old, new = load_label_classifier(old_config), load_label_classifier(new_config)
    if not isinstance(old, LabelClassifier) or not isinstance(new, LabelClassifier):
        print("switchyard: --diff compares example-based classifiers only", file=sys.stderr)
        return 2
    print(f"{old_path} -> {new_path}" + (f", {len(prompts)} prompts" if prompts else ""))
    for change in moves(old, new, prompts):
        print(f"  {change.explain()}")
    issues = block_issues(old, new, new_config)
    if issues:
        print(ConfigError(new_path, issues), file=sys.stderr)
        return 1
    print(f"{new_path}: a reload from {old_path} would be accepted")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    key = "sy-" + secrets.token_urlsafe(32)
    line = f"{args.name} {hashlib.sha256(key.encode()).hexdigest()}"
    if KEY_LINE.match(line) is None:
        print(
            f"keys: {args.name!r}: expected a name of letters, digits, '.', '_' or '-'",
            file=sys.stderr,
        )
        return 2
    if args.file is not None:
        path = Path(args.file)
        try:
            known = read_keys_file(path) if path.exists() else {}
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        if args.name in known.values():
            print(f"keys: {path}: client {args.name!r} is already there", file=sys.stderr)
            return 2
        text = path.read_text() if path.exists() else ""
        separator = "" if not text or text.endswith("\n") else "\n"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text + separator + line + "\n")
        os.replace(tmp, path)  # whole: the watcher never reads half a file
        print(f"added {args.name} to {path}", file=sys.stderr)
    else:
        print(f"add this line to the keys file: {line}", file=sys.stderr)
    # The key itself: shown this once, stored nowhere.
    print(key)
    return 0


def cmd_envoy(args: argparse.Namespace) -> int:
    from extproc.envoy_config import ads_bootstrap, static_bootstrap, yaml_text

    config = load_or_exit(args.config)
    warn_insecure(config)
    try:
        bootstrap = static_bootstrap(config) if args.static else ads_bootstrap(config)
    except ConfigError as exc:
        print(ConfigError(args.config, exc.issues), file=sys.stderr)
        return 2
    text = yaml_text(bootstrap)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
