"""Plain data passed into and out of the classifiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from classifier.errors import LabelError


@dataclass(frozen=True)
class Label:
    """A route label described by a few example prompts (3-20 is the intended range)."""

    name: str
    examples: tuple[str, ...]
    description: str | None = None
    threshold: float | None = None  # None: calibrated (classifier.calibrate) or the default

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise LabelError("label name must be a non-empty string")
        # Accept a list from callers that build labels from YAML, but store a tuple so the
        # dataclass stays hashable and immutable.
        object.__setattr__(self, "examples", tuple(self.examples))
        if any(not isinstance(e, str) or not e.strip() for e in self.examples):
            raise LabelError(f"label {self.name!r}: examples must be non-empty strings")


@dataclass(frozen=True)
class Prediction:
    """The decision for one text or conversation.

    ``label`` is the fallback name when the best score is under the threshold; ``score`` is
    still the best label's score then, and ``runner_up`` the best label that was not chosen
    (the best real label when the fallback won).
    """

    label: str
    score: float
    runner_up: str | None
    runner_up_score: float
    second_opinion: bool = False  # a second-opinion encoder scored it (classifier.labels)


class Classifier(Protocol):
    """What both LabelClassifier and SequenceClassifier offer to callers."""

    @property
    def labels(self) -> list[str]: ...

    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...

    def classify_conversations(
        self, conversations: Sequence[Sequence[str]]
    ) -> list[Prediction]: ...
