"""Measure a classifier on labelled prompts: accuracy, per-label P/R/F1, confusions, and
how well prompts labelled with the fallback (out-of-scope) are rejected."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from classifier.errors import EvalDataError
from classifier.text import guess_language
from classifier.types import Classifier, Prediction

BATCH = 64


@dataclass(frozen=True)
class LabelStats:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class LanguageStats:
    n: int
    accuracy: float
    in_scope_accuracy: float | None
    oos_recall: float | None


@dataclass(frozen=True)
class EvalReport:
    n: int
    accuracy: float
    per_label: dict[str, LabelStats]
    confusions: list[tuple[str, str, int]]  # (expected, predicted, count), most frequent first
    fallback: str
    oos_recall: float | None  # share of fallback-labelled rows predicted as the fallback
    oos_precision: float | None  # share of fallback predictions that were out-of-scope
    in_scope_accuracy: float | None
    # Keyed by the language guessed from each text (``classifier.text``): en, fr, es, ...
    # or unknown.
    by_language: dict[str, LanguageStats] = field(default_factory=dict)
    # Rows a second-opinion encoder also scored (classifier.labels): they cost two inferences.
    second_opinions: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["confusions"] = [
            {"expected": e, "predicted": p, "count": c} for e, p, c in self.confusions
        ]
        return data


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _language_stats(pairs: Sequence[tuple[str, str]], fallback: str) -> LanguageStats:
    in_scope = [(e, p) for e, p in pairs if e != fallback]
    oos = [p for e, p in pairs if e == fallback]
    return LanguageStats(
        n=len(pairs),
        accuracy=_ratio(sum(e == p for e, p in pairs), len(pairs)),
        in_scope_accuracy=(
            _ratio(sum(e == p for e, p in in_scope), len(in_scope)) if in_scope else None
        ),
        oos_recall=_ratio(oos.count(fallback), len(oos)) if oos else None,
    )


def report_from_predictions(
    expected: Sequence[str],
    predicted: Sequence[str],
    fallback: str,
    languages: Sequence[str] | None = None,
    second_opinions: int = 0,
) -> EvalReport:
    """The report for paired expected/predicted labels (pure: no model involved);
    ``languages`` (one per row) adds the per-language breakdown."""
    if len(expected) != len(predicted):
        raise ValueError("expected and predicted must have the same length")
    pairs = list(zip(expected, predicted, strict=True))
    correct = sum(e == p for e, p in pairs)
    per_label: dict[str, LabelStats] = {}
    for label in sorted(set(expected) | set(predicted)):
        tp = sum(e == p == label for e, p in pairs)
        n_pred = sum(p == label for _, p in pairs)
        n_true = sum(e == label for e, _ in pairs)
        precision, recall = _ratio(tp, n_pred), _ratio(tp, n_true)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = LabelStats(precision, recall, f1, n_true)
    confusions = Counter((e, p) for e, p in pairs if e != p)
    ranked = sorted(confusions.items(), key=lambda item: (-item[1], item[0]))
    oos = [p for e, p in pairs if e == fallback]
    rejected = [e for e, p in pairs if p == fallback]
    in_scope = [(e, p) for e, p in pairs if e != fallback]
    langs = list(languages or ())
    if langs and len(langs) != len(pairs):
        raise ValueError("one language per row, or none")
    by_language = {
        lang: _language_stats(
            [pair for pair, row_lang in zip(pairs, langs, strict=True) if row_lang == lang],
            fallback,
        )
        for lang in sorted(set(langs))
    }
    return EvalReport(
        n=len(pairs),
        accuracy=_ratio(correct, len(pairs)),
        per_label=per_label,
        confusions=[(e, p, c) for (e, p), c in ranked],
        fallback=fallback,
        oos_recall=_ratio(oos.count(fallback), len(oos)) if oos else None,
        oos_precision=_ratio(rejected.count(fallback), len(rejected)) if rejected else None,
        in_scope_accuracy=(
            _ratio(sum(e == p for e, p in in_scope), len(in_scope)) if in_scope else None
        ),
        by_language=by_language,
        second_opinions=second_opinions,
    )


def _languages(texts: Sequence[str]) -> list[str]:
    return [guess_language(text) or "unknown" for text in texts]


def evaluate(clf: Classifier, rows: Sequence[tuple[str, str]], fallback: str) -> EvalReport:
    """Classify every ``(text, expected_label)`` row and report how it went."""
    predictions: list[Prediction] = []
    for start in range(0, len(rows), BATCH):
        predictions.extend(clf.classify([text for text, _ in rows[start : start + BATCH]]))
    return report_from_predictions(
        [label for _, label in rows],
        [p.label for p in predictions],
        fallback,
        _languages([t for t, _ in rows]),
        sum(p.second_opinion for p in predictions),
    )


def evaluate_conversations(
    clf: Classifier, cases: Sequence[tuple[Sequence[str], str]], fallback: str
) -> EvalReport:
    """Like ``evaluate`` for ``(user_messages, expected_label)`` conversations."""
    predictions = clf.classify_conversations([messages for messages, _ in cases])
    return report_from_predictions(
        [label for _, label in cases],
        [p.label for p in predictions],
        fallback,
        _languages([messages[-1] if messages else "" for messages, _ in cases]),
        sum(p.second_opinion for p in predictions),
    )


def format_report(report: EvalReport) -> str:
    """A plain-text summary for terminals and logs."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    lines = [
        f"n={report.n}  accuracy={pct(report.accuracy)}  "
        f"in-scope accuracy={pct(report.in_scope_accuracy)}",
        f"out-of-scope ({report.fallback!r}): recall={pct(report.oos_recall)}  "
        f"precision={pct(report.oos_precision)}",
        "",
    ]
    if report.second_opinions:
        share = pct(report.second_opinions / report.n)
        lines[-1:-1] = [f"second opinion: {report.second_opinions} of {report.n} rows ({share})"]
    if report.by_language:
        lines.append(f"{'language':<16}{'n':>6}{'accuracy':>10}{'in-scope':>10}{'OOS recall':>12}")
        for lang, stats in report.by_language.items():
            lines.append(
                f"{lang:<16}{stats.n:>6}{pct(stats.accuracy):>10}"
                f"{pct(stats.in_scope_accuracy):>10}{pct(stats.oos_recall):>12}"
            )
        lines.append("")
    lines.append(f"{'label':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for label, s in report.per_label.items():
        lines.append(
            f"{label:<16}{pct(s.precision):>10}{pct(s.recall):>10}{pct(s.f1):>10}{s.support:>9}"
        )
    if report.confusions:
        lines += ["", "most frequent confusions (expected -> predicted):"]
        lines += [f"  {e} -> {p}: {c}" for e, p, c in report.confusions[:10]]
    return "\n".join(lines)


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(path, None, f"cannot read file: {exc}") from exc
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise EvalDataError(path, number, f"invalid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise EvalDataError(path, number, "expected a JSON object")
        records.append((number, record))
    return records


def _label_of(path: Path, number: int, record: dict[str, Any]) -> str:
    label = record.get("label")
    if not isinstance(label, str) or not label:
        raise EvalDataError(path, number, '"label" must be a non-empty string')
    return label


def load_jsonl(path: Path) -> list[tuple[str, str]]:
    """Read ``{"text": ..., "label": ...}`` lines (other keys are ignored)."""
    rows = []
    for number, record in _read_jsonl(Path(path)):
        text = record.get("text")
        if not isinstance(text, str):
            raise EvalDataError(path, number, '"text" must be a string')
        rows.append((text, _label_of(Path(path), number, record)))
    return rows


def load_conversations_jsonl(path: Path) -> list[tuple[list[str], str]]:
    """Read ``{"messages": [user messages, oldest first], "label": ...}`` lines."""
    cases = []
    for number, record in _read_jsonl(Path(path)):
        messages = record.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
            raise EvalDataError(path, number, '"messages" must be a list of strings')
        cases.append((messages, _label_of(Path(path), number, record)))
    return cases
