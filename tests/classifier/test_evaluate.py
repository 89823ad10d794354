"""evaluate() arithmetic on hand-made cases, and the JSONL readers' errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from classifier.errors import EvalDataError
from classifier.evaluate import (
    evaluate,
    format_report,
    load_conversations_jsonl,
    load_jsonl,
    report_from_predictions,
)
from classifier.types import Prediction


class _Echo:
    """A fake classifier: the 'prediction' is the text itself."""

    labels: ClassVar[list[str]] = ["a", "b"]

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [Prediction(t, 1.0, None, 0.0) for t in texts]

    def classify_conversations(self, conversations: Sequence[Sequence[str]]) -> list[Prediction]:
        return self.classify([c[-1] for c in conversations])


def test_report_math() -> None:
    expected = ["a", "a", "a", "b", "b", "other", "other", "other"]
    predicted = ["a", "a", "b", "b", "other", "other", "other", "a"]
    r = report_from_predictions(expected, predicted, "other")
    assert r.n == 8
    assert r.accuracy == pytest.approx(5 / 8)
    a = r.per_label["a"]
    assert (a.precision, a.recall, a.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert a.f1 == pytest.approx(2 / 3)
    b = r.per_label["b"]
    assert (b.precision, b.recall) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    assert r.oos_recall == pytest.approx(2 / 3)  # 2 of 3 out-of-scope rows rejected
    assert r.oos_precision == pytest.approx(2 / 3)  # 1 of 3 rejections was in scope
    assert r.in_scope_accuracy == pytest.approx(3 / 5)
    assert r.confusions == [("a", "b", 1), ("b", "other", 1), ("other", "a", 1)]


def test_confusions_sorted_by_count() -> None:
    r = report_from_predictions(["a", "a", "b"], ["b", "b", "a"], "other")
    assert r.confusions[0] == ("a", "b", 2)
    assert r.oos_recall is None and r.oos_precision is None


def test_zero_division_is_zero() -> None:
    r = report_from_predictions(["a"], ["b"], "other")
    assert r.per_label["b"].precision == 0.0 and r.per_label["b"].f1 == 0.0


def test_evaluate_with_fake_classifier_and_json() -> None:
    rows = [("a", "a"), ("b", "a"), ("other", "other")]
    report = evaluate(_Echo(), rows, "other")
    data = report.to_json()
    assert data["n"] == 3 and data["accuracy"] == pytest.approx(2 / 3)
    assert data["confusions"] == [{"expected": "a", "predicted": "b", "count": 1}]
    assert data["per_label"]["a"]["support"] == 2
    text = format_report(report)
    assert "accuracy=66.7%" in text and "a -> b: 1" in text


def test_load_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "hi", "label": "other", "tag": "x"}\n\n{"text": "b", "label": "a"}\n')
    assert load_jsonl(path) == [("hi", "other"), ("b", "a")]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('{"text": "ok", "label": "a"}\n{"text": "broken"\n', 2, "invalid JSON"),
        ('{"text": "ok"}\n', 1, "label"),
        ('{"text": 3, "label": "a"}\n', 1, "text"),
        ('["text", "label"]\n', 1, "JSON object"),
    ],
)
def test_load_jsonl_errors_name_file_and_line(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(EvalDataError, match=message) as info:
        load_jsonl(path)
    assert info.value.line == line
    assert f"{path}:{line}:" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="cannot read"):
        load_jsonl(tmp_path / "absent.jsonl")


def test_load_conversations(tmp_path: Path) -> None:
    path = tmp_path / "conv.jsonl"
    path.write_text('{"messages": ["a", "b"], "label": "x"}\n{"messages": "a", "label": "x"}\n')
    with pytest.raises(EvalDataError, match=r":2: \"messages\""):
        load_conversations_jsonl(path)


def test_repo_data_files_load() -> None:
    data = Path(__file__).resolve().parents[2] / "data" / "eval"
    rows = load_jsonl(data / "eval.jsonl")
    assert len(rows) >= 400
    assert sum(label == "other" for _, label in rows) >= 80
    assert len(load_conversations_jsonl(data / "multiturn.jsonl")) >= 40


def test_the_report_breaks_down_by_language() -> None:
    r = report_from_predictions(
        ["a", "a", "other", "b", "other"],
        ["a", "other", "other", "b", "b"],
        "other",
        ["en", "fr", "fr", "en", "en"],
    )
    assert set(r.by_language) == {"en", "fr"}
    en, fr = r.by_language["en"], r.by_language["fr"]
    assert (en.n, en.accuracy, en.in_scope_accuracy, en.oos_recall) == (3, 2 / 3, 1.0, 0.0)
    assert (fr.n, fr.accuracy, fr.in_scope_accuracy, fr.oos_recall) == (2, 0.5, 0.0, 1.0)
    text = format_report(r)
    assert "language" in text and "\nfr " in text
    assert r.to_json()["by_language"]["fr"]["n"] == 2


class _SecondGuessing(_Echo):
    """Like _Echo, and says it took a second opinion on label 'b'."""

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [Prediction(t, 1.0, None, 0.0, second_opinion=t == "b") for t in texts]


def test_the_report_counts_the_rows_that_took_a_second_opinion() -> None:
    rows = [("a", "a"), ("b", "b"), ("b", "b"), ("other", "other")]
    report = evaluate(_SecondGuessing(), rows, "other")
    assert report.second_opinions == 2
    assert "second opinion: 2 of 4 rows (50.0%)" in format_report(report)
    assert "second opinion" not in format_report(evaluate(_Echo(), rows, "other"))
