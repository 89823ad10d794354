"""The ONNX builder: graph shape, manifest, and byte-for-byte determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest

from classifier.build import build_model, is_up_to_date, weights_zip_path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_describes_the_files(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["source"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(manifest["source"]["weights_sha256"]) == 64
    assert manifest["files"]["model.onnx"]["precision"] == "int8"
    assert manifest["files"]["model-fp32.onnx"]["precision"] == "fp32"
    for name, entry in manifest["files"].items():
        assert _sha(model_dir / name) == entry["sha256"], name
    assert is_up_to_date(model_dir)


def test_graph_interface(model_dir: Path) -> None:
    model = onnx.load(str(model_dir / "model-fp32.onnx"), load_external_data=False)
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert all(t.elem_type == onnx.TensorProto.INT64 for t in inputs.values())
    (output,) = model.graph.output
    assert output.name == "sentence_embedding"
    assert output.type.tensor_type.shape.dim[1].dim_value == 384
    assert model.opset_import[0].version == 17


def test_build_is_deterministic(model_dir: Path, tmp_path: Path) -> None:
    again = build_model(tmp_path / "again")
    for name in ("model.onnx", "model-fp32.onnx", "tokenizer.json", "manifest.json"):
        assert _sha(again / name) == _sha(model_dir / name), name


def test_incomplete_dir_is_not_up_to_date(tmp_path: Path) -> None:
    assert not is_up_to_date(tmp_path)
    (tmp_path / "manifest.json").write_text('{"files": {}, "source": {}}')
    assert not is_up_to_date(tmp_path)


def test_weights_are_found_without_importing_the_package() -> None:
    import sys

    assert weights_zip_path().name == "model.zip"
    assert "all_minilm_l6_v2" not in sys.modules


@pytest.mark.parametrize("name", ["model.onnx", "model-fp32.onnx"])
def test_models_pass_the_onnx_checker(model_dir: Path, name: str) -> None:
    onnx.checker.check_model(str(model_dir / name))


def test_int8_model_runs_fused_attention_and_gelu(model_dir: Path) -> None:
    model = onnx.load(str(model_dir / "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QAttention") == 6 and ops.count("Gelu") == 6
    assert "Softmax" not in ops and "Erf" not in ops


def test_fusion_keeps_the_fp32_embeddings(model_dir: Path, tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    from classifier.build import fuse_for_cpu

    plain_path = model_dir / "model-fp32.onnx"
    fused_path = tmp_path / "fused.onnx"
    onnx.save_model(fuse_for_cpu(onnx.load(str(plain_path)), num_heads=12), str(fused_path))
    # Two texts of different lengths, so the padding mask is exercised.
    ids = np.array([[101, 7592, 2045, 2129, 2024, 2017, 102], [101, 7929, 102, 0, 0, 0, 0]])
    feed = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64)}
    plain, fused = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        for p in (plain_path, fused_path)
    )
    np.testing.assert_allclose(fused, plain, atol=1e-5)
