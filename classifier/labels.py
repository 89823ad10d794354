"""Few-shot label classifier: a label is a name plus a handful of example prompts.

The examples are embedded once at construction (no training run); ``classify`` embeds the
prompts and scores them against the examples with the rule in ``classifier.scoring``, after
centring on the fixed neutral corpus of ``classifier.neutral``.
``load_classifier`` picks this or a fine-tuned ``SequenceClassifier`` from a model directory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from classifier.calibrate import (
    CALIBRATED,
    FROM_CONFIG,
    FROM_LABEL,
    MIN_CALIBRATION_EXAMPLES,
    POOLED,
    LabelThreshold,
    calibrate,
    calibrate_label,
)
from classifier.conversation import TurnPolicy, combine_turns, without_acknowledgments
from classifier.decision import check_settings, decide
from classifier.encoder import MODEL_FILE, Encoder
from classifier.errors import LabelError, ModelLoadError
from classifier.neutral import NeutralReference, neutral_reference
from classifier.scoring import CENTROID_WEIGHT, ExampleIndex
from classifier.sequence import LABELS_FILE, SEQUENCE_DEFAULT_THRESHOLD, SequenceClassifier
from classifier.text import ENGLISH, FOLLOW_UP_ANCHORS, guess_language
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
    languages: frozenset[str] | None  # the prompt languages it scores; None: all
    second_opinion: bool  # scores only the prompts the other encoders are unsure of

    def rows(
        self,
        languages: Sequence[str | None],
        among: np.ndarray | None = None,
        *,
        first: bool | None = None,
        swapped: frozenset[str] = frozenset(),
    ) -> np.ndarray:
        """Indices of the texts (by guessed language, and among those marked if a mask is
        given) that this encoder scores; with ``first``, only those it scores as the first
        opinion (True) or as the second (False): in the ``swapped`` languages a
        second-opinion encoder gives the first opinion and the others the second."""
        return np.array(
            [
                i
                for i, lang in enumerate(languages)
                if (self.languages is None or lang in self.languages)
                and (among is None or among[i])
                and (first is None or first == (self.second_opinion == (lang in swapped)))
            ],
            int,
        )


def _mean_over_members(
    n_rows: int, parts: Sequence[tuple[np.ndarray, np.ndarray]], width: int
) -> np.ndarray:
    """Each row's mean over the members that scored it: parts are (rows, scores[rows])."""
    total = np.zeros((n_rows, width), dtype=np.float32)
    count = np.zeros(n_rows, dtype=np.float32)
    for rows, scores in parts:
        total[rows] += scores.reshape(len(rows), width)
        count[rows] += 1
    result: np.ndarray = total / count[:, None]
    return result


# A second-opinion encoder scores a prompt only when the first encoders' best label is
# within SECOND_OPINION_MARGIN of the runner-up (the ranking is in doubt) and scores no
# more than SECOND_OPINION_REACH under their threshold (the prompt might be routed): the
# other prompts keep the first encoders' scores and cost one inference. Chosen on the dev
# sets (docs/research/2026-classifier-log.md, "Fourth round"): margins 0.04-0.06 are one
# plateau; without the reach, the clearly out-of-scope prompts asked for a second opinion.
SECOND_OPINION_MARGIN = 0.05
SECOND_OPINION_REACH = 0.10


def _unsure(scores: np.ndarray, first_thresholds: np.ndarray) -> np.ndarray:
    """Which rows of label scores [n, n_labels] call for a second opinion
    (first_thresholds: per label, the first encoders' calibrated threshold)."""
    if scores.shape[1] < 2:
        return np.zeros(len(scores), dtype=bool)
    top_two = np.partition(scores, -2, axis=1)[:, -2:]
    best = top_two.max(axis=1)
    reach = first_thresholds[scores.argmax(axis=1)] - SECOND_OPINION_REACH
    result: np.ndarray = (best - top_two.min(axis=1) < SECOND_OPINION_MARGIN) & (best >= reach)
    return result


