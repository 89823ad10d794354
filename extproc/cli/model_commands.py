"""Commands on the classifier model: build-model, classify, eval, tune."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from extproc.cli.common import load_or_exit, require_model
from extproc.config.edit import write_threshold
from extproc.errors import ConfigError


def cmd_build_model(args: argparse.Namespace) -> int:
    from classifier.build import build_model
    from classifier.build_use import build_use_model
    from classifier.labels import USE_SUBDIR

    path = build_model(Path(args.out))
    build_use_model(path / USE_SUBDIR)
    print(f"model written to {path} (multilingual encoder in {path / USE_SUBDIR})")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from extproc.request.runtime import load_label_classifier

    config = load_or_exit(args.config)
    require_model(config, args.config)
    classifier = load_label_classifier(config)
    if args.explain:
        print(f"encoder {config.classifier.encoder}")
        for line in classifier.explain_threshold().splitlines():
            print(f"  {line}")
    for prediction in classifier.classify(args.text):
        runner_up = (
            f"  (runner-up {prediction.runner_up} {prediction.runner_up_score:.3f})"
            if prediction.runner_up
            else ""
        )
        why = ""
        if args.explain:
            side = "<" if prediction.label == config.classifier.fallback else ">="
            asked = ", with the second opinion" if prediction.second_opinion else ""
            best = prediction.runner_up if side == "<" else prediction.label
            limit = classifier.thresholds[classifier.labels.index(best)] if best else 0.0
            why = f"  [best score {side} {best}'s threshold {limit:.3f}{asked}]"
        print(f"{prediction.label} {prediction.score:.3f}{runner_up}{why}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from classifier.evaluate import evaluate, format_report, load_jsonl
    from extproc.request.runtime import load_label_classifier

    config = load_or_exit(args.config)
    require_model(config, args.config)
    rows = load_jsonl(Path(args.data))
    report = evaluate(load_label_classifier(config), rows, fallback=config.classifier.fallback)
    print(json.dumps(report.to_json()) if args.json else format_report(report))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from classifier.evaluate import load_jsonl
    from classifier.tune import choose, format_table, guesses_for, sweep
    from extproc.request.runtime import load_label_classifier

    config = load_or_exit(args.config)
    require_model(config, args.config)
    fallback = config.classifier.fallback
    rows = load_jsonl(Path(args.data))
    if not any(label == fallback for _, label in rows):
        print(
            f"{args.data}: no out-of-scope rows (label {fallback!r}); the table needs some",
            file=sys.stderr,
        )
        return 2
    classifier = load_label_classifier(config)
    table = sweep(guesses_for(classifier, rows), fallback)
    chosen = choose(table, target_oos_recall=args.target_oos_recall, max_misroute=args.max_misroute)
    print(f"{args.data}: {len(rows)} rows; thresholds now:")
    for line in classifier.explain_threshold().splitlines():
        print(f"  {line}")
    print(format_table(table, chosen))
    if chosen is None:
        print("no threshold meets the target on this dev set", file=sys.stderr)
        return 1
    print(
        f"chosen threshold {chosen.threshold:.3f}: in-scope {chosen.in_scope_accuracy:.1%}, "
        f"out-of-scope recall {chosen.oos_recall:.1%}, misroute {chosen.misroute:.1%}"
    )
    if args.write:
        try:
            write_threshold(Path(args.config), chosen.threshold)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(f"{args.config}: classifier.threshold set to {chosen.threshold:.3f}")
    return 0
