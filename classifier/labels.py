"""Few-shot label classifier: a label is a name plus a handful of example prompts.

The examples are embedded once at construction (no training run); ``classify`` embeds the
prompts and scores them against the examples with the rule in ``classifier.scoring``, after
centring on the fixed neutral corpus of ``classifier.neutral``.
``load_classifier`` picks this or a fine-tuned ``SequenceClassifier`` from a model directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.calibrate import Calibration, calibrate
from classifier.conversation import TurnPolicy, combine_turns
from classifier.decision import check_settings, decide
from classifier.encoder import Encoder
from classifier.errors import LabelError
from classifier.neutral import NeutralReference, neutral_reference
from classifier.scoring import ExampleIndex
from classifier.sequence import LABELS_FILE, SEQUENCE_DEFAULT_THRESHOLD, SequenceClassifier
from classifier.text import FOLLOW_UP_ANCHORS, guess_language
from classifier.types import Label, Prediction

__all__ = ["Label", "LabelClassifier", "Prediction", "SequenceClassifier", "load_classifier"]


class LabelClassifier:
    """Classify prompts by similarity to each label's example prompts."""

    def __init__(
        self,
        encoder: Encoder,
        labels: Sequence[Label],
        *,
        threshold: float | None,
        fallback: str,
        turn_policy: TurnPolicy | None = None,
    ) -> None:
        """``threshold=None`` derives the threshold from the examples (``calibration``)."""
        names = [label.name for label in labels]
        check_settings(names, threshold, fallback)
        empty = [label.name for label in labels if not label.examples]
        if empty:
            raise LabelError(f"labels without examples: {empty} (give each 3-20 examples)")
        self._encoder = encoder
        self._names = names
        self.fallback = fallback
        self.turn_policy = turn_policy or TurnPolicy()

        texts = [example for label in labels for example in label.examples]
        label_ids = [i for i, label in enumerate(labels) for _ in label.examples]
        # The centring is fixed (the neutral corpus's per-language means), so every label's
        # scores depend on its own examples only: adding or removing a label moves nothing else.
        neutral = neutral_reference(encoder)
        centering = neutral.centering
        embeddings = encoder.encode([*texts, *FOLLOW_UP_ANCHORS])
        langs = [guess_language(t) for t in (*texts, *FOLLOW_UP_ANCHORS)]
        examples, anchors = embeddings[: len(texts)], embeddings[len(texts) :]
        self._index = ExampleIndex(examples, langs[: len(texts)], label_ids, len(labels), centering)
        self._follow_up = ExampleIndex(
            anchors, langs[len(texts) :], [0] * len(anchors), 1, centering
        )
        self.calibration: Calibration | None = None
        if threshold is None:
            self.calibration = self._calibrate(neutral)
            threshold = self.calibration.threshold
        self.threshold = float(threshold)

    def _calibrate(self, neutral: NeutralReference) -> Calibration:
        loo, own = self._index.leave_one_out()
        rows = np.arange(len(own))
        own_scores = loo[rows, own]
        own_wins = loo.argmax(axis=1) == own
        others = loo.copy()
        others[rows, own] = -np.inf
        near = others.max(axis=1) if loo.shape[1] > 1 else np.empty(0, dtype=np.float32)
        far = self._index.scores(neutral.embeddings, neutral.languages).max(axis=1)
        return calibrate(own_scores, own_wins, near, far)

    def explain_threshold(self) -> str:
        if self.calibration is None:
            return f"threshold {self.threshold:.3f} (set in the config)"
        return self.calibration.explain()

    @property
    def labels(self) -> list[str]:
        return list(self._names)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Label scores [len(texts), len(labels)]; the threshold applies to these."""
        return self._index.scores(self._encoder.encode(texts), [guess_language(t) for t in texts])

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [
            decide(row, self._names, self.threshold, self.fallback) for row in self.scores(texts)
        ]

    def classify_conversations(self, conversations: Sequence[Sequence[str]]) -> list[Prediction]:
        """One prediction per conversation, given its user messages oldest -> newest."""
        window = self.turn_policy.window
        recent = [list(conv)[-window:] for conv in conversations]
        flat = [message for conv in recent for message in conv]
        embeddings = self._encoder.encode(flat)  # every message of every conversation at once
        langs = [guess_language(t) for t in flat]
        label_scores = self._index.scores(embeddings, langs)
        follow_scores = self._follow_up.scores(embeddings, langs)[:, 0]
        predictions: list[Prediction] = []
        start = 0
        for conv in recent:
            end = start + len(conv)
            if not conv:
                predictions.append(Prediction(self.fallback, 0.0, None, 0.0))
                continue
            rows = label_scores[start:end]
            follow_up = [
                bool(f >= self.turn_policy.follow_up_min and f >= s.max())
                for f, s in zip(follow_scores[start:end], rows, strict=True)
            ]
            combined = combine_turns(rows, follow_up, self.threshold, self.turn_policy)
            predictions.append(decide(combined, self._names, self.threshold, self.fallback))
            start = end
        return predictions


def load_classifier(
    model_dir: Path,
    labels: Sequence[Label],
    *,
    threshold: float | None,
    fallback: str,
    max_tokens: int,
    threads: int = 2,
) -> LabelClassifier | SequenceClassifier:
    """Build the classifier a model directory calls for.

    A directory with ``labels.json`` holds a fine-tuned sequence classifier (its ONNX model
    outputs logits per label, so examples are not needed); any other directory holds a
    sentence encoder, used with the labels' examples. ``threshold=None``: calibrated from
    the examples for an encoder; a probability of 0.5 for a sequence classifier.
    """
    model_dir = Path(model_dir)
    if (model_dir / LABELS_FILE).is_file():
        return SequenceClassifier(
            model_dir,
            [label.name for label in labels],
            threshold=SEQUENCE_DEFAULT_THRESHOLD if threshold is None else threshold,
            fallback=fallback,
            max_tokens=max_tokens,
            threads=threads,
        )
    encoder = Encoder(model_dir, max_tokens=max_tokens, threads=threads)
    return LabelClassifier(encoder, labels, threshold=threshold, fallback=fallback)
