"""The threshold calibrated from the examples when the config gives none."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

import classifier.labels
from classifier.calibrate import calibrate, calibrate_label
from classifier.encoder import Encoder
from classifier.evaluate import load_jsonl
from classifier.labels import Label, LabelClassifier, Simulation
from extproc.cli import main
from extproc.config import ClassifierConfig
from tests.classifier.conftest import DATA, REPO

SETS = DATA / "sets"


def _labels(path: Path) -> list[Label]:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Label(item["name"], tuple(item["examples"])) for item in config["labels"]]


def test_the_threshold_separates_simulated_in_scope_from_out_of_scope() -> None:
    own = np.array([0.50, 0.55, 0.60, 0.45, 0.52], dtype=np.float32)
    near = np.array([0.20, 0.25, 0.22, 0.18, 0.30], dtype=np.float32)
    far = np.linspace(0.0, 0.2, 20, dtype=np.float32)
    result = calibrate(own, np.ones(5, dtype=bool), near, far)
    assert 0.30 < result.threshold < 0.45
    assert result.routed == result.rejected_near == result.rejected_far == 1.0
    # An example whose own label does not win can never be routed, whatever the threshold.
    lost = calibrate(own, np.array([True, True, True, True, False]), near, far)
    assert lost.routed == pytest.approx(0.8)


def test_the_threshold_keeps_nearly_all_examples_that_their_label_wins() -> None:
    # Close labels: examples scored without their own label crowd at 0.55-0.68, under most
    # own scores, so the objective alone would climb to ~0.7 and turn away a quarter of the
    # in-scope examples. The threshold stops where 95 % of them are still routed.
    own = np.concatenate([np.linspace(0.50, 0.68, 10), np.linspace(0.70, 0.80, 30)])
    near = np.linspace(0.55, 0.68, 40)
    far = np.linspace(0.0, 0.2, 40, dtype=np.float32)
    result = calibrate(own, np.ones(40, dtype=bool), near, far)
    assert result.capped
    assert result.routed >= 0.95 and result.threshold <= 0.55
    assert "lowered to keep 95%" in result.explain()
    # Well separated labels are not capped: the objective's choice stands.
    apart = calibrate(own, np.ones(40, dtype=bool), near - 0.45, far)
    assert not apart.capped and apart.routed == 1.0


def test_one_label_calibrates_on_the_neutral_corpus_alone() -> None:
    own = np.array([0.4, 0.5], dtype=np.float32)
    far = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    result = calibrate(own, np.ones(2, dtype=bool), np.empty(0, dtype=np.float32), far)
    assert 0.3 < result.threshold <= 0.4
    assert "no other label" in result.explain()


@pytest.mark.parametrize("name", ["pets_garden", "heldout_fitness_cars"])
def test_two_labels_of_eight_examples_route_without_a_threshold(
    encoder: Encoder, name: str
) -> None:
    # The new user: no threshold in the config. pets_garden was looked at while
    # choosing the rule; heldout_fitness_cars was not.
    clf = LabelClassifier(encoder, _labels(SETS / f"{name}.yaml"), threshold=None, fallback="other")
    rows = load_jsonl(SETS / f"{name}.jsonl")
    predicted = [p.label for p in clf.classify([text for text, _ in rows])]
    in_scope = [
        p == label for (_, label), p in zip(rows, predicted, strict=True) if label != "other"
    ]
    rejected = [
        p == "other" for (_, label), p in zip(rows, predicted, strict=True) if label == "other"
    ]
    assert len(in_scope) == len(rejected) == 10
    assert sum(in_scope) >= 9, (clf.thresholds, predicted)
    assert sum(rejected) >= 9, (clf.thresholds, predicted)


def test_the_threshold_follows_the_label_set(encoder: Encoder, labels: list[Label]) -> None:
    # Twenty close paraphrases per intent score far higher than two loose topics: one fixed
    # threshold cannot serve both, the calibrated one moves with them.
    intents = LabelClassifier(
        encoder, _labels(SETS / "intents_en.yaml"), threshold=None, fallback="other"
    )
    topics = LabelClassifier(
        encoder, _labels(SETS / "pets_garden.yaml"), threshold=None, fallback="other"
    )
    assert np.median(intents.thresholds) > np.median(topics.thresholds) + 0.1


def test_calibration_is_deterministic_and_an_explicit_threshold_wins(
    encoder: Encoder, labels: list[Label]
) -> None:
    first = LabelClassifier(encoder, labels, threshold=None, fallback="other")
    again = LabelClassifier(Encoder(encoder.model_dir), labels, threshold=None, fallback="other")
    np.testing.assert_array_equal(first.thresholds, again.thresholds)
    lines = first.explain_threshold().splitlines()
    assert len(lines) == len(labels) and all("calibrated from the examples" in x for x in lines)
    fixed = LabelClassifier(encoder, labels, threshold=0.3, fallback="other")
    assert (fixed.thresholds == 0.3).all() and first.simulation is not None
    assert fixed.simulation is None and "set in the config" in fixed.explain_threshold()
    # A label's own threshold wins over the config's and over the calibration.
    own = [replace(labels[0], threshold=0.5), *labels[1:]]
    for clf in (
        LabelClassifier(encoder, own, threshold=0.3, fallback="other"),
        LabelClassifier(encoder, own, threshold=None, fallback="other"),
    ):
        assert clf.thresholds[0] == 0.5
        assert clf.explain_threshold().splitlines()[0].endswith("0.500 (set on the label)")


def _config(tmp_path: Path, model_dir: Path, **classifier: object) -> Path:
    config = yaml.safe_load((REPO / "switchyard.yaml").read_text(encoding="utf-8"))
    config["classifier"] = {"model": str(model_dir), **classifier}
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_check_and_classify_explain_the_threshold(
    tmp_path: Path,
    model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The example config's providers read their keys from Envoy's environment; check
    # verifies those variables are set.
    monkeypatch.setenv("API_A_KEY", "test-key-a")
    monkeypatch.setenv("API_B_KEY", "test-key-b")
    path = _config(tmp_path, model_dir)
    assert main(["check", "--model", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "calibrated from the examples" in out and "neutral prompts rejected" in out
    prompts = ["Quelle dose de paracétamol pour un enfant de 20 kg ?", "Write a haiku about rain"]
    assert main(["classify", "--explain", "-c", str(path), *prompts]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"encoder {ClassifierConfig().encoder}"
    assert all("calibrated" in line for line in lines[1:8])
    assert lines[-2].startswith("medical ") and ">= medical's threshold" in lines[-2]
    assert lines[-1].startswith("other ") and "< " in lines[-1] and "'s threshold" in lines[-1]
    explicit = _config(tmp_path, model_dir, threshold=0.3)
    assert main(["check", "--model", "-c", str(explicit)]) == 0
    assert "threshold 0.300 (set in the config)" in capsys.readouterr().out


def test_tune_prints_the_trade_off_and_writes_the_chosen_threshold(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load((REPO / "switchyard.yaml").read_text(encoding="utf-8"))
    config["classifier"] = {"model": str(model_dir)}
    config["labels"] = yaml.safe_load((SETS / "pets_garden.yaml").read_text())["labels"]
    config["routes"] = [
        r for r in config["routes"] if "match" not in r or "label" not in r["match"]
    ]
    path = tmp_path / "switchyard.yaml"
    path.write_text("# keep me\n" + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    args = ["tune", "-c", str(path), str(SETS / "pets_garden.jsonl"), "--max-misroute", "0"]
    assert main([*args, "--write"]) == 0
    out = capsys.readouterr().out
    assert "OOS recall" in out and "<- chosen" in out and "misroute 0.0%" in out
    text = path.read_text(encoding="utf-8")
    written = yaml.safe_load(text)["classifier"]["threshold"]
    assert text.startswith("# keep me\n") and f"chosen threshold {written:.3f}" in out
    assert main(["tune", "-c", str(path), str(SETS / "pets_garden.jsonl")]) == 0
    again = capsys.readouterr().out
    assert f"threshold {written:.3f} (set in the config)" in again
    # The scores do not depend on the config's threshold (not even who gets the default
    # encoder's second opinion), so the trade-off table is the same with it set.
    assert _table_rows(again) == _table_rows(out)


def _table_rows(tune_output: str) -> list[str]:
    """The table's rows (threshold and rates), without the marker of the chosen one."""
    return [
        line.replace("<- chosen", "").rstrip()
        for line in tune_output.splitlines()
        if line[:1] == " " and line.split()[0].replace(".", "", 1).isdigit()
    ]


