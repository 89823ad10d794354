"""Score embeddings against labelled example embeddings (pure numpy, no model calls).

The rule, chosen on data/eval/dev.jsonl (see docs/research/2026-classifier-log.md):

1. Language centring. Each embedding has a fixed per-language mean subtracted (and is
   re-normalised): the mean embedding of the built-in neutral corpus
   (``classifier.neutral``) in that language. This removes the shared "this is French"
   direction that otherwise makes all French prompts similar to each other, and the generic
   "this is a chat request" direction common to every prompt. The mean does not depend on
   the configured labels, so a label's scores do not move when other labels are added or
   removed (it used to be the mean of the configured examples).
2. Label score = w x cosine to the label centroid + (1 - w) x cosine to the label's
   nearest example. The centroid is robust to one odd example; the nearest example catches
   a prompt that matches one phrasing closely. Their blend beat either alone, top-k means
   and a softmax head fitted on the examples. Each label's score uses only its own
   examples. w is 0.5 for all-MiniLM-L6-v2 (chosen with it) and 0.7 for the multilingual
   encoder (``classifier.labels.ENCODERS``): with it, 0.7 let fewer out-of-scope prompts
   through on the strength of one similar example ("How do I change a flat tire?" against
   car maintenance) on the dev label sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifier.encoder import l2_normalise

# A language's own mean is used only when enough reference sentences are in that language;
# with fewer, the mean is mostly topic, and subtracting it would erase the topic itself.
MIN_EXAMPLES_PER_LANGUAGE = 8
CENTROID_WEIGHT = 0.5  # the default w above (all-MiniLM-L6-v2, a user's own encoder)


@dataclass(frozen=True)
class Centering:
    """Per-language mean vectors, with the all-sentences mean for unknown languages.

    ``fit`` takes any reference sentences' embeddings; the classifier fits it on the fixed
    neutral corpus (``classifier.neutral.neutral_centering``), never on the label examples.
    """

    overall: np.ndarray
    by_language: dict[str, np.ndarray]

    @classmethod
    def fit(cls, embeddings: np.ndarray, languages: Sequence[str | None]) -> Centering:
        langs = np.array([lang or "" for lang in languages])
        by_language = {
            lang: embeddings[langs == lang].mean(axis=0)
            for lang in sorted(set(langs) - {""})
            if (langs == lang).sum() >= MIN_EXAMPLES_PER_LANGUAGE
        }
        return cls(overall=embeddings.mean(axis=0), by_language=by_language)

    def apply(self, embeddings: np.ndarray, languages: Sequence[str | None]) -> np.ndarray:
        means = (
            np.stack([self.by_language.get(lang or "", self.overall) for lang in languages])
            if len(languages)
            else np.zeros_like(embeddings)
        )
        return l2_normalise(embeddings - means)


# Rows of the example-by-example similarity computed at once in leave_one_out: memory grows
# with rows x examples, not with examples squared. A pasted catalogue of 20,000 examples
# needed 1.6 GB at once, more than the pod's limit during a live reload; in blocks of 256
# rows it needs 20 MB, for 5-10 % more time than one block of 1,024 (1.9 s against 1.75).
LEAVE_ONE_OUT_ROWS = 256


class ExampleIndex:
    """Centred example embeddings grouped by label, scored with the centroid/nearest blend."""

    def __init__(
        self,
        embeddings: np.ndarray,
        languages: Sequence[str | None],
        label_ids: Sequence[int],
        n_labels: int,
        centering: Centering,
        centroid_weight: float = CENTROID_WEIGHT,
    ) -> None:
        if not 0.0 <= centroid_weight <= 1.0:
            raise ValueError(f"centroid_weight must be within [0, 1], got {centroid_weight}")
        self._centroid_weight = centroid_weight
        ids = np.asarray(label_ids, dtype=np.int64)
        if len(ids) != len(embeddings) or len(ids) == 0:
            raise ValueError("one label id per example embedding, and at least one example")
        if set(ids.tolist()) != set(range(n_labels)):
            raise ValueError("every label needs at least one example")
        self.centering = centering
        order = np.argsort(ids, kind="stable")
        # Sorted by label, so the per-label maximum is one np.maximum.reduceat call.
        self._examples = centering.apply(embeddings, list(languages))[order]
        self._ids = ids[order]
        self._starts = np.searchsorted(self._ids, np.arange(n_labels))
        self._sums = np.add.reduceat(self._examples, self._starts, axis=0)
        self._centroids = l2_normalise(self._sums)
        self._leave_one_out: np.ndarray | None = None

    def scores(self, embeddings: np.ndarray, languages: Sequence[str | None]) -> np.ndarray:
        """Label scores [n, n_labels] for raw (uncentred) embeddings, higher is closer."""
        q = self.centering.apply(embeddings, list(languages))
        nearest = np.maximum.reduceat(q @ self._examples.T, self._starts, axis=1)
        centroid = q @ self._centroids.T
        w = self._centroid_weight
        blended: np.ndarray = w * centroid + (1 - w) * nearest
        return blended.astype(np.float32)

    def leave_one_out(self) -> tuple[np.ndarray, np.ndarray]:
        """Each example's scores [n_examples, n_labels] with itself left out of its label,
        and its label id. A label's only example scores -1 on its own label (nothing left).
        Computed once (the examples do not change); callers get their own copies."""
        if self._leave_one_out is None:
            self._leave_one_out = self._compute_leave_one_out()
        return self._leave_one_out.copy(), self._ids.copy()

    def _compute_leave_one_out(self) -> np.ndarray:
        x = self._examples
        rows = np.arange(len(x))
        nearest = np.empty((len(x), len(self._starts)), dtype=x.dtype)
        for start in range(0, len(x), LEAVE_ONE_OUT_ROWS):
            block = rows[start : start + LEAVE_ONE_OUT_ROWS]
            sims = x[block] @ x.T
            sims[block - start, block] = -np.inf
            nearest[block] = np.maximum.reduceat(sims, self._starts, axis=1)
        centroid = x @ self._centroids.T
        rest = self._sums[self._ids] - x  # own label's sum without the example itself
        norms = np.linalg.norm(rest, axis=1)
        own_centroid = np.where(
            norms > 1e-6, np.einsum("ij,ij->i", x, rest) / np.maximum(norms, 1e-6), -1.0
        )
        centroid[rows, self._ids] = own_centroid
        nearest[rows, self._ids] = np.where(
            np.isfinite(nearest[rows, self._ids]), nearest[rows, self._ids], -1.0
        )
        w = self._centroid_weight
        blended: np.ndarray = (w * centroid + (1 - w) * nearest).astype(np.float32)
        return blended
