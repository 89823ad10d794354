"""The encoder against the PyTorch reference, plus tokenization and loading behaviour."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from classifier.encoder import Encoder
from classifier.errors import ModelLoadError

REFERENCE = Path(__file__).parent / "data" / "reference_embeddings.json"


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data["sentences"], np.array(data["embeddings"], dtype=np.float32)


def test_fp32_matches_pytorch(
    fp32_encoder: Encoder, reference: tuple[list[str], np.ndarray]
) -> None:
    sentences, expected = reference
    cosines = (fp32_encoder.encode(sentences) * expected).sum(axis=1)
    assert cosines.min() > 0.9999, cosines


def test_int8_stays_close_to_pytorch(
    encoder: Encoder, reference: tuple[list[str], np.ndarray]
) -> None:
    sentences, expected = reference
    # One at a time, as the sidecar encodes a request; batching is checked separately.
    got = np.concatenate([encoder.encode([s]) for s in sentences])
    cosines = (got * expected).sum(axis=1)
    assert cosines.mean() > 0.99, cosines
    assert cosines.min() > 0.97, cosines  # "ok": 3 tokens quantize worst


def test_output_is_normalised_float32(encoder: Encoder) -> None:
    emb = encoder.encode(["hello", "a somewhat longer sentence about routing prompts"])
    assert emb.dtype == np.float32 and emb.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_empty_array(encoder: Encoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_single_string_is_rejected(encoder: Encoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("not a list")  # type: ignore[arg-type]


def test_no_padding_to_128(encoder: Encoder) -> None:
    ids, mask = encoder.tokenizer.batch(["hi there"])
    assert ids.shape == (1, 4)  # [CLS] hi there [SEP], not 128 columns
    assert mask.tolist() == [[1, 1, 1, 1]]


def test_batch_pads_to_longest(encoder: Encoder) -> None:
    ids, mask = encoder.tokenizer.batch(["ok", "one two three four five"])
    assert ids.shape == (2, 7)
    assert mask.sum(axis=1).tolist() == [3, 7]
    assert ids[0, 3:].tolist() == [0, 0, 0, 0]


def test_truncates_at_max_tokens(model_dir: Path) -> None:
    small = Encoder(model_dir, max_tokens=16)
    long_text = "word " * 500
    assert len(small.tokenizer.token_ids(long_text)) == 16
    assert small.encode([long_text]).shape == (1, 384)


def test_padding_does_not_change_fp32_embeddings(fp32_encoder: Encoder) -> None:
    texts = ["ok", "How do I make a sourdough starter from scratch at home?"]
    together = fp32_encoder.encode(texts, batch_size=2)
    alone = np.concatenate([fp32_encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_default_encoding_is_independent_of_other_texts(encoder: Encoder) -> None:
    # int8 activation scales are computed per batch; the default batch_size=1 keeps a
    # text's embedding (so its route) the same whatever else is classified with it.
    texts = ["ok", "How do I make a sourdough starter from scratch at home?", "Merci !"]
    together = encoder.encode(texts)
    alone = np.concatenate([encoder.encode([t]) for t in texts])
    np.testing.assert_array_equal(together, alone)


def test_invalid_batch_size(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Encoder(model_dir, batch_size=0)


def test_concurrent_calls_agree_with_sequential(encoder: Encoder) -> None:
    texts = [f"question number {i} about taxes and loans" for i in range(16)]
    sequential = [encoder.encode([t]) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda t: encoder.encode([t]), texts))
    for a, b in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_directory_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError) as info:
        Encoder(missing)
    assert info.value.path == missing
    assert str(missing) in str(info.value)


def test_missing_model_file_is_named(tmp_path: Path, model_dir: Path) -> None:
    shutil.copy(model_dir / "tokenizer.json", tmp_path)
    with pytest.raises(ModelLoadError, match=r"model\.onnx is missing") as info:
        Encoder(tmp_path)
    assert info.value.path == tmp_path / "model.onnx"


def test_missing_tokenizer_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json is missing"):
        Encoder(tmp_path)


def test_corrupt_model_is_reported(tmp_path: Path, model_dir: Path) -> None:
    shutil.copy(model_dir / "tokenizer.json", tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load it"):
        Encoder(tmp_path)


def _toy_model(path: Path, *, inputs: list[str], token_level: bool, dim: int = 8) -> np.ndarray:
    """A tiny 'encoder': embedding lookup, optionally mean-pooled inside the graph."""
    table = np.random.default_rng(0).standard_normal((30522, dim)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["tokens"])]
    if token_level:
        nodes.append(helper.make_node("Identity", ["tokens"], ["out"]))
        out_shape: list[object] = ["batch", "seq", dim]
    else:
        nodes.append(helper.make_node("ReduceMean", ["tokens"], ["out"], axes=[1], keepdims=0))
        out_shape = ["batch", dim]
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in inputs],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return table


def test_user_encoder_with_token_outputs_is_mean_pooled(tmp_path: Path, model_dir: Path) -> None:
    shutil.copy(model_dir / "tokenizer.json", tmp_path)
    table = _toy_model(
        tmp_path / "model.onnx",
        inputs=["input_ids", "attention_mask", "token_type_ids"],
        token_level=True,
    )
    enc = Encoder(tmp_path)
    assert enc.dim == 8
    texts = ["ok", "a longer text with more tokens"]
    got = enc.encode(texts)
    for row, text in zip(got, texts, strict=True):
        ids = enc.tokenizer.token_ids(text)  # padding must be excluded from the mean
        expected = table[ids].mean(axis=0)
        np.testing.assert_allclose(row, expected / np.linalg.norm(expected), atol=1e-5)


def test_unknown_input_names_are_rejected(tmp_path: Path, model_dir: Path) -> None:
    shutil.copy(model_dir / "tokenizer.json", tmp_path)
    _toy_model(tmp_path / "model.onnx", inputs=["input_ids", "pixel_values"], token_level=False)
    with pytest.raises(ModelLoadError, match="pixel_values"):
        Encoder(tmp_path)
