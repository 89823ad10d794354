"""Close English intents on real prompts: few-shot configs cut from the BANKING77 test split
(docs/research/2026-classifier-log.md, seventh to tenth rounds).

    .venv/bin/python bench/banking77.py --csv banking77_test.csv [--part dev|held|all]
        [--encoders use+minilm-when-unsure,minilm] [--cache DIR]

The CSV (PolyAI BANKING77 test split, columns ``text,category``; CC-BY-4.0; published as
``banking_data/test.csv`` in the PolyAI-LDN/task-specific-datasets repository on GitHub) is
not part of this repository: pass its path with ``--csv`` or ``SWITCHYARD_BANKING77_CSV``.
Its intents are taken in file order; dev and held use the first 31 of them, as the logged
rounds did.

* dev (to choose a rule): the first 21 intents, seeds 0-2, k = 5 and 10 examples per
  intent, with and without 4 intents out of scope (12 configs);
* held (scored once a rule is fixed): the other 10 (seeds 100, 101) and all 31 with 5 out
  of scope (seeds 200, 201), k = 5 and 10 (8 configs);
* all (the scale of a whole bank, tenth round): every intent of the file (77 in the full
  split), seeds 300 and 301, k = 5, 10, 20 and 30, with and without 7 out of scope (16
  configs).

A config's labels get k prompts of their intent as examples, drawn by the seed; the
intent's other prompts are the queries. An out-of-scope intent has no label and 10 of its
prompts expect the fallback. Besides accuracy, in-scope accuracy and out-of-scope recall,
each config's errors are split into wrong labels, in-scope prompts rejected, and
out-of-scope prompts accepted (shares of all its queries: with the accuracy they sum to 100).
The summary is the mean over configs. ``--cache`` keeps embeddings between runs (exact:
the encoders embed one text at a time).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.encoder import Encoder
from classifier.evaluate import evaluate
from classifier.labels import ENCODERS, LabelClassifier
from classifier.types import Label

REPO = Path(__file__).resolve().parents[1]
FALLBACK = "other"
CSV_ENV = "SWITCHYARD_BANKING77_CSV"
DEV_INTENTS = 21
HELD_INTENTS = 10
OOS_PROMPTS = 10

Config = tuple[str, list[Label], list[tuple[str, str]]]


def read_intents(path: Path) -> dict[str, list[str]]:
    """Prompts by intent, intents in file order."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            by_intent[row["category"]].append(row["text"])
    return dict(by_intent)


def split(
    by_intent: dict[str, list[str]], intents: Sequence[str], seed: int, k: int, n_oos: int = 0
) -> tuple[list[Label], list[tuple[str, str]]]:
    """k examples per label drawn by seed, the intent's other prompts as queries; n_oos
    intents (drawn by the same seed) left without a label, OOS_PROMPTS of each expected to
    get the fallback."""
    rng = np.random.default_rng(seed)
    names = list(intents)
    oos = set(rng.choice(names, n_oos, replace=False).tolist()) if n_oos else set()
    labels, queries = [], []
    for name in names:
        texts = [by_intent[name][i] for i in rng.permutation(len(by_intent[name]))]
        if name in oos:
            queries += [(t, FALLBACK) for t in texts[:OOS_PROMPTS]]
        else:
            labels.append(Label(name, tuple(texts[:k])))
            queries += [(t, name) for t in texts[k:]]
    return labels, queries


def configs(by_intent: dict[str, list[str]], part: str) -> list[Config]:
    intents = list(by_intent)
    dev = intents[:DEV_INTENTS]
    held = intents[DEV_INTENTS : DEV_INTENTS + HELD_INTENTS]
    out: list[Config] = []
    if part == "dev":
        for seed in (0, 1, 2):
            for k in (5, 10):
                out.append((f"dev21 k={k} s={seed}", *split(by_intent, dev, seed, k)))
                out.append((f"dev21-oos4 k={k} s={seed}", *split(by_intent, dev, seed + 50, k, 4)))
    elif part == "held":
        for seed in (100, 101):
            for k in (5, 10):
                out.append((f"held{len(held)} k={k} s={seed}", *split(by_intent, held, seed, k)))
                first = dev + held
                out.append(
                    (
                        f"all{len(first)}-oos5 k={k} s={seed}",
                        *split(by_intent, first, seed + 100, k, 5),
                    )
                )
    elif part == "all":
        for k in (5, 10, 20, 30):
            for seed in (300, 301):
                family = f"all{len(intents)}"
                out.append((f"{family} k={k} s={seed}", *split(by_intent, intents, seed, k)))
                out.append(
                    (f"{family}-oos7 k={k} s={seed}", *split(by_intent, intents, seed + 100, k, 7))
                )
    else:
        raise ValueError(f"part must be dev, held or all, got {part!r}")
    return out


