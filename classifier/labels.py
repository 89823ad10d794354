"""Few-shot label classifier: a label is a name plus a handful of example prompts.

The examples are embedded once at construction (no training run); ``classify`` embeds the
prompts and scores them against the examples with the rule in ``classifier.scoring``, after
centring on the fixed neutral corpus of ``classifier.neutral``.
``load_classifier`` picks this or a fine-tuned ``SequenceClassifier`` from a model directory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.calibrate import Calibration, calibrate
from classifier.conversation import TurnPolicy, combine_turns
from classifier.decision import check_settings, decide
from classifier.encoder import MODEL_FILE, Encoder
from classifier.errors import LabelError, ModelLoadError
from classifier.neutral import NeutralReference, neutral_reference
from classifier.scoring import CENTROID_WEIGHT, ExampleIndex
from classifier.sequence import LABELS_FILE, SEQUENCE_DEFAULT_THRESHOLD, SequenceClassifier
from classifier.text import FOLLOW_UP_ANCHORS, guess_language
from classifier.tokenize import CHARS_PER_TOKEN, TOKENIZER_FILE
from classifier.types import Label, Prediction

USE_SUBDIR = "use"

__all__ = ["Label", "LabelClassifier", "Prediction", "SequenceClassifier", "load_classifier"]


@dataclass(frozen=True)
class _Member:
    """One encoder of the classifier, with its embedded examples and follow-up anchors."""

    encoder: Encoder
    index: ExampleIndex
    follow_up: ExampleIndex
    neutral: NeutralReference


class LabelClassifier:
    """Classify prompts by similarity to each label's example prompts.

    With several encoders (an ensemble), each scores the prompt with its own embeddings of
    the examples and the label score is the mean of theirs.
    """

    def __init__(
        self,
        encoder: Encoder | Sequence[Encoder],
        labels: Sequence[Label],
        *,
        threshold: float | None,
        fallback: str,
        turn_policy: TurnPolicy | None = None,
        centroid_weights: Sequence[float] | None = None,
    ) -> None:
        """``threshold=None`` derives the threshold from the examples (``calibration``).
        ``centroid_weights``: one per encoder (``classifier.scoring``; default 0.5 each)."""
        names = [label.name for label in labels]
        check_settings(names, threshold, fallback)
        empty = [label.name for label in labels if not label.examples]
        if empty:
            raise LabelError(f"labels without examples: {empty} (give each 3-20 examples)")
        encoders = [encoder] if isinstance(encoder, Encoder) else list(encoder)
        if not encoders:
            raise LabelError("at least one encoder is required")
        weights = (
            [CENTROID_WEIGHT] * len(encoders) if centroid_weights is None else centroid_weights
        )
        if len(weights) != len(encoders):
            raise LabelError(f"{len(encoders)} encoder(s) but {len(weights)} centroid weight(s)")
        self._names = names
        self.fallback = fallback
        self.turn_policy = turn_policy or TurnPolicy()

        texts = [example for label in labels for example in label.examples]
        label_ids = [i for i, label in enumerate(labels) for _ in label.examples]
        langs = [guess_language(t) for t in (*texts, *FOLLOW_UP_ANCHORS)]
        # The language guess reads no more of a prompt than the tokenizer keeps: a 1 MB
        # prompt costs what its first few thousand characters cost.
        self._language_chars = max(e.max_tokens for e in encoders) * CHARS_PER_TOKEN
        self._members = []
        for member, weight in zip(encoders, weights, strict=True):
            # The centring is fixed (the neutral corpus's per-language means), so every
            # label's scores depend on its own examples only.
            neutral = neutral_reference(member)
            centering = neutral.centering
            embeddings = member.encode([*texts, *FOLLOW_UP_ANCHORS])
            examples, anchors = embeddings[: len(texts)], embeddings[len(texts) :]
            self._members.append(
                _Member(
                    member,
                    ExampleIndex(
                        examples, langs[: len(texts)], label_ids, len(labels), centering, weight
                    ),
                    # The follow-up threshold was read off the 0.5 blend: anchors keep it.
                    ExampleIndex(anchors, langs[len(texts) :], [0] * len(anchors), 1, centering),
                    neutral,
                )
            )
        self.calibration: Calibration | None = None
        if threshold is None:
            self.calibration = self._calibrate()
            threshold = self.calibration.threshold
        self.threshold = float(threshold)

    def _calibrate(self) -> Calibration:
        per_member = [m.index.leave_one_out() for m in self._members]
        loo = np.mean([scores for scores, _ in per_member], axis=0)
        own = per_member[0][1]  # the same examples, in the same order, for every member
        rows = np.arange(len(own))
        own_scores = loo[rows, own]
        own_wins = loo.argmax(axis=1) == own
        others = loo.copy()
        others[rows, own] = -np.inf
        near = others.max(axis=1) if loo.shape[1] > 1 else np.empty(0, dtype=np.float32)
        far = np.mean(
            [m.index.scores(m.neutral.embeddings, m.neutral.languages) for m in self._members],
            axis=0,
        ).max(axis=1)
        return calibrate(own_scores, own_wins, near, far)

    def explain_threshold(self) -> str:
        if self.calibration is None:
            return f"threshold {self.threshold:.3f} (set in the config)"
        return self.calibration.explain()

    def _score(
        self, texts: Sequence[str], *, follow_up: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Label scores [n, n_labels] and, if asked, follow-up anchor scores [n] (ensemble
        means). A conversation of one message has no earlier topic to follow up on."""
        langs = self._languages(texts)
        labels, follow = [], []
        for m in self._members:
            embeddings = m.encoder.encode(texts)
            labels.append(m.index.scores(embeddings, langs))
            if follow_up:
                follow.append(m.follow_up.scores(embeddings, langs)[:, 0])
        return np.mean(labels, axis=0), (np.mean(follow, axis=0) if follow_up else None)

    def _languages(self, texts: Sequence[str]) -> list[str | None]:
        return [guess_language(t[: self._language_chars]) for t in texts]

    @property
    def labels(self) -> list[str]:
        return list(self._names)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Label scores [len(texts), len(labels)]; the threshold applies to these."""
        langs = self._languages(texts)
        per_encoder = [m.index.scores(m.encoder.encode(texts), langs) for m in self._members]
        scores: np.ndarray = np.mean(per_encoder, axis=0)
        return scores

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [
            decide(row, self._names, self.threshold, self.fallback) for row in self.scores(texts)
        ]

    def classify_conversations(self, conversations: Sequence[Sequence[str]]) -> list[Prediction]:
        """One prediction per conversation, given its user messages oldest -> newest."""
        window = self.turn_policy.window
        recent = [list(conv)[-window:] for conv in conversations]
        flat = [message for conv in recent for message in conv]
        # Every message of every conversation at once.
        follow_up_needed = any(len(conv) > 1 for conv in recent)
        label_scores, follow_scores = self._score(flat, follow_up=follow_up_needed)
        predictions: list[Prediction] = []
        start = 0
        for conv in recent:
            end = start + len(conv)
            if not conv:
                predictions.append(Prediction(self.fallback, 0.0, None, 0.0))
                continue
            rows = label_scores[start:end]
            follow_up = (
                [False] * len(conv)
                if follow_scores is None
                else [
                    bool(f >= self.turn_policy.follow_up_min and f >= s.max())
                    for f, s in zip(follow_scores[start:end], rows, strict=True)
                ]
            )
            combined = combine_turns(rows, follow_up, self.threshold, self.turn_policy)
            predictions.append(decide(combined, self._names, self.threshold, self.fallback))
            start = end
        return predictions


# Encoder names (``classifier.encoder``) -> their directories inside the model directory
# that ``switchyard build-model`` writes ("" is the directory itself: all-MiniLM-L6-v2),
# each with its centroid weight (``classifier.scoring``).
USE_CENTROID_WEIGHT = 0.7
ENCODERS: dict[str, tuple[tuple[str, float], ...]] = {
    "minilm": (("", CENTROID_WEIGHT),),
    "use": ((USE_SUBDIR, USE_CENTROID_WEIGHT),),
    "minilm+use": (("", CENTROID_WEIGHT), (USE_SUBDIR, USE_CENTROID_WEIGHT)),
}


def load_classifier(
    model_dir: Path,
    labels: Sequence[Label],
    *,
    threshold: float | None,
    fallback: str,
    max_tokens: int,
    threads: int = 2,
    encoder: str = "minilm",
) -> LabelClassifier | SequenceClassifier:
    """Build the classifier a model directory calls for.

    A directory with ``labels.json`` holds a fine-tuned sequence classifier (its ONNX model
    outputs logits per label, so examples are not needed); any other directory holds a
    sentence encoder, used with the labels' examples. ``threshold=None``: calibrated from
    the examples for an encoder; a probability of 0.5 for a sequence classifier.
    ``encoder`` names the encoder(s) of ``ENCODERS``; a user's own encoder directory (no
    ``use/`` inside) works with "minilm", which means "the directory itself".
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
    if encoder not in ENCODERS:
        raise LabelError(f"unknown encoder {encoder!r}; expected one of {sorted(ENCODERS)}")
    encoders = []
    for subdir, _ in ENCODERS[encoder]:
        directory = model_dir / subdir if subdir else model_dir
        if not directory.is_dir():
            raise ModelLoadError(
                directory, f"encoder {encoder!r} needs this directory: run `switchyard build-model`"
            )
        encoders.append(shared_encoder(directory, max_tokens=max_tokens, threads=threads))
    weights = [weight for _, weight in ENCODERS[encoder]]
    return LabelClassifier(
        encoders, labels, threshold=threshold, fallback=fallback, centroid_weights=weights
    )