def _leave_one_out_top1(member: _Member, rows: np.ndarray) -> float:
    """Share of the examples at rows whose own label ranks first for this encoder alone
    when each is left out of its label."""
    scores, own = member.index.leave_one_out()
    return float((scores[rows].argmax(axis=1) == own[rows]).mean())


def _swapped_languages(
    members: Sequence[_Member], example_languages: Sequence[str | None]
) -> frozenset[str]:
    """The languages in which a second-opinion encoder leads: those of its scope when, alone,
    it ranks the configured examples of those languages (each left out of its label) first
    more often than every first encoder does. Close English intents (BANKING77) are
    MiniLM's strength and topic or exam subjects USE's; the examples say which a config
    is (docs/research/2026-classifier-log.md, seventh round)."""
    firsts = [m for m in members if not m.second_opinion]
    swapped: set[str] = set()
    for member in members:
        if not member.second_opinion or member.languages is None:
            continue
        rows = member.rows(example_languages)
        if not len(rows):
            continue
        top1 = _leave_one_out_top1(member, rows)
        if all(top1 > _leave_one_out_top1(first, rows) for first in firsts):
            swapped |= member.languages
    return frozenset(swapped)


# Scores the texts of rows for each (member, rows) job: [len(rows), n_labels] per job.
_ScoreJobs = Callable[[list[tuple["_Member", np.ndarray]]], list[np.ndarray]]


# A calibrated label's threshold: this share of its own calibration, the rest the median
# calibrated label's (``_calibrate_all``). Compared on bench/quality.py's sets, held-out
# ones included (docs/research/2026-classifier-log.md, sixth round): alone (1.0), exam
# subjects (topics13, exam14_fr) and French intents lost 5-10 points in scope.
OWN_SHARE = 0.5


@dataclass(frozen=True)
class Simulation:
    """Combined label scores of the traffic the calibration simulates (classifier.calibrate)."""

    in_scope: np.ndarray  # [n_examples, n_labels], each example left out of its own label
    near: np.ndarray  # the same with the own label's column at -inf (not configured)
    far: np.ndarray  # [n_neutral, n_labels] the neutral corpus
    own: np.ndarray  # [n_examples] each example's label id


def _taken_by_label(sim: Simulation, n_labels: int) -> list[dict[int, np.ndarray]]:
    """Per label: the examples of each other label that it would take were their own label
    not configured (its score is their best other), as {their label id: their scores on
    it}. One pass over the examples: a per-pair scan costs labels squared times examples
    (25 s of a 692-label config's load)."""
    taken: list[dict[int, np.ndarray]] = [{} for _ in range(n_labels)]
    if sim.near.shape[1] < 2:
        return taken
    best_other = sim.near.argmax(axis=1)
    order = np.lexsort((sim.own, best_other))  # grouped by the label taking, then by owner
    pairs = np.stack([best_other[order], sim.own[order]], axis=1)
    starts = np.flatnonzero(np.any(np.diff(pairs, axis=0) != 0, axis=1)) + 1
    for group in np.split(order, starts):
        if len(group):
            taker, owner = int(best_other[group[0]]), int(sim.own[group[0]])
            taken[taker][owner] = sim.near[group, taker]
    return taken