class CachedEncoder(Encoder):
    """An encoder that remembers each text's embedding (in memory, and in a file if asked)."""

    def __init__(self, model_dir: Path, cache_dir: Path | None) -> None:
        super().__init__(model_dir, max_tokens=128, threads=1)
        self._memory: dict[str, np.ndarray] = {}
        self._file = None
        self._dirty = False
        if cache_dir is not None:
            digest = hashlib.sha256(self.model_path.read_bytes()).hexdigest()[:12]
            self._file = cache_dir / f"{digest}.npz"
            if self._file.exists():
                stored = np.load(self._file, allow_pickle=False)
                self._memory = dict(
                    zip(stored["texts"].tolist(), stored["embeddings"], strict=True)
                )

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memory]
        if missing:
            self._memory.update(zip(missing, super().encode(missing), strict=True))
            self._dirty = True
        if not texts:
            return np.empty((0, self.dim), np.float32)
        return np.stack([self._memory[t] for t in texts])

    def save(self) -> None:
        if self._file is not None and self._dirty:
            np.savez(
                self._file,
                texts=np.array(list(self._memory), dtype=str),
                embeddings=np.stack(list(self._memory.values())),
            )
            self._dirty = False


class Encoders:
    """One CachedEncoder per model directory, shared by every config and variant."""

    def __init__(self, model_dir: Path, cache_dir: Path | None) -> None:
        self.model_dir = model_dir
        self.cache_dir = cache_dir
        self._loaded: dict[str, CachedEncoder] = {}

    def get(self, subdir: str) -> CachedEncoder:
        if subdir not in self._loaded:
            self._loaded[subdir] = CachedEncoder(
                self.model_dir / subdir if subdir else self.model_dir, self.cache_dir
            )
        return self._loaded[subdir]

    def classifier(self, labels: Sequence[Label], encoder: str) -> LabelClassifier:
        """The classifier the server would build for these labels (calibrated thresholds)."""
        specs = ENCODERS[encoder]
        return LabelClassifier(
            [self.get(spec.subdir) for spec in specs],
            labels,
            threshold=None,
            fallback=FALLBACK,
            centroid_weights=[spec.centroid_weight for spec in specs],
            languages=[spec.languages for spec in specs],
            second_opinion=[spec.second_opinion for spec in specs],
        )

    def save(self) -> None:
        for encoder in self._loaded.values():
            encoder.save()


Variant = tuple[str, Callable[[list[Label]], LabelClassifier]]


def encoder_variants(encoders: Encoders, names: str) -> list[Variant]:
    """One variant per encoder name of a comma-separated list (ValueError for an unknown one)."""
    chosen = names.split(",")
    unknown = sorted(set(chosen) - set(ENCODERS))
    if unknown:
        raise ValueError(f"unknown encoder(s) {unknown}; expected some of {sorted(ENCODERS)}")
    return [(name, partial(encoders.classifier, encoder=name)) for name in chosen]


@dataclass(frozen=True)
class Score:
    accuracy: float
    in_scope: float
    oos_recall: float | None
    wrong_label: float  # in-scope prompts given another label, share of all queries
    rejected: float  # in-scope prompts given the fallback
    oos_accepted: float  # out-of-scope prompts given a label
    second_opinions: int


