"""Issue #12's routing targets on our own label sets, with the product's defaults: the
multilingual encoder with MiniLM's second opinion on unsure English prompts
(`use+minilm-when-unsure`) and no threshold in the config (calibrated from the examples);
and what the opt-in full ensemble (`encoder: minilm+use`) adds.

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
from extproc.config import ClassifierConfig
from tests.classifier.conftest import DATA
from tests.classifier.test_encoders import _model_root

SETS = DATA / "sets"
DEFAULT_ENCODER = ClassifierConfig().encoder


def _default_classifier(root: Path, labels_file: str, encoder: str = DEFAULT_ENCODER) -> Classifier:
    config = yaml.safe_load((SETS / labels_file).read_text(encoding="utf-8"))
    labels = [Label(item["name"], tuple(item["examples"])) for item in config["labels"]]
    clf = load_classifier(
        root, labels, threshold=None, fallback="other", max_tokens=128, encoder=encoder
    )
    assert isinstance(clf, LabelClassifier)
    assert {t.source for t in clf.label_thresholds} <= {"calibrated", "pooled"}
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
    ("labels_file", "prompts_file", "min_in_scope", "min_rejected"),
    [
        # 20 assistant intents (dev): 59/60 routed, 25/30 rejected.
        ("intents_en", "intents_en", 58, 24),
        # 12 banking intents (held out): 23/24 routed, 21/24 rejected (USE alone 22, 19),
        # half of them banking questions no intent covers. MiniLM ranks these examples
        # better than USE, so it gives English prompts the first opinion.
        ("heldout_bank_intents", "heldout_bank_intents", 22, 20),
        # 10 French telecom intents (held out): 20/20 routed, 15/16 rejected.
        ("heldout_fr_telecom", "heldout_fr_telecom", 19, 14),
        # 60 assistant intents x 16 (held-out prompts): 162/180 routed, 42/60 rejected
        # (USE alone 154, 39); MiniLM gives the first opinion here, as on bank40 below.
        ("intents60", "heldout_intents60", 158, 40),
        # 40 close banking intents x 16 (held-out prompts): 103/120 routed, 20/20 rejected
        # (USE alone 96, 19; 105/120 while USE gave the first opinion).
        ("bank40", "heldout_bank40", 101, 19),
        # 22 French employee-support intents x 16 (held-out prompts): 83/88, 16/20.
        ("fr_support22", "heldout_fr_support22", 81, 15),
        # 40 French assistant intents x 16 (held-out prompts): 170/200, 23/40.
        ("fr_intents40", "heldout_fr_intents40", 167, 21),
        # 8 support intents and topics x 8 in Spanish, German, Italian, Portuguese (held-out
        # prompts): centred on their own language's neutral sentences. 21/24 and 5/12,
        # 23/24 and 8/12 (4/12 when German was centred as French or English), 23/24 and
        # 6/12, 22/24 and 7/12.
        ("es_support", "heldout_es_support", 20, 4),
        ("de_support", "heldout_de_support", 22, 7),
        ("it_support", "heldout_it_support", 22, 5),
        ("pt_support", "heldout_pt_support", 21, 6),
    ],
)
def test_intents_route_in_scope_and_reject_out_of_scope(
    root: Path, labels_file: str, prompts_file: str, min_in_scope: int, min_rejected: int
) -> None:
    clf = _default_classifier(root, f"{labels_file}.yaml")
    routed, n_in, rejected, n_out = _counts(clf, f"{prompts_file}.jsonl")
    assert routed >= min_in_scope and rejected >= min_rejected, (
        clf.thresholds,
        routed,
        n_in,
        rejected,
        n_out,
    )


@pytest.mark.parametrize(
    ("labels_file", "prompts", "minimum"),
    [
        # 13 exam subjects, 6 example questions each: dev 24/26, held out 35/39 (USE
        # alone 20, 33).
        ("topics13.yaml", "topics13.jsonl", 23),
        ("topics13.yaml", "heldout_topics13.jsonl", 34),
        # 14 subjects, 15 example questions each: held out 59/70 (USE alone 58); in French
        # 60/70 (MiniLM does not read French; 63/70 with one threshold for all labels).
        ("exam14.yaml", "heldout_exam14.jsonl", 58),
        ("exam14_fr.yaml", "heldout_exam14_fr.jsonl", 59),
        # 14 subjects in the style of public exam collections, 16 examples each: dev
        # 63/84 (USE alone 54), held out 84/112 (86 with one threshold for all labels).
        ("exam14_pro.yaml", "exam14_pro.jsonl", 62),
        ("exam14_pro.yaml", "heldout_exam14_pro.jsonl", 83),
    ],
)
def test_exam_questions_route_by_subject(
    root: Path, labels_file: str, prompts: str, minimum: int
) -> None:
    clf = _default_classifier(root, labels_file)
    routed, n_in, _, n_out = _counts(clf, prompts)
    assert n_out == 0
    assert routed >= minimum, (clf.thresholds, routed, n_in)


@pytest.mark.parametrize(
    ("name", "min_rejected"),
    [
        ("heldout_fr_sport_cuisine", 9),
        # Misses the issue's 9 of 10 with the default ("How do I make a sourdough
        # starter?" scores on `music`, and USE is not unsure of it); the full ensemble
        # meets it (below).
        ("heldout_music_astro", 8),
    ],
)
def test_a_new_users_two_labels_route_without_a_threshold(
    root: Path, name: str, min_rejected: int
) -> None:
    clf = _default_classifier(root, f"{name}.yaml")
    routed, n_in, rejected, n_out = _counts(clf, f"{name}.jsonl")
    assert n_in == n_out == 10
    assert routed >= 9 and rejected >= min_rejected, (clf.thresholds, routed, rejected)


@pytest.mark.parametrize(
    ("labels_file", "prompts_file", "min_in_scope", "min_rejected"),
    [
        # USE alone: 156/180 and 39/60; both: 162/180 and 44/60.
        ("intents60", "heldout_intents60", 160, 42),
        # USE alone: 9/10 and 8/10; both: 9/10 and 8/10 (9/10 with one threshold for all
        # labels: "How do I change a bike tyre?" scores 0.272 on music, whose own
        # threshold is 0.193).
        ("heldout_music_astro", "heldout_music_astro", 9, 8),
    ],
)
def test_the_ensemble_ranks_english_intents_better(
    root: Path, labels_file: str, prompts_file: str, min_in_scope: int, min_rejected: int
) -> None:
    clf = _default_classifier(root, f"{labels_file}.yaml", encoder="minilm+use")
    routed, _, rejected, _ = _counts(clf, f"{prompts_file}.jsonl")
    assert routed >= min_in_scope and rejected >= min_rejected, (clf.thresholds, routed, rejected)