# A config reload builds a new classifier while the old one still serves; loading the model
# again each time cost a second session and tokenizer (USE: ~200 MB) per reload, and the
# process kept the high-water mark. Encoders are thread-safe and read-only after
# construction, so classifiers built on the same files and settings share one.
_ENCODERS: dict[tuple[object, ...], Encoder] = {}
_ENCODERS_LOCK = threading.Lock()
_ENCODERS_MAX = 4


def _files_key(directory: Path) -> tuple[object, ...]:
    stats = []
    for name in (MODEL_FILE, TOKENIZER_FILE):
        try:
            stat = (directory / name).stat()
        except OSError:
            return (str(directory), None)  # Encoder() reports the missing file
        stats.append((stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return (str(directory.resolve()), *stats)


def shared_encoder(directory: Path, *, max_tokens: int, threads: int) -> Encoder:
    """The Encoder for these files and settings, loaded once per process while it is used."""
    key = (*_files_key(directory), max_tokens, threads)
    with _ENCODERS_LOCK:
        cached = _ENCODERS.get(key)
    if cached is not None:
        return cached
    encoder = Encoder(directory, max_tokens=max_tokens, threads=threads)
    with _ENCODERS_LOCK:
        if len(_ENCODERS) >= _ENCODERS_MAX:
            _ENCODERS.pop(next(iter(_ENCODERS)))  # the oldest; classifiers keep theirs alive
        return _ENCODERS.setdefault(key, encoder)
