"""Shared fixtures: the encoder is built once per session (or reused from build/model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from classifier.build import build_model, is_up_to_date
from classifier.build_use import build_use_model, use_is_up_to_date
from classifier.encoder import Encoder
from classifier.labels import ENCODERS, USE_SUBDIR, Label, LabelClassifier
from extproc.config import ClassifierConfig

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "eval"
REPO_MODEL = REPO / "build" / "model"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete model directory: `make model`'s output when it is current, else a fresh build."""
    if is_up_to_date(REPO_MODEL):
        return REPO_MODEL
    return build_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def use_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multilingual encoder: `make model`'s build/model/use when current, else a build."""
    if use_is_up_to_date(REPO_MODEL / USE_SUBDIR):
        return REPO_MODEL / USE_SUBDIR
    return build_use_model(tmp_path_factory.mktemp("use"))


@pytest.fixture(scope="session")
def use_encoder(use_model_dir: Path) -> Encoder:
    return Encoder(use_model_dir)


@pytest.fixture(scope="session")
def encoder(model_dir: Path) -> Encoder:
    return Encoder(model_dir)


@pytest.fixture(scope="session")
def fp32_encoder(model_dir: Path) -> Encoder:
    return Encoder(model_dir, model_file="model-fp32.onnx")


@pytest.fixture(scope="session")
def label_config() -> dict:
    # The example config is the one home of the example labels.
    return yaml.safe_load((REPO / "switchyard.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def labels(label_config: dict) -> list[Label]:
    return [
        Label(item["name"], tuple(item["examples"]), item.get("description"))
        for item in label_config["labels"]
    ]


@pytest.fixture(scope="session")
def default_classifier(
    encoder: Encoder, use_encoder: Encoder, labels: list[Label], label_config: dict
) -> LabelClassifier:
    """The example labels as the sidecar loads them by default (`classifier.encoder`)."""
    specs = ENCODERS[ClassifierConfig().encoder]
    by_dir = {"": encoder, USE_SUBDIR: use_encoder}
    return LabelClassifier(
        [by_dir[spec.subdir] for spec in specs],
        labels,
        threshold=label_config["classifier"].get("threshold"),
        fallback=label_config["classifier"]["fallback"],
        centroid_weights=[spec.centroid_weight for spec in specs],
        languages=[spec.languages for spec in specs],
    )


@pytest.fixture(scope="session")
def classifier(encoder: Encoder, labels: list[Label], label_config: dict) -> LabelClassifier:
    settings = label_config["classifier"]
    return LabelClassifier(
        encoder, labels, threshold=settings.get("threshold"), fallback=settings["fallback"]
    )