def test_tune_needs_out_of_scope_rows(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, model_dir)
    data = tmp_path / "dev.jsonl"
    data.write_text('{"text": "What dose of ibuprofen for a child?", "label": "medical"}\n')
    assert main(["tune", "-c", str(path), str(data)]) == 2
    assert "no out-of-scope rows" in capsys.readouterr().err


def test_per_label_calibration_is_the_same_with_many_labels_taking_nothing() -> None:
    """The neighbours each label is calibrated against, found in one pass over the examples,
    are those of the plain per-pair scan; a label that takes no example of another still
    counts as a neighbour (nothing taken), and the first such names the nearest when no
    label takes any."""
    rng = np.random.default_rng(3)
    names = [f"l{i}" for i in range(40)]
    own = np.repeat(np.arange(40), 6)
    near = rng.normal(0.3, 0.1, (len(own), 40)).astype(np.float32)
    near[np.arange(len(own)), own] = -np.inf
    in_scope = near.copy()
    in_scope[np.arange(len(own)), own] = rng.normal(0.5, 0.1, len(own))
    sim = Simulation(in_scope, near, rng.normal(0.1, 0.1, (50, 40)).astype(np.float32), own)
    taken = classifier.labels._taken_by_label(sim, len(names))
    best_other = near.argmax(axis=1)
    for label_id in range(len(names)):
        for other_id in range(len(names)):
            expected = near[(own == other_id) & (best_other == label_id), label_id]
            got = taken[label_id].get(other_id, np.empty(0, dtype=np.float32))
            np.testing.assert_array_equal(np.sort(got), np.sort(expected))
    thresholds, _ = classifier.labels._calibrate_all(sim, names)
    assert all(t.source == "calibrated" for t in thresholds)
    lonely = calibrate_label(
        in_scope[own == 0, 0],
        np.ones(6, dtype=bool),
        [("a", np.empty(0), 6), ("b", np.empty(0), 6)],
        sim.far[:, 0],
    )
    assert lonely.nearest == "a" and lonely.rejected_near == 1.0