def score(clf: LabelClassifier, queries: Sequence[tuple[str, str]]) -> Score:
    report = evaluate(clf, queries, FALLBACK)
    wrong = rejected = accepted = 0
    for (expected, predicted), count in ((c[:2], c[2]) for c in report.confusions):
        if expected == FALLBACK:
            accepted += count
        elif predicted == FALLBACK:
            rejected += count
        else:
            wrong += count
    n = report.n
    return Score(
        report.accuracy,
        report.in_scope_accuracy or 0.0,
        report.oos_recall,
        wrong / n,
        rejected / n,
        accepted / n,
        report.second_opinions,
    )


def run(
    configs_: Sequence[Config],
    variants: Sequence[Variant],
    *,
    after_config: Callable[[], None] = lambda: None,
) -> dict[tuple[str, str], Score]:
    """Each variant on each config, a line each as it goes."""
    results = {}
    for name, labels, queries in configs_:
        for variant, make in variants:
            s = score(make(labels), queries)
            results[(name, variant)] = s
            oos = "-" if s.oos_recall is None else f"{s.oos_recall:.3f}"
            print(
                f"{name:22s} {variant:34s} acc {s.accuracy:.3f} in {s.in_scope:.3f} oos {oos} "
                f"wrong {s.wrong_label:.3f} rej {s.rejected:.3f} oos-acc {s.oos_accepted:.3f} "
                f"2nd {s.second_opinions}",
                flush=True,
            )
        after_config()
    return results


def mean(values: list[float]) -> str:
    """Their mean in percent, one decimal."""
    return f"{100 * float(np.mean(values)):.1f}" if values else "-"


def summary(results: dict[tuple[str, str], Score]) -> str:
    """A Markdown table: per variant, the mean over configs (percent)."""
    by_variant: dict[str, list[tuple[str, Score]]] = defaultdict(list)
    for (config, variant), s in results.items():
        by_variant[variant].append((config, s))
    families = sorted({config.split()[0] for config, _ in results})
    lines = [
        "| variant | accuracy | in scope | OOS recall | wrong label | rejected | OOS accepted | "
        + " | ".join(families)
        + " |",
        "|---" * (7 + len(families)) + "|",
    ]
    for variant, rows in by_variant.items():
        scores = [s for _, s in rows]
        cells = [
            mean([s.accuracy for s in scores]),
            mean([s.in_scope for s in scores]),
            mean([s.oos_recall for s in scores if s.oos_recall is not None]),
            mean([s.wrong_label for s in scores]),
            mean([s.rejected for s in scores]),
            mean([s.oos_accepted for s in scores]),
            *(mean([s.accuracy for c, s in rows if c.split()[0] == f]) for f in families),
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_arguments(
    parser: argparse.ArgumentParser, csv_env: str, what: str
) -> tuple[argparse.Namespace, Encoders, list[Variant]]:
    """Adds the options every intent-set script shares (--csv, --encoders, --model-dir,
    --cache) to the script's own, parses them, and returns the arguments, the encoders and
    one variant per encoder name; what: the CSV's name for the error when it is missing."""
    parser.add_argument("--csv", type=Path, default=os.environ.get(csv_env))
    parser.add_argument("--encoders", default="use+minilm-when-unsure,minilm")
    parser.add_argument("--model-dir", type=Path, default=REPO / "build" / "model")
    parser.add_argument("--cache", type=Path, help="directory for an embedding cache")
    args = parser.parse_args()
    if args.csv is None:
        parser.error(f"the {what} CSV: --csv PATH or {csv_env}")
    try:
        with args.csv.open(encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
    except OSError as e:
        parser.error(f"--csv {args.csv}: {e.strerror}")
    if not {"text", "category"} <= set(header):
        parser.error(f"--csv {args.csv}: expected the columns text,category, found {header}")
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    encoders = Encoders(args.model_dir, args.cache)
    try:
        return args, encoders, encoder_variants(encoders, args.encoders)
    except ValueError as e:
        parser.error(str(e))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("dev", "held", "all"), default="dev")
    args, encoders, variants = parse_arguments(parser, CSV_ENV, "BANKING77 test")
    results = run(configs(read_intents(args.csv), args.part), variants, after_config=encoders.save)
    print(summary(results))


if __name__ == "__main__":
    main()
