"""What a new classifier changes for the labels of the one it replaces (a config reload).

Pure comparisons of two loaded classifiers: nothing is embedded again except the prompts
a caller passes in. The label's leave-one-out recall (``LabelClassifier.leave_one_out_
recall``) is the share of its own examples that still reach it when each is left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
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


@dataclass(frozen=True)
class LabelMoves:
    """What a change does to one label: its threshold, and the examples and prompts whose
    decision moves into or out of it (with where they came from or went)."""

    label: str
    threshold_before: float | None  # None: the label is new
    threshold_after: float | None  # None: the label is gone
    examples: int  # its examples present in both configs
    examples_moved: int  # of those, decided otherwise (each left out of its label)
    prompts: int  # the given prompts decided as this label before or after
    prompts_moved: int
    lost_to: dict[str, int]  # examples and prompts it decided before, by their new decision
    gained_from: dict[str, int]  # those it decides now, by their old decision

    @property
    def examples_moved_share(self) -> float:
        return self.examples_moved / self.examples if self.examples else 0.0

    def explain(self) -> str:
        def by_label(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "none"

        if self.threshold_before is None:
            text = f"{self.label}: new label, threshold {self.threshold_after:.3f}"
        elif self.threshold_after is None:
            text = f"{self.label}: removed (threshold was {self.threshold_before:.3f})"
        else:
            text = (
                f"{self.label}: threshold {self.threshold_before:.3f} -> "
                f"{self.threshold_after:.3f}; {self.examples_moved}/{self.examples} of its "
                "examples change decision"
            )
        if self.prompts:
            text += f"; {self.prompts_moved}/{self.prompts} of the prompts change decision"
        return (
            f"{text}; decisions it loses, by new decision: {by_label(self.lost_to)}; "
            f"decisions it gains, by old decision: {by_label(self.gained_from)}"
        )


def moves(
    old: LabelClassifier, new: LabelClassifier, prompts: Sequence[str] = ()
) -> list[LabelMoves]:
    """Per label of either classifier (old's order, then new's new labels), what moves."""
    old_examples, new_examples = old.example_decisions(), new.example_decisions()
    shared = [text for text in old_examples if text in new_examples]
    before = [old_examples[t][1] for t in shared]
    after = [new_examples[t][1] for t in shared]
    owner = {t: new_examples[t][0] for t in shared}
    old_prompts = [p.label for p in old.classify(list(prompts))] if prompts else []
    new_prompts = [p.label for p in new.classify(list(prompts))] if prompts else []
    names = [*old.labels, *(name for name in new.labels if name not in old.labels)]
    result = []
    for name in names:
        own = [i for i, t in enumerate(shared) if owner[t] == name]
        lost: Counter[str] = Counter()
        gained: Counter[str] = Counter()
        for b, a in [*zip(before, after, strict=True), *zip(old_prompts, new_prompts, strict=True)]:
            if b == name and a != name:
                lost[a] += 1
            elif a == name and b != name:
                gained[b] += 1
        result.append(
            LabelMoves(
                label=name,
                threshold_before=_threshold(old, name),
                threshold_after=_threshold(new, name),
                examples=len(own),
                examples_moved=sum(before[i] != after[i] for i in own),
                prompts=sum(name in (b, a) for b, a in zip(old_prompts, new_prompts, strict=True)),
                prompts_moved=sum(
                    name in (b, a) and b != a for b, a in zip(old_prompts, new_prompts, strict=True)
                ),
                lost_to=dict(lost),
                gained_from=dict(gained),
            )
        )
    return result


def _threshold(clf: LabelClassifier, name: str) -> float | None:
    return float(clf.thresholds[clf.labels.index(name)]) if name in clf.labels else None
