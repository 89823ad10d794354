"""What a new classifier changes for the labels of the one it replaces (a config reload).

Pure comparisons of two loaded classifiers: nothing is embedded again except the prompts
a caller passes in. The label's leave-one-out recall (``LabelClassifier.leave_one_out_
recall``) is the share of its own examples that still reach it when each is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from classifier.labels import LabelClassifier


@dataclass(frozen=True)
class RecallChange:
    """A label's leave-one-out recall before and after a change."""

    label: str
    before: float
    after: float
    n_before: int  # examples
    n_after: int

    def explain(self) -> str:
        return (
            f"leave-one-out recall on its own examples {self.before:.0%} "
            f"({round(self.before * self.n_before)}/{self.n_before}) -> {self.after:.0%} "
            f"({round(self.after * self.n_after)}/{self.n_after})"
        )


def weakened(
    old: LabelClassifier, new: LabelClassifier, labels: Iterable[str]
) -> list[RecallChange]:
    """The labels (of those named, present in both) whose leave-one-out recall is lower in
    new than in old."""
    old_recall, new_recall = old.leave_one_out_recall(), new.leave_one_out_recall()
    old_counts, new_counts = old.example_counts(), new.example_counts()
    changes = []
    for name in labels:
        if name not in old.labels or name not in new.labels:
            continue
        i, j = old.labels.index(name), new.labels.index(name)
        # Shares of whole examples: a real loss is at least 1/n, rounding is not.
        if new_recall[j] < old_recall[i] - 1e-9:
            changes.append(
                RecallChange(
                    name, float(old_recall[i]), float(new_recall[j]), old_counts[i], new_counts[j]
                )
            )
    return changes
