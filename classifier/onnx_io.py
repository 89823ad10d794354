"""Open an ONNX session and map tokenizer output onto whatever inputs the model declares.

Shared by the sentence encoder and the sequence classifier: both take BERT-style
``input_ids`` / ``attention_mask`` (and maybe ``token_type_ids``), in int64 or int32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from classifier.errors import InferenceError, ModelLoadError

IDS = "input_ids"
MASK = "attention_mask"
TYPES = "token_type_ids"
_DTYPES: dict[str, type[np.signedinteger[Any]]] = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}

# onnxruntime (1.31) fuses each residual Add + LayerNormalization into SkipLayerNormalization,
# whose CPU kernel is ~6x slower than the plain LayerNormalization here (60 vs 10 us at 32
# tokens). Leaving the pair unfused saves 20-30% of an int8 encoder call.
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


@dataclass(frozen=True)
class ModelInputs:
    """Names and integer types of the inputs one session expects."""

    dtypes: dict[str, type[np.signedinteger[Any]]]

    def feed(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        arrays = {IDS: ids, MASK: mask, TYPES: np.zeros_like(ids)}
        return {name: arrays[name].astype(dtype, copy=False) for name, dtype in self.dtypes.items()}


def run_model(
    session: ort.InferenceSession,
    inputs: ModelInputs,
    output_name: str,
    ids: np.ndarray,
    mask: np.ndarray,
    what: str,
) -> np.ndarray:
    """One output of one run as float32; onnxruntime's own errors become InferenceError."""
    try:
        (raw,) = session.run([output_name], inputs.feed(ids, mask))
    except Exception as exc:  # onnxruntime raises its own pybind error types
        raise InferenceError(f"{what} {len(ids)} text(s) failed: {exc}") from exc
    return np.asarray(raw, dtype=np.float32)


def _inputs_of(session: ort.InferenceSession, path: Path) -> ModelInputs:
    declared = {i.name: i.type for i in session.get_inputs()}
    missing = [name for name in (IDS, MASK) if name not in declared]
    unknown = [name for name in declared if name not in (IDS, MASK, TYPES)]
    if missing or unknown:
        raise ModelLoadError(
            path,
            f"model inputs are {sorted(declared)}; expected {IDS!r}, {MASK!r} "
            f"and optionally {TYPES!r}",
        )
    dtypes: dict[str, type[np.signedinteger[Any]]] = {}
    for name, onnx_type in declared.items():
        if onnx_type not in _DTYPES:
            raise ModelLoadError(path, f"input {name!r} is {onnx_type}; expected int64 or int32")
        dtypes[name] = _DTYPES[onnx_type]
    return ModelInputs(dtypes)


def open_session(path: Path, threads: int) -> tuple[ort.InferenceSession, ModelInputs]:
    """Load ``path`` for CPU inference on ``threads`` intra-op threads."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not path.parent.is_dir():
        raise ModelLoadError(path.parent, "model directory does not exist")
    if not path.is_file():
        raise ModelLoadError(path, f"{path.name} is missing (run `switchyard build-model`?)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One request is one small graph run: parallelism between graph branches only adds
    # thread hand-offs, and the sidecar already runs requests concurrently.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle intra-op threads would spin waiting for work, burning the CPU that Envoy and
    # the gRPC loop share with them (measured: 2.3x the CPU per inference on one core).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's warnings would go to the sidecar's stderr
    try:
        session = ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=DISABLED_OPTIMIZERS,
        )
    except Exception as exc:  # ORT raises its own pybind exception types
        raise ModelLoadError(path, f"onnxruntime cannot load it: {exc}") from exc
    return session, _inputs_of(session, path)
