"""Classifier over a fine-tuned sequence-classification model (logits per label).

A model directory for it holds ``model.onnx`` (inputs like the encoder's, first output
``[batch, n_labels]`` logits), ``tokenizer.json`` and ``labels.json`` (the label names in
logit order). Scores are softmax probabilities, so its threshold is a probability. A class
named like the fallback, if the model has one, is honoured: when it wins, the fallback wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.conversation import TurnPolicy, combine_turns, without_acknowledgments
from classifier.decision import check_settings, decide
from classifier.errors import InferenceError, LabelError, ModelLoadError
from classifier.onnx_io import open_session, run_model
from classifier.tokenize import TextTokenizer
from classifier.types import Prediction

LABELS_FILE = "labels.json"
MODEL_FILE = "model.onnx"
# A probability; used when the config leaves the threshold to the classifier (there are
# no examples to calibrate on: the model's own probabilities are already calibrated-ish).
SEQUENCE_DEFAULT_THRESHOLD = 0.5


def read_label_file(path: Path) -> list[str]:
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(path, f"unreadable labels file: {exc}") from exc
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelLoadError(path, "labels.json must be a non-empty JSON list of label names")
    if len(set(names)) != len(names):
        raise ModelLoadError(path, "labels.json lists a label twice")
    return names


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs: np.ndarray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


class SequenceClassifier:
    """Classify prompts with a model that outputs one logit per label."""

    def __init__(
        self,
        model_dir: Path,
        labels: Sequence[str] = (),
        *,
        threshold: float,
        fallback: str,
        max_tokens: int = 128,
        threads: int = 2,
        turn_policy: TurnPolicy | None = None,
    ) -> None:
        model_dir = Path(model_dir)
        model_names = read_label_file(model_dir / LABELS_FILE)
        self._names = [n for n in model_names if n != fallback]
        check_settings(self._names, threshold, fallback)
        if labels and set(labels) != set(self._names):
            raise LabelError(
                f"configured labels {sorted(labels)} differ from {model_dir / LABELS_FILE} "
                f"{sorted(self._names)} (besides the fallback {fallback!r})"
            )
        self._real = np.array([i for i, n in enumerate(model_names) if n != fallback])
        self._fallback_index = model_names.index(fallback) if fallback in model_names else None
        # One probability for every label (per label, like LabelClassifier's).
        self.thresholds = np.full(len(self._names), float(threshold))
        self.fallback = fallback
        self.turn_policy = turn_policy or TurnPolicy()
        self._tokenizer = TextTokenizer(model_dir, max_tokens)
        path = model_dir / MODEL_FILE
        self._session, self._inputs = open_session(path, threads)
        output = self._session.get_outputs()[0]
        n_out = output.shape[-1] if len(output.shape) == 2 else None
        if len(output.shape) != 2 or (isinstance(n_out, int) and n_out != len(model_names)):
            raise ModelLoadError(
                path,
                f"first output {output.name!r} has shape {output.shape}; expected "
                f"[batch, {len(model_names)}] logits to match {LABELS_FILE}",
            )
        self._output_name = output.name
        self._n_model_labels = len(model_names)

    def explain_threshold(self) -> str:
        return f"threshold {self.thresholds[0]:.3f} (a probability of the fine-tuned model)"

    @property
    def labels(self) -> list[str]:
        return list(self._names)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax over the model's classes [len(texts), n_model_labels]."""
        if not texts:
            return np.zeros((0, self._n_model_labels), dtype=np.float32)
        ids, mask = self._tokenizer.batch(texts)
        logits = run_model(self._session, self._inputs, self._output_name, ids, mask, "classifying")
        if logits.shape != (len(texts), self._n_model_labels):
            raise InferenceError(f"model returned logits of shape {logits.shape}")
        return softmax(logits)

    def _decide(self, probs: np.ndarray) -> Prediction:
        fallback_wins = (
            self._fallback_index is not None and int(probs.argmax()) == self._fallback_index
        )
        real = probs[self._real]
        return decide(real, self._names, self.thresholds, self.fallback, reject=fallback_wins)

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [self._decide(row) for row in self.probabilities(texts)]

    def classify_conversations(self, conversations: Sequence[Sequence[str]]) -> list[Prediction]:
        """Like ``LabelClassifier.classify_conversations``; with no follow-up anchors here,
        a message the model is unsure about (best probability under the threshold) counts as
        a content-free follow-up."""
        window = self.turn_policy.window
        recent = [without_acknowledgments(conv)[-window:] for conv in conversations]
        probs = self.probabilities([m for conv in recent for m in conv])
        predictions: list[Prediction] = []
        start = 0
        for conv in recent:
            rows = probs[start : start + len(conv)]
            start += len(conv)
            if not conv:
                predictions.append(Prediction(self.fallback, 0.0, None, 0.0))
                continue
            threshold = float(self.thresholds[0])  # the same for every label
            follow_up = [bool(row[self._real].max() < threshold) for row in rows]
            combined = combine_turns(rows, follow_up, threshold, self.turn_policy)
            predictions.append(self._decide(combined))
        return predictions
