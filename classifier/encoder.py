"""Text -> L2-normalised sentence embeddings with onnxruntime.

``Encoder`` loads a model directory once (``model.onnx`` + ``tokenizer.json``) and is safe to
call from many threads: the tokenizer is only read after construction and
``InferenceSession.run`` is thread-safe (and releases the GIL while it computes).

Besides the directory written by ``classifier.build``, it accepts a user's own exported
encoder: input names are read from the session (``token_type_ids`` is fed zeros when the
model wants it) and a model whose first output is per-token ``[batch, seq, dim]`` is
mean-pooled over the attention mask here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.errors import InferenceError, ModelLoadError
from classifier.onnx_io import open_session, run_model
from classifier.tokenize import TextTokenizer

MODEL_FILE = "model.onnx"


class Encoder:
    """Sentence encoder over an ONNX model directory."""

    def __init__(
        self,
        model_dir: Path,
        *,
        max_tokens: int = 128,
        threads: int = 2,
        model_file: str = MODEL_FILE,
        batch_size: int = 1,
    ) -> None:
        """``batch_size`` texts go through the model together (sorted by length, so a long
        text does not make short ones pay for its padding).

        The default of 1 keeps every embedding independent of the other texts in the call.
        A dynamically quantized (int8) model computes one activation scale per MatMul over
        the whole batch, so a text's embedding shifts with its batch-mates: on eval.jsonl
        3.5% of labels differed between batched and one-at-a-time classification. A batch of
        8 saves 35-50% per text at 16-32 tokens, ~10% at 64, nothing at 256 tokens: raise it
        for throughput when that nondeterminism is acceptable (or with an fp32 model, where
        padding is exactly neutral).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.model_dir = Path(model_dir)
        self.max_tokens = max_tokens
        self.tokenizer = TextTokenizer(self.model_dir, max_tokens)
        path = self.model_dir / model_file
        self.model_path = path
        self._session, self._inputs = open_session(path, threads)
        output = self._session.get_outputs()[0]
        if len(output.shape) not in (2, 3):
            raise ModelLoadError(
                path,
                f"first output {output.name!r} has shape {output.shape}; an encoder outputs "
                "[batch, dim] sentence or [batch, seq, dim] token embeddings",
            )
        self._output_name = output.name
        self._token_level = len(output.shape) == 3
        declared = output.shape[-1]
        # A symbolic last dimension is resolved by encoding one text.
        self.dim = declared if isinstance(declared, int) else int(self._run(["dim"]).shape[1])

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed ``texts`` into an L2-normalised float32 array of shape [len(texts), dim]."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        batch_size = batch_size or self.batch_size
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._run([texts[i] for i in chunk])
        return out

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        ids, mask = self.tokenizer.batch(texts)
        emb = run_model(self._session, self._inputs, self._output_name, ids, mask, "encoding")
        if self._token_level:
            emb = mean_pool(emb, mask)
        if emb.ndim != 2 or emb.shape[0] != len(texts):
            raise InferenceError(f"model returned shape {emb.shape} for {len(texts)} text(s)")
        return l2_normalise(emb)


def mean_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average token embeddings [n, seq, dim] over positions where ``mask`` is 1."""
    weights = mask.astype(np.float32)[:, :, None]
    summed = (tokens * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    pooled: np.ndarray = (summed / counts).astype(np.float32)
    return pooled


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    unit: np.ndarray = (x / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit
