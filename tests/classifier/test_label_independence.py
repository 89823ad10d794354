"""A label's scores depend on its own examples only, not on which other labels exist.

The centring that removes the language direction is the mean of a fixed neutral corpus
(classifier.neutral), not of the configured examples, so operators can add and remove labels
in the YAML without moving the others.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.encoder import Encoder
from classifier.evaluate import load_jsonl
from classifier.labels import Label, LabelClassifier
from classifier.neutral import NEUTRAL, neutral_centering
from classifier.scoring import Centering
from classifier.text import guess_language

from .conftest import DATA

EPSILON = 1e-5  # float32 rounding: the scores are in fact computed from the same numbers
THRESHOLD = 0.22

TRAVEL = Label(
    "travel",
    (
        "Do I need a visa to visit Canada?",
        "What can I bring in my hand luggage?",
        "Find me a cheap flight to Lisbon in May",
        "Quels vaccins pour un voyage au Pérou ?",
        "How early should I arrive at the airport for an international flight?",
    ),
)
PROMPTS = [
    "what is a normal resting heart rate?",
    "Mon fils a de la fièvre depuis hier soir, que faire ?",
    "Which documents do I need to board a flight to Japan with a stopover in Dubai?",
    "Write a short poem about the autumn leaves.",
]


def _by_name(labels: list[Label]) -> dict[str, Label]:
    return {label.name: label for label in labels}


def _column(clf: LabelClassifier, name: str, texts: list[str]) -> np.ndarray:
    return clf.scores(texts)[:, clf.labels.index(name)]


@pytest.mark.parametrize(
    "label_sets",
    [
        (["medical"], ["medical", "travel"]),
        (["medical", "travel"], ["medical", "finance", "legal", "cooking", "travel"]),
        (["medical", "finance"], ["medical", "finance", "legal", "cooking", "coding", "support"]),
    ],
)
def test_adding_or_removing_labels_does_not_move_a_labels_scores(
    encoder: Encoder, labels: list[Label], label_sets: tuple[list[str], list[str]]
) -> None:
    pool = {**_by_name(labels), "travel": TRAVEL}
    small, large = (
        LabelClassifier(encoder, [pool[n] for n in names], threshold=THRESHOLD, fallback="other")
        for names in label_sets
    )
    for name in label_sets[0]:
        np.testing.assert_allclose(
            _column(small, name, PROMPTS), _column(large, name, PROMPTS), atol=EPSILON
        )


def test_the_issue_prompt_stays_medical_with_medical_alone(
    encoder: Encoder, labels: list[Label], classifier: LabelClassifier
) -> None:
    # It scored 0.28 with the 7 example labels but 0.13-0.20 (the fallback) with `medical`
    # alone when the centring was the mean of the configured examples.
    prompt = "what is a normal resting heart rate?"
    medical = _by_name(labels)["medical"]
    for label_set in ([medical], [medical, TRAVEL]):
        clf = LabelClassifier(encoder, label_set, threshold=THRESHOLD, fallback="other")
        (pred,) = clf.classify([prompt])
        assert pred.label == "medical"
        assert pred.score == pytest.approx(classifier.classify([prompt])[0].score, abs=EPSILON)


@pytest.mark.parametrize("name", ["medical", "coding", "support"])
def test_a_one_label_config_classifies_its_held_out_prompts(
    encoder: Encoder, labels: list[Label], name: str
) -> None:
    # The same explicit threshold on both sides: a calibrated one would differ between
    # one label and seven (that is calibration's job), and this test is about the scores.
    full = LabelClassifier(encoder, labels, threshold=THRESHOLD, fallback="other")
    alone = LabelClassifier(
        encoder, [_by_name(labels)[name]], threshold=THRESHOLD, fallback="other"
    )
    rows = load_jsonl(DATA / "eval.jsonl")
    own = [text for text, label in rows if label == name]
    out_of_scope = [text for text, label in rows if label == "other"]
    recall_alone = np.mean([p.label == name for p in alone.classify(own)])
    recall_full = np.mean([p.label == name for p in full.classify(own)])
    # Alone, nothing can take its prompts away; the rejections are the same as with all labels.
    assert recall_alone >= recall_full
    assert recall_alone >= 0.7, recall_alone
    # And it does not swallow everything: out-of-scope prompts stay out. (Prompts of labels
    # that are not configured can land on it when they are close: with `finance` gone,
    # billing questions go to `support`. That is the other labels' absence, not a shift.)
    assert np.mean([p.label == name for p in alone.classify(out_of_scope)]) < 0.1


def test_neutral_corpus_is_balanced_and_tagged_with_its_language() -> None:
    assert set(NEUTRAL) == {"en", "fr", "es", "de", "it", "pt"}
    for lang, sentences in NEUTRAL.items():
        assert len(sentences) == len(NEUTRAL["en"]) and len(set(sentences)) == len(sentences)
        misread = [s for s in sentences if guess_language(s) != lang]
        # English and French were written for the rule; in the translations a few short
        # questions carry no word only their language uses (a tie is None, a tie with
        # English goes to English).
        assert misread == [] if lang in ("en", "fr") else len(misread) <= 3, misread


def test_neutral_corpus_holds_no_evaluation_prompt() -> None:
    neutral = {s.casefold() for sentences in NEUTRAL.values() for s in sentences}
    held_out = {
        text.casefold()
        for name in ("dev.jsonl", "eval.jsonl")
        for text, _ in load_jsonl(DATA / name)
    }
    for line in (DATA / "multiturn.jsonl").read_text(encoding="utf-8").splitlines():
        held_out.update(m.casefold() for m in json.loads(line)["messages"])
    assert neutral.isdisjoint(held_out)


def test_neutral_centering_is_cached_per_model_file(encoder: Encoder) -> None:
    first = neutral_centering(encoder)
    again = neutral_centering(Encoder(encoder.model_dir))  # a reload's new encoder
    assert again is first
    texts = [t for sentences in NEUTRAL.values() for t in sentences]
    langs = [lang for lang, sentences in NEUTRAL.items() for _ in sentences]
    fresh = Centering.fit(encoder.encode(texts), langs)
    for lang in ("en", "fr"):
        np.testing.assert_allclose(first.by_language[lang], fresh.by_language[lang], atol=1e-6)
    other_settings = neutral_centering(Encoder(encoder.model_dir, max_tokens=64))
    assert other_settings is not first
