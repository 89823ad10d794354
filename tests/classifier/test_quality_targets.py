"""Issue #12's routing targets on our own label sets, with the product's defaults: the
multilingual encoder and no threshold in the config (calibrated from the examples).

Floors sit one prompt under what docs/CLASSIFIER.md reports, so a different CPU's int8
kernels cannot flip them, while a real regression still fails them. `heldout_*` sets were
written before any number on them was read and never used to choose the rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from classifier.evaluate import load_jsonl
from classifier.labels import Label, LabelClassifier, load_classifier
from classifier.types import Classifier
from tests.classifier.conftest import DATA
from tests.classifier.test_encoders import _model_root

SETS = DATA / "sets"


def _default_classifier(root: Path, labels_file: str) -> Classifier:
    config = yaml.safe_load((SETS / labels_file).read_text(encoding="utf-8"))
    labels = [Label(item["name"], tuple(item["examples"])) for item in config["labels"]]
    clf = load_classifier(
        root, labels, threshold=None, fallback="other", max_tokens=128, encoder="use"
    )
    assert isinstance(clf, LabelClassifier) and clf.calibration is not None
    return clf


def _counts(clf: Classifier, prompts_file: str) -> tuple[int, int, int, int]:
    """(in scope routed right, in scope, out of scope rejected, out of scope)."""
    rows = load_jsonl(SETS / prompts_file)
    predicted = [p.label for p in clf.classify([text for text, _ in rows])]
    pairs = list(zip(predicted, [label for _, label in rows], strict=True))
    in_scope = [p == e for p, e in pairs if e != "other"]
    rejected = [p == "other" for p, e in pairs if e == "other"]
    return sum(in_scope), len(in_scope), sum(rejected), len(rejected)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, model_dir: Path, use_model_dir: Path) -> Path:
    return _model_root(tmp_path_factory.mktemp("quality"), model_dir, use_model_dir)


@pytest.mark.parametrize(
    ("name", "min_in_scope", "min_rejected"),
    [
        # 20 assistant intents (dev): 58/60 routed, 26/30 rejected (was 57/60 and 24/30).
        ("intents_en", 57, 25),
        # 12 banking intents (held out): 22/24 routed, 22/24 rejected, half of them
        # banking questions no intent covers (was 20/24 and 21/24).
        ("heldout_bank_intents", 21, 21),
        # 10 French telecom intents (held out): 18/20 routed, 16/16 rejected.
        ("heldout_fr_telecom", 17, 15),
    ],
)
def test_intents_route_in_scope_and_reject_out_of_scope(
    root: Path, name: str, min_in_scope: int, min_rejected: int
) -> None:
    clf = _default_classifier(root, f"{name}.yaml")
    routed, n_in, rejected, n_out = _counts(clf, f"{name}.jsonl")
    assert routed >= min_in_scope and rejected >= min_rejected, (
        clf.threshold,
        routed,
        n_in,
        rejected,
        n_out,
    )


@pytest.mark.parametrize(
    ("prompts", "minimum"),
    # 13 exam subjects, 6 example questions each: dev 20/26, held out 33/39.
    [("topics13.jsonl", 19), ("heldout_topics13.jsonl", 32)],
)
def test_exam_questions_route_by_subject(root: Path, prompts: str, minimum: int) -> None:
    clf = _default_classifier(root, "topics13.yaml")
    routed, n_in, _, n_out = _counts(clf, prompts)
    assert n_out == 0
    assert routed >= minimum, (clf.threshold, routed, n_in)


@pytest.mark.parametrize(
    ("name", "min_rejected"),
    [
        ("heldout_fr_sport_cuisine", 9),
        # Misses the issue's 9 of 10: "How do I make a sourdough starter?" and "How do I
        # change a bike tyre?" score 0.25-0.29 on `music` (threshold 0.215).
        ("heldout_music_astro", 8),
    ],
)
def test_a_new_users_two_labels_route_without_a_threshold(
    root: Path, name: str, min_rejected: int
) -> None:
    clf = _default_classifier(root, f"{name}.yaml")
    routed, n_in, rejected, n_out = _counts(clf, f"{name}.jsonl")
    assert n_in == n_out == 10
    assert routed >= 9 and rejected >= min_rejected, (clf.threshold, routed, rejected)
