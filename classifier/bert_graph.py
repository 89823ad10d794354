"""Build a BERT sentence-encoder ONNX graph from raw weights, without torch.

The graph reproduces sentence-transformers' ``Transformer -> mean Pooling -> Normalize``
pipeline for a BERT checkpoint (all-MiniLM-L6-v2 here):

    input_ids, attention_mask [batch, seq] int64
      -> word + position (+ token type 0) embeddings -> LayerNorm
      -> N x (self-attention with padding mask -> Add & LayerNorm -> Erf GELU FFN -> Add & LN)
      -> mean over unmasked tokens -> L2 normalise -> sentence_embedding [batch, hidden] float32

Only standard opset-17 operators are used so any onnxruntime build can run it, and the
dynamic quantizer recognises the MatMul / Gather weights it should turn into int8.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from classifier.errors import ModelBuildError

OPSET = 17
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
OUTPUT = "sentence_embedding"


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    layer_norm_eps: float

    @classmethod
    def from_json(cls, cfg: Mapping[str, object]) -> BertConfig:
        try:
            return cls(
                hidden_size=int(cfg["hidden_size"]),  # type: ignore[call-overload]
                num_layers=int(cfg["num_hidden_layers"]),  # type: ignore[call-overload]
                num_heads=int(cfg["num_attention_heads"]),  # type: ignore[call-overload]
                layer_norm_eps=float(cfg["layer_norm_eps"]),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelBuildError(f"config.json lacks a BERT field: {exc}") from exc


class _GraphBuilder:
    """Accumulates nodes and initializers; names are sequential, so output is deterministic."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self._weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._const_names: set[str] = set()
        self._counter = 0

    def weight(self, key: str) -> np.ndarray:
        try:
            return np.asarray(self._weights[key], dtype=np.float32)
        except KeyError as exc:
            raise ModelBuildError(f"weights lack tensor {key!r}") from exc

    def const(self, name: str, value: np.ndarray) -> str:
        # Shared scalars (GELU's 0.5, the reshape targets...) are stored once under one name.
        if name not in self._const_names:
            self._const_names.add(name)
            self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        self._counter += 1
        out = f"{op_type.lower()}_{self._counter}"
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self._counter}", **attrs)
        )
        return out

    def linear(self, x: str, prefix: str, *, scale: float = 1.0) -> str:
        # torch Linear stores [out, in]; ONNX MatMul wants [in, out]. A constant scale (the
        # attention's 1/sqrt(d)) is folded into the weights here rather than spent at run time.
        w = np.ascontiguousarray(self.weight(f"{prefix}.weight").T * scale)
        b = self.weight(f"{prefix}.bias") * scale
        y = self.op("MatMul", [x, self.const(f"{prefix}.weight", w)])
        return self.op("Add", [y, self.const(f"{prefix}.bias", b)])

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        scale = self.const(f"{prefix}.weight", self.weight(f"{prefix}.weight"))
        bias = self.const(f"{prefix}.bias", self.weight(f"{prefix}.bias"))
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def _attention(g: _GraphBuilder, x: str, mask_bias: str, prefix: str, cfg: BertConfig) -> str:
    head_dim = cfg.hidden_size // cfg.num_heads
    split_heads = g.const("const.split_heads", np.array([0, 0, cfg.num_heads, head_dim]))
    merge_heads = g.const("const.merge_heads", np.array([0, 0, cfg.hidden_size]))

    def heads(name: str, perm: list[int], scale: float = 1.0) -> str:
        y = g.linear(x, f"{prefix}.self.{name}", scale=scale)
        return g.op("Transpose", [g.op("Reshape", [y, split_heads])], perm=perm)

    q = heads("query", [0, 2, 1, 3], scale=1.0 / math.sqrt(head_dim))  # [B, H, S, D]
    k = heads("key", [0, 2, 3, 1])  # [B, H, D, S]: pre-transposed for Q @ K^T
    v = heads("value", [0, 2, 1, 3])  # [B, H, S, D]
    scores = g.op("Add", [g.op("MatMul", [q, k]), mask_bias])
    probs = g.op("Softmax", [scores], axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, merge_heads])
    out = g.linear(ctx, f"{prefix}.output.dense")
    return g.layer_norm(g.op("Add", [out, x]), f"{prefix}.output.LayerNorm", cfg.layer_norm_eps)


def _gelu(g: _GraphBuilder, x: str) -> str:
    # Exact (erf) GELU, as BERT's "gelu" activation: 0.5 * x * (1 + erf(x / sqrt(2))).
    inv_sqrt2 = g.const("const.inv_sqrt2", np.array(1 / math.sqrt(2), np.float32))
    one = g.const("const.one_f", np.array(1.0, np.float32))
    half = g.const("const.half", np.array(0.5, np.float32))
    erf = g.op("Erf", [g.op("Mul", [x, inv_sqrt2])])
    return g.op("Mul", [g.op("Mul", [x, half]), g.op("Add", [erf, one])])


