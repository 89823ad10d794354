"""A threshold per label: calibrated from the label's own examples, so a label's routing
does not depend on how many examples another label has (issue #30)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from classifier.encoder import Encoder
from classifier.labels import ENCODERS, USE_SUBDIR, Label, LabelClassifier
from extproc.config import ClassifierConfig

COLOURS = ("black", "white", "navy", "red", "olive", "grey", "beige", "teal", "pink", "brown")
ITEMS = ("t-shirt", "hoodie", "rain jacket", "chino trousers", "wool scarf", "denim shirt")
SIZES = ("XS", "S", "M", "L", "XL")
TEMPLATES = (
    "Is the {c} {i} in stock in size {s}?",
    "Do you still have the {c} {i} in {s}?",
    "When will the {c} {i} be back in size {s}?",
    "Can I order the {c} {i} in size {s} today?",
    "Is there a {c} {i} left in {s}?",
    "Check stock for {c} {i}, size {s}",
    "Any {c} {i} available in size {s}?",
    "I want the {c} {i} in {s}, is it available?",
    "Availability of the {c} {i} in size {s} please",
    "Has the {c} {i} in size {s} sold out?",
)


def catalogue() -> Label:
    """3,000 near-duplicate stock questions, like a product catalogue pasted into a label."""
    examples = [
        template.format(c=c, i=i, s=s)
        for template, c, i, s in itertools.product(TEMPLATES, COLOURS, ITEMS, SIZES)
    ]
    assert len(examples) == len(set(examples)) == 3000
    return Label("catalogue", tuple(examples))


def _default(encoder: Encoder, use_encoder: Encoder, labels: list[Label]) -> LabelClassifier:
    specs = ENCODERS[ClassifierConfig().encoder]
    by_dir = {"": encoder, USE_SUBDIR: use_encoder}
    return LabelClassifier(
        [by_dir[spec.subdir] for spec in specs],
        labels,
        threshold=None,
        fallback="other",
        centroid_weights=[spec.centroid_weight for spec in specs],
        languages=[spec.languages for spec in specs],
        second_opinion=[spec.second_opinion for spec in specs],
    )


def test_a_big_near_duplicate_label_moves_no_other_labels_threshold_or_recall(
    encoder: Encoder, use_encoder: Encoder, labels: list[Label]
) -> None:
    before = _default(encoder, use_encoder, labels)
    after = _default(encoder, use_encoder, [*labels, catalogue()])
    n = len(labels)
    assert after.labels[:n] == before.labels
    # Within one point (0.01 of a cosine score; one point of recall).
    np.testing.assert_allclose(after.thresholds[:n], before.thresholds, atol=0.01)
    np.testing.assert_allclose(
        after.leave_one_out_recall()[:n], before.leave_one_out_recall(), atol=0.01
    )
    assert before.leave_one_out_recall().min() >= 0.7  # and it is a recall worth keeping
    lines = after.explain_threshold().splitlines()
    assert lines[n].startswith("catalogue: threshold") and "3000 examples" in lines[n]


def test_each_label_gets_its_own_threshold(encoder: Encoder, labels: list[Label]) -> None:
    clf = LabelClassifier(encoder, labels, threshold=None, fallback="other")
    assert len(set(clf.thresholds.tolist())) > 1  # not one number copied to all
    for line, threshold in zip(
        clf.explain_threshold().splitlines(), clf.label_thresholds, strict=True
    ):
        assert line.startswith(f"{threshold.label}: threshold {threshold.value:.3f}, halfway")
        assert "its own: " in line and "examples it would take rejected" in line
        # Halfway between its own calibration and the median label's.
        assert threshold.calibration is not None and threshold.median is not None
        own = threshold.calibration.threshold
        assert threshold.value == pytest.approx((own + threshold.median) / 2, abs=1e-3)


def test_a_label_with_too_few_examples_takes_the_pooled_or_the_configs_threshold(
    encoder: Encoder, labels: list[Label]
) -> None:
    few = Label("weather", ("Will it rain tomorrow?", "How hot will it be this weekend?"))
    pooled = LabelClassifier(encoder, [*labels, few], threshold=None, fallback="other")
    (weather,) = [t for t in pooled.label_thresholds if t.label == "weather"]
    assert weather.source == "pooled" and weather.calibration is not None
    assert weather.value == weather.calibration.threshold
    assert "2 examples, under the 6 needed" in weather.explain()
    assert pooled.classify(["Is it going to rain on Saturday?"])[0].label == "weather"


@pytest.mark.parametrize("threshold", [0.2, 0.4])
def test_the_best_labels_own_threshold_decides(
    encoder: Encoder, labels: list[Label], threshold: float
) -> None:
    medical = next(label for label in labels if label.name == "medical")
    others = [label for label in labels if label.name != "medical"]
    prompt = "what is a normal resting heart rate?"
    strict = LabelClassifier(
        encoder,
        [Label("medical", medical.examples, threshold=0.99), *others],
        threshold=threshold,
        fallback="other",
    )
    (pred,) = strict.classify([prompt])
    assert pred.label == "other" and pred.runner_up == "medical"
    lenient = LabelClassifier(
        encoder,
        [Label("medical", medical.examples, threshold=-1.0), *others],
        threshold=0.99,
        fallback="other",
    )
    assert lenient.classify([prompt])[0].label == "medical"
    assert lenient.classify(["How do I sue my landlord?"])[0].label == "other"