def _calibrate_all(
    sim: Simulation, names: Sequence[str]
) -> tuple[list[LabelThreshold], np.ndarray]:
    """Each label's threshold from the simulation (its own examples when it has enough,
    else the pooled calibration) and the thresholds as an array."""
    rows = np.arange(len(sim.own))
    near_best = sim.near.max(axis=1) if sim.near.shape[1] > 1 else np.empty(0, dtype=np.float32)
    pooled = calibrate(
        sim.in_scope[rows, sim.own],
        sim.in_scope.argmax(axis=1) == sim.own,
        near_best,
        sim.far.max(axis=1),
    )
    counts = np.bincount(sim.own, minlength=len(names))
    taken = _taken_by_label(sim, len(names))
    no_scores = np.empty(0, dtype=sim.near.dtype)
    result = []
    for label_id, name in enumerate(names):
        mine = sim.own == label_id
        n = int(counts[label_id])
        if n < MIN_CALIBRATION_EXAMPLES:
            result.append(LabelThreshold(name, pooled.threshold, POOLED, n, pooled))
            continue
        neighbours = [
            (other, taken[label_id].get(other_id, no_scores), int(counts[other_id]))
            for other_id, other in enumerate(names)
            if other_id != label_id
        ]
        calibration = calibrate_label(
            sim.in_scope[mine, label_id],
            sim.in_scope[mine].argmax(axis=1) == label_id,
            neighbours,
            sim.far[:, label_id],
        )
        result.append(LabelThreshold(name, calibration.threshold, CALIBRATED, n, calibration))
    # Partial pooling: one label's calibration rests on 6-20 examples, and one phrasing
    # more or less moves it. Halfway to the median label's keeps what is its own (a tight
    # label above, a loose one below) and shares what the labels say about this encoder;
    # the median gives each label one vote, whatever its number of examples.
    own = [t for t in result if t.source == CALIBRATED]
    if own:
        median = float(np.median([t.value for t in own]))
        result = [
            replace(
                t, value=round(OWN_SHARE * t.value + (1 - OWN_SHARE) * median, 3), median=median
            )
            if t.source == CALIBRATED
            else t
            for t in result
        ]
    return result, np.array([t.value for t in result], dtype=np.float64)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform (macOS)
        return os.cpu_count() or 1


# With more than one CPU, the second encoder of an ensemble embeds in this pool while the
# first runs in the caller's thread: onnxruntime releases the GIL, so a prompt costs the
# slower encoder's time, not the sum. Pinned to one CPU, the two would only take turns and
# pay the hand-off (make bench measured it), so they run one after the other there.
# Shared by all classifiers (reloads make new ones); two workers cover any ensemble here.
_ENCODE_POOL = (
    ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode") if _usable_cpus() > 1 else None
)


def _encode_all(work: Sequence[tuple[Encoder, list[str]]]) -> list[np.ndarray]:
    """Each encoder's embeddings of its texts, the encoders side by side when there are CPUs."""
    if _ENCODE_POOL is None:
        return [encoder.encode(texts) for encoder, texts in work]
    pending = [_ENCODE_POOL.submit(encoder.encode, texts) for encoder, texts in work[1:]]
    first, texts = work[0]
    return [first.encode(texts), *(future.result() for future in pending)]


