"""SequenceClassifier and load_classifier's choice, with a toy logits model built here.

The toy model is a bag of words: each token id has one learned logit per label (a Gather
from a [vocab, n_labels] table), summed over unmasked tokens. Enough to check the plumbing:
inputs, softmax, threshold, a model-side fallback class and label-set checks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from classifier.errors import LabelError, ModelLoadError
from classifier.labels import Label, load_classifier
from classifier.sequence import SequenceClassifier
from classifier.tokenize import TextTokenizer

WORDS = {"pizza": "cooking", "python": "coding", "refund": "support", "weather": "other"}


def _write_model(
    out: Path, model_dir: Path, names: list[str], *, n_outputs: int | None = None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_dir / "tokenizer.json", out)
    tokenizer = TextTokenizer(out, 32)
    n_outputs = n_outputs or len(names)
    table = np.zeros((30522, n_outputs), dtype=np.float32)
    for word, label in WORDS.items():
        if label in names:
            for token in tokenizer.token_ids(word)[1:-1]:  # every word piece votes
                table[token, names.index(label)] = 6.0
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["per_token"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["per_token", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["logits"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "toy_sequence_classifier",
        [
            helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
            for n in ("input_ids", "attention_mask", "token_type_ids")
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_outputs])],
        [
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([2], np.int64), "axis2"),
            numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(out / "model.onnx"))
    (out / "labels.json").write_text(json.dumps(names))


@pytest.fixture()
def seq_dir(tmp_path: Path, model_dir: Path) -> Path:
    _write_model(tmp_path / "seq", model_dir, ["cooking", "coding", "support"])
    return tmp_path / "seq"


def test_load_classifier_picks_sequence_classifier(seq_dir: Path) -> None:
    labels = [Label(n, ()) for n in ("cooking", "coding", "support")]  # no examples needed
    clf = load_classifier(seq_dir, labels, threshold=0.5, fallback="other", max_tokens=32)
    assert isinstance(clf, SequenceClassifier)
    assert clf.labels == ["cooking", "coding", "support"]
    preds = clf.classify(["best pizza dough", "my python script fails", "I want a refund"])
    assert [p.label for p in preds] == ["cooking", "coding", "support"]
    assert preds[0].score > 0.99 and preds[0].runner_up in ("coding", "support")


def test_a_sequence_classifier_without_threshold_uses_probability_one_half(seq_dir: Path) -> None:
    # Nothing to calibrate on (no examples): the model's own probabilities decide.
    labels = [Label(n, ()) for n in ("cooking", "coding", "support")]
    clf = load_classifier(seq_dir, labels, threshold=None, fallback="other", max_tokens=32)
    assert (clf.thresholds == 0.5).all() and "probability" in clf.explain_threshold()


def test_probability_under_threshold_falls_back(seq_dir: Path) -> None:
    clf = SequenceClassifier(seq_dir, threshold=0.5, fallback="other")
    (pred,) = clf.classify(["something neutral"])  # uniform logits: 1/3 each
    assert pred.label == "other"
    assert pred.score == pytest.approx(1 / 3, abs=1e-5)
    assert pred.runner_up == "cooking"


def test_model_side_fallback_class_wins(tmp_path: Path, model_dir: Path) -> None:
    _write_model(tmp_path / "m", model_dir, ["cooking", "other", "coding"])
    clf = SequenceClassifier(tmp_path / "m", threshold=0.1, fallback="other")
    assert clf.labels == ["cooking", "coding"]
    (pred,) = clf.classify(["the weather"])
    assert pred.label == "other"
    assert pred.runner_up in ("cooking", "coding")


def test_conversations_keep_topic_on_unsure_follow_up(seq_dir: Path) -> None:
    clf = SequenceClassifier(seq_dir, threshold=0.5, fallback="other")
    preds = clf.classify_conversations(
        [["pizza please", "ok do it"], ["pizza please", "python error"], []]
    )
    assert [p.label for p in preds] == ["cooking", "coding", "other"]


def test_configured_labels_must_match(seq_dir: Path) -> None:
    with pytest.raises(LabelError, match="differ"):
        SequenceClassifier(seq_dir, ["cooking", "legal"], threshold=0.5, fallback="other")


def test_output_width_must_match_labels_file(tmp_path: Path, model_dir: Path) -> None:
    _write_model(tmp_path / "m", model_dir, ["cooking", "coding"], n_outputs=3)
    with pytest.raises(ModelLoadError, match=r"labels\.json"):
        SequenceClassifier(tmp_path / "m", threshold=0.5, fallback="other")


@pytest.mark.parametrize("content", ["{}", "[]", '["a", "a"]', "not json"])
def test_bad_labels_file(seq_dir: Path, content: str) -> None:
    (seq_dir / "labels.json").write_text(content)
    with pytest.raises(ModelLoadError) as info:
        SequenceClassifier(seq_dir, threshold=0.5, fallback="other")
    assert info.value.path == seq_dir / "labels.json"
