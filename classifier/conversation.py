"""Pick the topic of a conversation from its user messages alone (no server-side state).

Input: one score vector per user message, oldest first, and for each message whether it
looks like a content-free follow-up ("ok, do it", "and the second one?"). The rule:

0. Acknowledgments ("ok thanks", "merci", "got it": ``classifier.text.is_acknowledgment``)
   are left out before scoring (``without_acknowledgments``): they never move a
   conversation, by rule rather than because their scores happen to stay low.
1. A last message that clearly matches a label (best score >= threshold + switch_margin)
   decides alone: the user is asking about that now, whatever came before.
2. A last message that is a follow-up keeps the earlier topic: it gets a tiny weight in a
   recency-weighted mean over the last few messages.
3. Otherwise (the last message matches a label weakly, or none at all) the recency-weighted
   mean lets the earlier messages carry it: "and for how many days?" after a dosage
   question stays medical. Only a clear match (rule 1) changes a conversation's topic;
   letting unmatched messages decide alone cost 2 points on data/eval/multiturn.jsonl.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifier.text import is_acknowledgment


@dataclass(frozen=True)
class TurnPolicy:
    switch_margin: float = 0.08
    decay: float = 0.5  # each older message counts half as much as the next one
    window: int = 4  # user messages looked at, the last one included
    follow_up_weight: float = 0.05  # a content-free message barely moves the topic
    # How close (blended cosine, as label scores) a message must be to the follow-up anchors
    # to count as one. Measured on data/eval/multiturn.jsonl with the neutral-corpus centring:
    # content-free follow-ups score 0.41-0.80; the few messages with a topic of their own that
    # reach 0.32 score higher on a label, so the ">= best label score" test keeps them out.
    # Accuracy there is flat for values from 0.26 to 0.36.
    follow_up_min: float = 0.32

    def __post_init__(self) -> None:
        if not 0 < self.decay <= 1 or self.window < 1 or not 0 <= self.follow_up_weight <= 1:
            raise ValueError(f"invalid turn policy {self!r}")


def without_acknowledgments(messages: Sequence[str]) -> list[str]:
    """The messages that say something: acknowledgments left out, unless nothing else is
    there (a conversation of "ok" alone is decided on "ok", i.e. usually the fallback)."""
    kept = [m for m in messages if not is_acknowledgment(m)]
    return kept or list(messages)


def combine_turns(
    scores: np.ndarray,
    follow_up: Sequence[bool],
    threshold: float | np.ndarray,
    policy: TurnPolicy,
) -> np.ndarray:
    """Return the label-score vector the conversation's decision is made on. ``threshold``:
    one for all labels or one per label (the last message's best label's applies)."""
    if scores.ndim != 2 or len(scores) == 0 or len(follow_up) != len(scores):
        raise ValueError("need one score row and one follow-up flag per message")
    last: np.ndarray = scores[-1]
    if len(scores) == 1:
        return last
    best = int(last.argmax())
    limit = float(threshold[best]) if isinstance(threshold, np.ndarray) else threshold
    if float(last[best]) >= limit + policy.switch_margin:
        return last
    window = scores[-policy.window :]
    flags = np.asarray(follow_up[-policy.window :], dtype=bool)
    age = np.arange(len(window))[::-1]  # 0 for the last message
    weights = policy.decay**age * np.where(flags, policy.follow_up_weight, 1.0)
    if weights.sum() <= 0:
        return last
    combined: np.ndarray = (weights[:, None] * window).sum(axis=0) / weights.sum()
    return combined