class LabelClassifier:
    """Classify prompts by similarity to each label's example prompts.

    With several encoders (an ensemble), each scores the prompt with its own embeddings of
    the examples and the label score is the mean of theirs, over the encoders that read the
    prompt's language (an English-only encoder does not score French prompts). A
    second-opinion encoder joins that mean only for the prompts the others are unsure of
    (``_unsure``), so most prompts cost the first encoders alone. In the languages where
    the second-opinion encoder ranks the configured examples better (``_swapped_languages``)
    the roles swap: it scores every such prompt and the others only the unsure ones.
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
        languages: Sequence[frozenset[str] | None] | None = None,
        second_opinion: Sequence[bool] | None = None,
    ) -> None:
        """Each label's threshold: its own ``Label.threshold`` if set, else ``threshold`` if
        set, else calibrated from its examples (``classifier.calibrate``; a label with too
        few examples gets the threshold calibrated from all examples pooled).
        ``centroid_weights``: one per encoder (``classifier.scoring``; default 0.5 each).
        ``languages``: per encoder, the prompt languages it scores (None: all; default all);
        at least one encoder that is not a second opinion must score every language.
        ``second_opinion``: per encoder, whether it scores only unsure prompts (default no)."""
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
        scopes = [None] * len(encoders) if languages is None else list(languages)
        seconds = [False] * len(encoders) if second_opinion is None else list(second_opinion)
        if len(scopes) != len(encoders) or len(seconds) != len(encoders):
            raise LabelError("one language scope and one second-opinion flag per encoder")
        if all(scope is not None or second for scope, second in zip(scopes, seconds, strict=True)):
            raise LabelError("one encoder, not a second opinion, must score all languages")
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
        # Every encoder embeds every example (side by side when there are CPUs): at load a
        # second opinion is needed for any example, in the calibration.
        embedded = _encode_all([(e, [*texts, *FOLLOW_UP_ANCHORS]) for e in encoders])
        for member, weight, scope, second, embeddings in zip(
            encoders, weights, scopes, seconds, embedded, strict=True
        ):
            # The centring is fixed (the neutral corpus's per-language means), so every
            # label's scores depend on its own examples only.
            neutral = neutral_reference(member)
            centering = neutral.centering
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
                    scope,
                    second,
                )
            )
        # Who gets a second opinion is judged against the first encoders' own calibrated
        # thresholds, whatever thresholds the config sets: the scores do not depend on the
        # config's thresholds, so `switchyard tune` can sweep thresholds over them.
        self._first_thresholds: np.ndarray | None = None
        self._swapped = _swapped_languages(self._members, langs[: len(texts)])
        self._example_languages = langs[: len(texts)]
        self._example_texts = texts
        self.simulation: Simulation | None = None
        calibrate_needed = threshold is None and any(label.threshold is None for label in labels)
        if calibrate_needed or any(m.second_opinion for m in self._members):
            first = self._simulate(langs[: len(texts)], None)
            if any(m.second_opinion for m in self._members):
                self._first_thresholds = _calibrate_all(first, names)[1]
                self.simulation = self._simulate(langs[: len(texts)], self._first_thresholds)
            else:
                self.simulation = first
        calibrated = (
            _calibrate_all(self.simulation, names)[0]
            if calibrate_needed and self.simulation is not None
            else []
        )
        self.label_thresholds = [
            LabelThreshold(label.name, float(label.threshold), FROM_LABEL, len(label.examples))
            if label.threshold is not None
            else LabelThreshold(label.name, float(threshold), FROM_CONFIG, len(label.examples))
            if threshold is not None
            else calibrated[i]
            for i, label in enumerate(labels)
        ]
        self.thresholds = np.array([t.value for t in self.label_thresholds], dtype=np.float64)

    def example_decisions(self) -> dict[str, tuple[str, str]]:
        """Each example text: (its label, the label decided for it when it is left out of
        its label and classified as a prompt; the fallback under the threshold)."""
        sim = self.leave_one_out_simulation()
        rows = np.arange(len(sim.own))
        best = sim.in_scope.argmax(axis=1)
        routed = sim.in_scope[rows, best] >= self.thresholds[best]
        return {
            text: (self._names[own], self._names[b] if ok else self.fallback)
            for text, own, b, ok in zip(
                self._example_texts, sim.own.tolist(), best.tolist(), routed.tolist(), strict=True
            )
        }

    def leave_one_out_simulation(self) -> Simulation:
        """The calibration's simulation (computed now if the thresholds are all set)."""
        if self.simulation is None:
            self.simulation = self._simulate(self._example_languages, self._first_thresholds)
        return self.simulation

    def example_counts(self) -> list[int]:
        """Each label's number of examples."""
        return [t.n_examples for t in self.label_thresholds]

    def leave_one_out_recall(self) -> np.ndarray:
        """Per label, the share of its examples routed to it when each is left out of it
        and classified as a prompt (its label wins and clears its threshold)."""
        sim = self.leave_one_out_simulation()
        scores = sim.in_scope[np.arange(len(sim.own)), sim.own]
        routed = (sim.in_scope.argmax(axis=1) == sim.own) & (scores >= self.thresholds[sim.own])
        return np.array([routed[sim.own == i].mean() for i in range(len(self._names))])

    def _simulate(
        self, example_languages: Sequence[str | None], first_thresholds: np.ndarray | None
    ) -> Simulation:
        """The examples and the neutral corpus scored as prompts in their language would be:
        every member's scores are computed for all of them, and _combine keeps what the
        request path would have computed (second opinions included, given first_thresholds)."""
        loo = [m.index.leave_one_out() for m in self._members]
        own = loo[0][1]  # the same examples, in the same order, for every member
        rows = np.arange(len(own))
        in_scope = [scores for scores, _ in loo]
        others = [scores.copy() for scores in in_scope]
        for scores in others:
            scores[rows, own] = -np.inf  # a subject the config does not cover
        neutral_languages = self._members[0].neutral.languages  # the same corpus for all
        far = [m.index.scores(m.neutral.embeddings, neutral_languages) for m in self._members]

        def given(matrices: list[np.ndarray]) -> _ScoreJobs:
            by_member = {id(m): matrix for m, matrix in zip(self._members, matrices, strict=True)}
            return lambda jobs: [by_member[id(m)][job_rows] for m, job_rows in jobs]

        return Simulation(
            in_scope=self._combine(example_languages, given(in_scope), first_thresholds)[0],
            near=self._combine(example_languages, given(others), first_thresholds)[0],
            far=self._combine(neutral_languages, given(far), first_thresholds)[0],
            own=own,
        )

    def _combine(
        self,
        languages: Sequence[str | None],
        score_jobs: _ScoreJobs,
        first_thresholds: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Label scores [n, n_labels] of n texts: the mean over the first encoders that read
        each text's language, then, unless first_thresholds is None, over the second
        opinions too for the texts those are unsure of; and which texts got one [n]."""
        n = len(languages)
        jobs = [
            (m, rows)
            for m in self._members
            if len(rows := m.rows(languages, first=True, swapped=self._swapped))
        ]
        parts = list(zip((rows for _, rows in jobs), score_jobs(jobs), strict=True))
        scores = _mean_over_members(n, parts, len(self._names))
        asked = np.zeros(n, dtype=bool)
        if first_thresholds is None or not any(m.second_opinion for m in self._members):
            return scores, asked
        unsure = _unsure(scores, first_thresholds)
        jobs = [
            (m, rows)
            for m in self._members
            if len(rows := m.rows(languages, among=unsure, first=False, swapped=self._swapped))
        ]
        if not jobs:
            return scores, asked
        for _, rows in jobs:
            asked[rows] = True
        parts += zip((rows for _, rows in jobs), score_jobs(jobs), strict=True)
        return _mean_over_members(n, parts, len(self._names)), asked

    def explain_threshold(self) -> str:
        """One line per label: its threshold and why; then who gets a second opinion."""
        lines = [t.explain() for t in self.label_thresholds]
        seconds = [m for m in self._members if m.second_opinion]
        if seconds and self._first_thresholds is not None:  # always set with seconds
            scope = ", ".join(sorted(seconds[0].languages or ())) or "all"
            reach = ", ".join(
                f"{name} {value - SECOND_OPINION_REACH:.3f}"
                for name, value in zip(self._names, self._first_thresholds, strict=True)
            )
            lines.append(
                f"second opinion for prompts ({scope}) whose best two labels score within "
                f"{SECOND_OPINION_MARGIN:.2f} of each other and the best at least ({reach})"
            )
            if self._swapped:
                swapped = ", ".join(sorted(self._swapped))
                lines.append(
                    f"prompts ({swapped}): the second-opinion encoder gives the first opinion "
                    "and the others the second (alone, it ranks these examples better)"
                )
        return "\n".join(lines)

    def _score(
        self, texts: Sequence[str], *, follow_up: bool
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Label scores [n, n_labels], if asked follow-up anchor scores [n] (ensemble means),
        and which texts got a second opinion [n]. A conversation of one message has no
        earlier topic to follow up on."""
        if not texts:
            empty = np.zeros(0, np.float32)
            return np.zeros((0, len(self._names)), np.float32), empty, empty.astype(bool)
        langs = self._languages(texts)
        follow: list[tuple[np.ndarray, np.ndarray]] = []

        def embed_and_score(jobs: list[tuple[_Member, np.ndarray]]) -> list[np.ndarray]:
            embedded = _encode_all([(m.encoder, [texts[i] for i in rows]) for m, rows in jobs])
            scores = []
            for (m, rows), embeddings in zip(jobs, embedded, strict=True):
                row_langs = [langs[i] for i in rows]
                scores.append(m.index.scores(embeddings, row_langs))
                if follow_up:
                    follow.append((rows, m.follow_up.scores(embeddings, row_langs)))
            return scores

        label_scores, asked = self._combine(langs, embed_and_score, self._first_thresholds)
        if not follow_up:
            return label_scores, None, asked
        return label_scores, _mean_over_members(len(texts), follow, 1)[:, 0], asked

    def _languages(self, texts: Sequence[str]) -> list[str | None]:
        return [guess_language(t[: self._language_chars]) for t in texts]

    @property
    def labels(self) -> list[str]:
        return list(self._names)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Label scores [len(texts), len(labels)]; the thresholds apply to these."""
        return self._score(texts, follow_up=False)[0]

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        scores, _, asked = self._score(texts, follow_up=False)
        return [
            replace(decide(row, self._names, self.thresholds, self.fallback), second_opinion=a)
            for row, a in zip(scores, asked.tolist(), strict=True)
        ]

    def classify_conversations(self, conversations: Sequence[Sequence[str]]) -> list[Prediction]:
        """One prediction per conversation, given its user messages oldest -> newest."""
        window = self.turn_policy.window
        recent = [without_acknowledgments(conv)[-window:] for conv in conversations]
        flat = [message for conv in recent for message in conv]
        # Every message of every conversation at once.
        follow_up_needed = any(len(conv) > 1 for conv in recent)
        label_scores, follow_scores, asked = self._score(flat, follow_up=follow_up_needed)
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
            combined = combine_turns(rows, follow_up, self.thresholds, self.turn_policy)
            prediction = decide(combined, self._names, self.thresholds, self.fallback)
            predictions.append(replace(prediction, second_opinion=bool(asked[start:end].any())))
            start = end
        return predictions


class EncoderSpec(NamedTuple):
    """One encoder of a ``classifier.encoder`` choice."""

    subdir: str  # inside the model directory `switchyard build-model` writes; "" = itself
    centroid_weight: float  # classifier.scoring
    languages: frozenset[str] | None  # prompt languages it scores; None: all
    second_opinion: bool = False  # scores only the prompts the others are unsure of


USE_CENTROID_WEIGHT = 0.7
# all-MiniLM-L6-v2 is English-only: in the ensemble it scores English prompts (where it
# lifts topic and fine-grained intent ranking) and leaves the others to USE, whose French
# it would drag down (docs/research/2026-classifier-log.md).
ENCODERS: dict[str, tuple[EncoderSpec, ...]] = {
    "minilm": (EncoderSpec("", CENTROID_WEIGHT, None),),
    "use": (EncoderSpec(USE_SUBDIR, USE_CENTROID_WEIGHT, None),),
    "minilm+use": (
        EncoderSpec("", CENTROID_WEIGHT, frozenset({ENGLISH})),
        EncoderSpec(USE_SUBDIR, USE_CENTROID_WEIGHT, None),
    ),
    # USE for every prompt, MiniLM's view averaged in for the English prompts USE is unsure
    # of: most of the ensemble's gain for a fraction of its inference
    # (docs/research/2026-classifier-log.md).
    "use+minilm-when-unsure": (
        EncoderSpec(USE_SUBDIR, USE_CENTROID_WEIGHT, None),
        EncoderSpec("", CENTROID_WEIGHT, frozenset({ENGLISH}), second_opinion=True),
    ),
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
    for spec in ENCODERS[encoder]:
        directory = model_dir / spec.subdir if spec.subdir else model_dir
        if not directory.is_dir():
            raise ModelLoadError(
                directory, f"encoder {encoder!r} needs this directory: run `switchyard build-model`"
            )
        encoders.append(shared_encoder(directory, max_tokens=max_tokens, threads=threads))
    return LabelClassifier(
        encoders,
        labels,
        threshold=threshold,
        fallback=fallback,
        centroid_weights=[spec.centroid_weight for spec in ENCODERS[encoder]],
        languages=[spec.languages for spec in ENCODERS[encoder]],
        second_opinion=[spec.second_opinion for spec in ENCODERS[encoder]],
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
