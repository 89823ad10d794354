"""Routing quality of each encoder on the project's own label sets (docs/CLASSIFIER.md).

Runs every set under the old default (all-MiniLM-L6-v2, threshold 0.22) and each encoder
with the calibrated threshold (no threshold in the config), and prints a Markdown table:
accuracy, in-scope accuracy and out-of-scope recall per set, and the thresholds chosen
(one number, or the labels' range).
`python bench/quality.py [--sets NAME,...] [--encoders NAME,...]`; needs `make model`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from classifier.evaluate import (
    evaluate,
    evaluate_conversations,
    load_conversations_jsonl,
    load_jsonl,
)
from classifier.labels import Label, LabelClassifier, load_classifier
from classifier.sequence import SequenceClassifier

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "eval"
SETS_DIR = DATA / "sets"
# Label sets with dev prompts in NAME.jsonl and held-out prompts in heldout_NAME.jsonl.
WITH_HELD_OUT = (
    "intents60",
    "bank40",
    "fr_support22",
    "exam14",
    "fr_intents40",
    "exam14_fr",
    "exam14_pro",
    "es_support",
    "de_support",
    "it_support",
    "pt_support",
)
# (name, labels file, prompts file, held out?)
SETS = [
    ("example dev", REPO / "switchyard.yaml", DATA / "dev.jsonl", False),
    ("example eval", REPO / "switchyard.yaml", DATA / "eval.jsonl", True),
    ("example eval_fr", REPO / "switchyard.yaml", DATA / "eval_fr.jsonl", True),
    *(
        (name, SETS_DIR / f"{name}.yaml", SETS_DIR / f"{name}.jsonl", "heldout" in name)
        for name in (
            *WITH_HELD_OUT,
            "pets_garden",
            "travel_tax",
            "intents_en",
            "topics_exam",
            "topics13",
            "heldout_fitness_cars",
            "heldout_music_astro",
            "heldout_fr_rh_info",
            "heldout_fr_sport_cuisine",
            "heldout_fr_intents",
            "heldout_fr_telecom",
            "heldout_bank_intents",
        )
    ),
    # Held-out prompts for the labels of the dev sets above.
    *(
        (f"heldout_{name}", SETS_DIR / f"{name}.yaml", SETS_DIR / f"heldout_{name}.jsonl", True)
        for name in WITH_HELD_OUT
    ),
    # The 13 exam subjects' held-out questions, against the same labels as topics13.
    (
        "heldout_topics13",
        DATA / "sets" / "topics13.yaml",
        DATA / "sets" / "heldout_topics13.jsonl",
        True,
    ),
]
VARIANTS = [
    ("old default: minilm, 0.22", "minilm", 0.22),
    ("minilm, calibrated", "minilm", None),
    ("use, calibrated", "use", None),
    ("minilm+use, calibrated", "minilm+use", None),
    ("use+minilm-when-unsure, calibrated", "use+minilm-when-unsure", None),
]


def _labels(path: Path) -> list[Label]:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Label(item["name"], tuple(item["examples"])) for item in config["labels"]]


def _classifier(
    model_dir: Path, labels: list[Label], encoder: str, threshold: float | None
) -> LabelClassifier | SequenceClassifier:
    """One variant, as the server would load it (fallback "other", 128 tokens, 1 thread)."""
    return load_classifier(
        model_dir,
        labels,
        threshold=threshold,
        fallback="other",
        max_tokens=128,
        threads=1,
        encoder=encoder,
    )


def _thresholds(clf: LabelClassifier | SequenceClassifier) -> str:
    """The labels' thresholds: one number, or their range."""
    low, high = float(clf.thresholds.min()), float(clf.thresholds.max())
    return f"{low:.3f}" if low == high else f"{low:.3f}-{high:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "build" / "model")
    parser.add_argument("--sets", help="comma-separated set names (default: all)")
    parser.add_argument(
        "--encoders", help="comma-separated encoder names of the variants (default: all)"
    )
    args = parser.parse_args()
    chosen = set(args.sets.split(",")) if args.sets else None
    encoders = set(args.encoders.split(",")) if args.encoders else None
    variants = [v for v in VARIANTS if encoders is None or v[1] in encoders]
    print("| set | held out | variant | threshold | accuracy | in scope | OOS recall | en | fr |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, labels_path, data_path, held_out in SETS:
        if chosen and name not in chosen:
            continue
        labels, rows = _labels(labels_path), load_jsonl(data_path)
        for variant, encoder, threshold in variants:
            clf = _classifier(args.model_dir, labels, encoder, threshold)
            r = evaluate(clf, rows, "other")
            langs = {k: f"{v.accuracy:.1%}" for k, v in r.by_language.items()}
            print(
                f"| {name} (n={r.n}) | {'yes' if held_out else 'no'} | {variant} | "
                f"{_thresholds(clf)} | {r.accuracy:.1%} | {r.in_scope_accuracy or 0:.1%} | "
                f"{'-' if r.oos_recall is None else f'{r.oos_recall:.1%}'} | "
                f"{langs.get('en', '-')} | {langs.get('fr', '-')} |"
            )
    if chosen is None or "multiturn" in chosen:
        cases = load_conversations_jsonl(DATA / "multiturn.jsonl")
        for variant, encoder, threshold in variants:
            clf = _classifier(args.model_dir, _labels(REPO / "switchyard.yaml"), encoder, threshold)
            r = evaluate_conversations(clf, cases, "other")
            print(
                f"| multiturn (n={r.n}) | no | {variant} | {_thresholds(clf)} | "
                f"{r.accuracy:.1%} | | | | |"
            )


if __name__ == "__main__":
    main()
