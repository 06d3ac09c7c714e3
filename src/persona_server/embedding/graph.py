"""An ONNX graph of a BERT sentence encoder (mean pooling + L2 normalisation), built from safetensors weights.

Built once with the `onnx` helper API and cached (see `local.py`); bump `GRAPH_VERSION` whenever the graph built
here changes, so stale cached graphs are never used. Inputs `input_ids` and `attention_mask` (int64, batch x
tokens); output `embeddings` (float32, batch x hidden), unit rows. Token type ids are always 0 for single
sentences, so type embedding row 0 is folded into the position embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

GRAPH_VERSION = 1
OPSET = 17  # LayerNormalization is a single op from 17 on


@dataclass(frozen=True, slots=True)
class BertShape:
    layers: int
    hidden: int
    heads: int
    eps: float

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BertShape:
        if config.get("model_type", "bert") != "bert" or config.get("hidden_act", "gelu") != "gelu":
            raise ValueError("only BERT encoders with exact GELU are supported")
        return cls(
            layers=int(config["num_hidden_layers"]),
            hidden=int(config["hidden_size"]),
            heads=int(config["num_attention_heads"]),
            eps=float(config.get("layer_norm_eps", 1e-12)),
        )


def _weight_prefix(weights: dict[str, Any]) -> str:
    # Checkpoints saved from BertModel have no prefix; those from BertFor* carry "bert.".
    return "" if "embeddings.word_embeddings.weight" in weights else "bert."


def build_bert_graph(weights: dict[str, Any], shape: BertShape) -> Any:
    """The `onnx.ModelProto` of the encoder; `weights` are the checkpoint's numpy arrays by name."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    p = _weight_prefix(weights)
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = 0

    def w(name: str) -> np.ndarray:
        return np.ascontiguousarray(weights[p + name], dtype=np.float32)

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        nonlocal counter
        counter += 1
        out = f"{kind.lower()}_{counter}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(x: str, name: str) -> str:
        # torch Linear stores (out, in): transposed once here, not per request.
        weight = const(f"{name}.wT", w(f"{name}.weight").T.copy())
        return op("Add", [op("MatMul", [x, weight]), const(f"{name}.b", w(f"{name}.bias"))])

    def layer_norm(x: str, name: str) -> str:
        return op(
            "LayerNormalization",
            [x, const(f"{name}.g", w(f"{name}.weight")), const(f"{name}.b", w(f"{name}.bias"))],
            axis=-1,
            epsilon=shape.eps,
        )

    head_dim = shape.hidden // shape.heads
    i64 = lambda *values: np.array(values, dtype=np.int64)  # noqa: E731
    split_heads = const("split_heads", i64(0, 0, shape.heads, head_dim))
    merge_heads = const("merge_heads", i64(0, 0, shape.hidden))
    one_axis = const("axis1", i64(1))
    zero = const("zero", i64(0))

    # Embeddings: word + (position + type 0), layer-normalised.
    words = op("Gather", [const("word_emb", w("embeddings.word_embeddings.weight")), "input_ids"], axis=0)
    positions = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    length = op("Gather", [op("Shape", ["input_ids"]), const("one", i64(1))], axis=0)
    pos = op("Slice", [const("pos_emb", positions), zero, length])
    x = layer_norm(op("Add", [words, pos]), "embeddings.LayerNorm")

    # Additive attention mask (batch, 1, 1, tokens): 0 where a token is real, a large negative on padding.
    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    ext = op(
        "Mul", [op("Sub", [const("f_one", np.array(1.0, np.float32)), mask]), const("neg", np.array(-1e4, np.float32))]
    )
    ext = op("Unsqueeze", [ext, const("axes12", i64(1, 2))])
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), np.float32))
    sqrt2 = const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    half = const("half", np.array(0.5, np.float32))
    f_one = "f_one"

    for i in range(shape.layers):
        base = f"encoder.layer.{i}"
        q = op(
            "Transpose", [op("Reshape", [linear(x, f"{base}.attention.self.query"), split_heads])], perm=[0, 2, 1, 3]
        )
        k = op("Transpose", [op("Reshape", [linear(x, f"{base}.attention.self.key"), split_heads])], perm=[0, 2, 3, 1])
        v = op(
            "Transpose", [op("Reshape", [linear(x, f"{base}.attention.self.value"), split_heads])], perm=[0, 2, 1, 3]
        )
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), ext])
        context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        context = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        attended = linear(context, f"{base}.attention.output.dense")
        x = layer_norm(op("Add", [attended, x]), f"{base}.attention.output.LayerNorm")
        h = linear(x, f"{base}.intermediate.dense")
        # Exact GELU, 0.5·h·(1 + erf(h/√2)); onnxruntime fuses this pattern into one kernel.
        h = op("Mul", [op("Mul", [h, half]), op("Add", [op("Erf", [op("Div", [h, sqrt2])]), f_one])])
        out = linear(h, f"{base}.output.dense")
        x = layer_norm(op("Add", [out, x]), f"{base}.output.LayerNorm")

    # Mean over real tokens, then unit length.
    mask3 = op("Unsqueeze", [mask, const("axis2", i64(2))])
    summed = op("ReduceSum", [op("Mul", [x, mask3]), one_axis], keepdims=0)
    count = op("Max", [op("ReduceSum", [mask3, one_axis], keepdims=0), const("tiny", np.array(1e-9, np.float32))])
    mean = op("Div", [summed, count])
    norm = op("Max", [op("ReduceL2", [mean], axes=[-1], keepdims=1), const("eps_norm", np.array(1e-12, np.float32))])
    nodes.append(helper.make_node("Div", [mean, norm], ["embeddings"]))

    graph = helper.make_graph(
        nodes,
        "bert_sentence_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", shape.hidden])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="persona-server")
    model.ir_version = 8  # readable by every onnxruntime the extra allows
    return model