def _layer(g: _GraphBuilder, x: str, mask_bias: str, i: int, cfg: BertConfig) -> str:
    prefix = f"encoder.layer.{i}"
    h = _attention(g, x, mask_bias, f"{prefix}.attention", cfg)
    ff = _gelu(g, g.linear(h, f"{prefix}.intermediate.dense"))
    ff = g.linear(ff, f"{prefix}.output.dense")
    return g.layer_norm(g.op("Add", [ff, h]), f"{prefix}.output.LayerNorm", cfg.layer_norm_eps)


def _embeddings(g: _GraphBuilder, cfg: BertConfig) -> str:
    words = g.const(
        "embeddings.word_embeddings.weight", g.weight("embeddings.word_embeddings.weight")
    )
    # Sentence encoders only ever see segment 0, so token-type row 0 is folded into the
    # position table: one fewer input and one fewer Add per call.
    positions = g.weight("embeddings.position_embeddings.weight")
    positions = positions + g.weight("embeddings.token_type_embeddings.weight")[0]
    pos_table = g.const("embeddings.position_plus_type", positions)
    seq_len = g.op(
        "Slice",
        [
            g.op("Shape", [INPUT_IDS]),
            g.const("const.one_i64", np.array([1], np.int64)),
            g.const("const.two_i64", np.array([2], np.int64)),
        ],
    )
    pos = g.op("Slice", [pos_table, g.const("const.zero_i64", np.array([0], np.int64)), seq_len])
    emb = g.op("Add", [g.op("Gather", [words, INPUT_IDS]), pos])
    return g.layer_norm(emb, "embeddings.LayerNorm", cfg.layer_norm_eps)


def _pool_and_normalise(g: _GraphBuilder, hidden: str, mask_f: str) -> str:
    axis1 = g.const("const.axis1", np.array([1], np.int64))
    mask3 = g.op("Unsqueeze", [mask_f, g.const("const.axis_last", np.array([2], np.int64))])
    summed = g.op("ReduceSum", [g.op("Mul", [hidden, mask3]), axis1], keepdims=0)
    count = g.op("ReduceSum", [mask3, axis1], keepdims=0)
    # Clamp as sentence-transformers does, so an all-padding row yields zeros, not NaN.
    count = g.op("Max", [count, g.const("const.count_eps", np.array(1e-9, np.float32))])
    mean = g.op("Div", [summed, count])
    # ReduceL2 still takes its axes as an attribute in opset 17 (ReduceSum moved them to an
    # input in opset 13).
    norm = g.op("ReduceL2", [mean], axes=[-1], keepdims=1)
    norm = g.op("Max", [norm, g.const("const.norm_eps", np.array(1e-12, np.float32))])
    return g.op("Div", [mean, norm])


def build_bert_graph(weights: Mapping[str, np.ndarray], cfg: BertConfig) -> onnx.ModelProto:
    """Return the fp32 sentence-encoder model for ``weights`` (a safetensors state dict)."""
    if cfg.hidden_size % cfg.num_heads:
        raise ModelBuildError("hidden_size is not a multiple of num_attention_heads")
    g = _GraphBuilder(weights)
    mask_f = g.op("Cast", [ATTENTION_MASK], to=TensorProto.FLOAT)
    # Additive mask [B, 1, 1, S]: 0 for real tokens, -1e4 for padding. exp(-1e4) underflows
    # to exactly 0 in float32, so padded keys get no attention weight at all.
    bias = g.op(
        "Mul",
        [
            g.op("Sub", [mask_f, g.const("const.one_f", np.array(1.0, np.float32))]),
            g.const("const.neg_big", np.array(1e4, np.float32)),
        ],
    )
    mask_bias = g.op("Unsqueeze", [bias, g.const("const.axes12", np.array([1, 2], np.int64))])

    x = _embeddings(g, cfg)
    for i in range(cfg.num_layers):
        x = _layer(g, x, mask_bias, i, cfg)
    pooled = _pool_and_normalise(g, x, mask_f)
    g.nodes.append(helper.make_node("Identity", [pooled], [OUTPUT], name="output"))

    graph = helper.make_graph(
        g.nodes,
        "sentence_encoder",
        inputs=[
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info(ATTENTION_MASK, TensorProto.INT64, ["batch", "seq"]),
        ],
        outputs=[
            helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", cfg.hidden_size])
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="switchyard"
    )
    model.ir_version = 8  # what opset 17 needs; pinned so the bytes don't follow onnx upgrades
    onnx.checker.check_model(model)
    return model
