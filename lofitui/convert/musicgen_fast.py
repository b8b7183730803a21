"""lofi's fast MusicGen decoder, rebuilt on the user's machine from a public export's weights.

The public decoders concatenate past and new keys/values and return fresh tensors each step, so
every step copies the whole cache and a track costs O(n²). The graph built here reads the same
weights but:

- keeps the self-attention cache in preallocated buffers updated in place
  (``com.microsoft.GroupQueryAttention`` with past and present bound to the same OrtValue);
- takes the cross-attention keys/values as inputs, computed once per track by a second small
  graph (``decoder_cross_kv.onnx``);
- returns only the last position's logits;
- packs q/k/v into one MatMul and fuses each residual Add with the LayerNorm after it
  (``SkipLayerNormalization``): 560 nodes a step for musicgen-small instead of 817;
- optionally stores the matrices as 8- or 4-bit blocks (``MatMulNBits``) or dynamic int8,
  cutting the weight traffic that bounds a step on the CPU;
- optionally keeps the self-attention cache in int8 with scales calibrated here
  (``convert.kv_cache``): the other cost of a step, growing with the position.

Weights are found by the module paths optimum writes into node names
(``/decoder/model/decoder/layers.3/self_attn/q_proj/MatMul``), so any MusicGen export in that
layout works, whatever its size.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lofitui.atomic import atomic_path
from lofitui.convert.formats import (
    CROSS_KV,
    FAST_QUANTS,
    NBITS_MIN_ORT,
    fast_file_name,
    int8_cache,
    weight_quant,
)
from lofitui.convert.kv_cache import calibrate, encode_prompts, quantize_cache
from lofitui.errors import ModelError

_LINEAR = re.compile(
    r"/decoder/model/decoder/layers\.(\d+)/(self_attn|encoder_attn)/(q|k|v|out)_proj/MatMul"
)
_FFN = re.compile(r"/decoder/model/decoder/layers\.(\d+)/(fc1|fc2)/MatMul")
_NORM = re.compile(
    r"/decoder/model/decoder/layers\.(\d+)/(self_attn_layer_norm|encoder_attn_layer_norm|"
    r"final_layer_norm)/LayerNormalization"
)
_HEAD = re.compile(r"/decoder/lm_heads\.(\d+)/MatMul")
_EMBED = re.compile(r"decoder\.model\.decoder\.embed_tokens\.(\d+)\.weight")


@dataclass
class DecoderWeights:
    """Every tensor of a MusicGen decoder, as numpy arrays (matrices as [in, out])."""

    embeds: list[np.ndarray]
    linear: dict[tuple[int, str, str], np.ndarray]  # (layer, self_attn|encoder_attn, q|k|v|out)
    ffn: dict[tuple[int, str], np.ndarray]  # (layer, fc1|fc2)
    norms: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]
    final_norm: tuple[np.ndarray, np.ndarray]
    heads: list[np.ndarray]
    proj: tuple[np.ndarray, np.ndarray | None]  # enc_to_dec_proj weight [d_text, d], bias
    positions: np.ndarray | None = None  # the export's own sinusoidal table, when it has one

    @property
    def layers(self) -> int:
        return 1 + max(layer for layer, _ in self.ffn)

    @property
    def hidden(self) -> int:
        return self.embeds[0].shape[1]


def _tensors(graph, known: dict[str, np.ndarray]) -> None:
    """Collect constant tensors (initializers, Constant nodes, Identity aliases), recursively."""
    from onnx import numpy_helper

    for init in graph.initializer:
        known.setdefault(init.name, numpy_helper.to_array(init))
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    known.setdefault(node.output[0], numpy_helper.to_array(attr.t))
        elif node.op_type == "Identity" and node.input[0] in known:
            known.setdefault(node.output[0], known[node.input[0]])
        for attr in node.attribute:
            if attr.g.node:
                _tensors(attr.g, known)


def _nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g.node:
                yield from _nodes(attr.g)


def extract_weights(path: Path) -> DecoderWeights:
    """Read the decoder weights of ``decoder_model.onnx`` or ``decoder_model_merged.onnx``."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    known: dict[str, np.ndarray] = {}
    _tensors(model.graph, known)
    linear: dict = {}
    ffn: dict = {}
    norms: dict = {}
    heads: dict[int, np.ndarray] = {}
    final_norm = None
    proj_w = proj_b = None

    def const(name: str) -> np.ndarray | None:
        return known.get(name)

    for node in _nodes(model.graph):
        name = node.name or node.output[0]
        if node.op_type == "MatMul" and const(node.input[1]) is not None:
            weight = const(node.input[1])
            if m := _LINEAR.search(name):
                linear.setdefault((int(m[1]), m[2], m[3]), weight)
            elif m := _FFN.search(name):
                ffn.setdefault((int(m[1]), m[2]), weight)
            elif m := _HEAD.search(name):
                heads.setdefault(int(m[1]), weight)
            elif "/enc_to_dec_proj/" in name and proj_w is None:
                proj_w = weight
        elif node.op_type == "Add" and "/enc_to_dec_proj/" in name and proj_b is None:
            proj_b = next((const(i) for i in node.input if const(i) is not None), None)
        elif node.op_type == "LayerNormalization":
            pair = (const(node.input[1]), const(node.input[2]))
            if m := _NORM.search(name):
                norms.setdefault((int(m[1]), m[2]), pair)
            elif "/decoder/model/decoder/layer_norm/" in name:
                final_norm = final_norm or pair
    embeds = {int(m[1]): v for k, v in known.items() if (m := _EMBED.fullmatch(k))}
    positions = next(
        (v for k, v in known.items() if "/embed_positions/" in k and v.ndim == 2), None
    )
    layers = 1 + max((layer for layer, _ in ffn), default=-1)
    expected = layers * 8 + 2 * layers  # 8 attention matrices + 2 FFN matrices per layer
    found = len(linear) + len(ffn)
    if (
        not layers
        or found != expected
        or len(norms) != 3 * layers
        or final_norm is None
        or proj_w is None
        or not heads
        or sorted(heads) != sorted(embeds)
        or any(v is None for pair in norms.values() for v in pair)
    ):
        raise ModelError(
            f"{path} does not look like an optimum MusicGen decoder export "
            f"(found {found} of {expected} matrices, {len(norms)} norms, {len(heads)} heads): "
            "cannot build the fast decoder from it"
        )
    return DecoderWeights(
        embeds=[embeds[k] for k in sorted(embeds)],
        linear=linear,
        ffn=ffn,
        norms=norms,
        final_norm=final_norm,
        heads=[heads[k] for k in sorted(heads)],
        proj=(proj_w, proj_b),
        positions=positions,
    )


def as_float32(w: DecoderWeights) -> DecoderWeights:
    """An fp16 export's weights widened to float32, the precision the built graphs compute in.

    Widening is exact: the result computes with the very values the fp16 export stores. Its
    positional table is dropped so the builder computes the table in float32 (the fp16 one is
    rounded to ~3 digits); fp32 exports are returned unchanged.
    """
    if w.embeds[0].dtype == np.float32:
        return w

    def wide(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a.astype(np.float32)

    return DecoderWeights(
        embeds=[wide(e) for e in w.embeds],
        linear={k: wide(v) for k, v in w.linear.items()},
        ffn={k: wide(v) for k, v in w.ffn.items()},
        norms={k: (wide(a), wide(b)) for k, (a, b) in w.norms.items()},
        final_norm=(wide(w.final_norm[0]), wide(w.final_norm[1])),
        heads=[wide(h) for h in w.heads],
        proj=(wide(w.proj[0]), wide(w.proj[1])),
        positions=None,
    )


def sinusoidal_table(positions: int, dim: int) -> np.ndarray:
    """MusicGen's positional table: [cos | sin] of position × inverse frequencies."""
    half = dim // 2
    inv = np.exp(np.arange(half, dtype=np.float32) * -(math.log(10000) / (half - 1)))
    angles = np.arange(positions, dtype=np.float32)[:, None] * inv[None, :]
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


class _Graph:
    """A tiny helper to emit ONNX nodes with unique names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(np.require(array, requirements="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs):
        self._n += 1
        outs = [f"{op_type.lower()}_{self._n}_{i}" for i in range(n_out)]
        self.nodes.append(
            self.helper.make_node(
                op_type, inputs, outs, name=f"{op_type}_{self._n}", domain=domain, **attrs
            )
        )
        return outs[0] if n_out == 1 else outs

    def model(self, inputs, outputs, name: str):
        helper = self.helper
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        return helper.make_model(graph, opset_imports=opsets, producer_name="lofi")


def build_step_graph(w: DecoderWeights, heads: int, max_positions: int):
    """The per-step decoder: tokens + in-place self-attention cache + cross K/V → logits."""
    from onnx import TensorProto as T
    from onnx import helper

    d, k_count = w.hidden, len(w.embeds)
    head_dim = d // heads
    g = _Graph()
    ids = "input_ids"  # [N*K, S]
    n_rows = g.op("Shape", [ids])
    batch = g.op(
        "Div",
        [
            g.op("Gather", [n_rows, g.const("i0", np.array(0))]),
            g.const("k_count", np.array(k_count)),
        ],
    )
    seq = g.op("Gather", [n_rows, g.const("i1", np.array(1))])
    unsq = g.const("axis0", np.array([0]))
    shape_nks = g.op(
        "Concat",
        [
            g.op("Unsqueeze", [batch, unsq]),
            g.const("k_dim", np.array([k_count])),
            g.op("Unsqueeze", [seq, unsq]),
        ],
        axis=0,
    )
    grid = g.op("Reshape", [ids, shape_nks])  # [N, K, S]
    x = None
    for k, table in enumerate(w.embeds):
        tokens = g.op("Gather", [grid, g.const(f"k{k}", np.array(k))], axis=1)  # [N, S]
        emb = g.op("Gather", [g.const(f"embed_{k}", table), tokens])
        x = emb if x is None else g.op("Add", [x, emb])
    # The export's own table keeps positions bit-identical (cos of large angles in float32 differs
    # by ~1e-4 between libraries); the formula is the fallback.
    table = w.positions if w.positions is not None else sinusoidal_table(max_positions, d)
    pos = g.op("Gather", [g.const("positions", table[:max_positions]), "position_ids"])
    x = g.op("Add", [x, pos])
    scale = g.const("cross_scale", np.array(1 / math.sqrt(head_dim), np.float32))
    shape_of = {  # [N, S, H, hd] and [N, S, d], shared by every layer
        name: g.op(
            "Concat",
            [g.op("Unsqueeze", [batch, unsq]), g.op("Unsqueeze", [seq, unsq]), g.const(name, tail)],
            axis=0,
        )
        for name, tail in (("heads_tail", np.array([heads, head_dim])), ("d_tail", np.array([d])))
    }

    def norm(x: str, delta: str | None, key: tuple[int, str], name: str) -> tuple[str, str]:
        """LayerNorm of ``x + delta``: (normalized, the sum), one fused node when delta exists."""
        gamma, beta = (g.const(f"{name}_{j}", t) for j, t in enumerate(w.norms[key]))
        if delta is None:
            return g.op("LayerNormalization", [x, gamma, beta]), x
        out, total = g.op(
            "SkipLayerNormalization",
            [x, delta, gamma, beta],
            n_out=4,
            domain="com.microsoft",
            epsilon=1e-5,
        )[::3]
        return out, total

    presents = []
    delta: str | None = None
    for i in range(w.layers):
        h, x = norm(x, delta, (i, "self_attn_layer_norm"), f"ln1_{i}")
        # q, k and v as one packed [d, 3d] MatMul: GroupQueryAttention splits them itself.
        qkv = np.concatenate([w.linear[(i, "self_attn", p)] for p in "qkv"], axis=1)
        attn, pk, pv = g.op(
            "GroupQueryAttention",
            [
                g.op("MatMul", [h, g.const(f"self_qkv_{i}", qkv)]),
                "",
                "",
                f"past_key_{i}",
                f"past_value_{i}",
                "seqlens_k",
                "total_sequence_length",
            ],
            n_out=3,
            domain="com.microsoft",
            num_heads=heads,
            kv_num_heads=heads,
        )
        presents += [(pk, f"present_key_{i}"), (pv, f"present_value_{i}")]
        delta = g.op("MatMul", [attn, g.const(f"self_o_{i}", w.linear[(i, "self_attn", "out")])])
        h, x = norm(x, delta, (i, "encoder_attn_layer_norm"), f"ln2_{i}")
        cq = g.op("MatMul", [h, g.const(f"cross_q_{i}", w.linear[(i, "encoder_attn", "q")])])
        cq = g.op(
            "Transpose", [g.op("Reshape", [cq, shape_of["heads_tail"]])], perm=[0, 2, 1, 3]
        )  # [N, H, S, hd]
        scores = g.op(
            "Add", [g.op("Mul", [g.op("MatMul", [cq, f"cross_key_t_{i}"]), scale]), "cross_bias"]
        )
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), f"cross_value_{i}"])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), shape_of["d_tail"]])
        delta = g.op("MatMul", [ctx, g.const(f"cross_o_{i}", w.linear[(i, "encoder_attn", "out")])])
        h, x = norm(x, delta, (i, "final_layer_norm"), f"ln3_{i}")
        up = g.op(
            "Gelu",
            [g.op("MatMul", [h, g.const(f"fc1_{i}", w.ffn[(i, "fc1")])])],
            domain="com.microsoft",
        )
        delta = g.op("MatMul", [up, g.const(f"fc2_{i}", w.ffn[(i, "fc2")])])
    x = g.op("Add", [x, delta])
    last = g.op("Gather", [x, g.const("last", np.array(-1))], axis=1)  # [N, d]
    last = g.op(
        "LayerNormalization",
        [last, g.const("lnf_0", w.final_norm[0]), g.const("lnf_1", w.final_norm[1])],
    )
    # All codebook heads as one [d, K·V] matrix: one (quantizable) MatMul, rows n·K + k after
    # the reshape, as the public graphs order them.
    vocab = w.heads[0].shape[1]
    logits = g.op("MatMul", [last, g.const("lm_heads", np.concatenate(w.heads, axis=1))])
    g.nodes.append(
        helper.make_node(
            "Reshape", [logits, g.const("rv", np.array([-1, vocab]))], ["logits"], name="logits"
        )
    )
    for src, dst in presents:
        g.nodes.append(helper.make_node("Identity", [src], [dst], name=dst))
    cache = ["batch", heads, "max_positions", head_dim]
    inputs = [
        helper.make_tensor_value_info("input_ids", T.INT64, ["rows", "seq"]),
        helper.make_tensor_value_info("position_ids", T.INT64, ["seq"]),
        helper.make_tensor_value_info("seqlens_k", T.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", T.INT32, []),
        helper.make_tensor_value_info("cross_bias", T.FLOAT, ["batch", 1, 1, "enc"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", T.FLOAT, ["rows", vocab])]
    for i in range(w.layers):
        inputs += [
            helper.make_tensor_value_info(f"past_key_{i}", T.FLOAT, cache),
            helper.make_tensor_value_info(f"past_value_{i}", T.FLOAT, cache),
            helper.make_tensor_value_info(
                f"cross_key_t_{i}", T.FLOAT, ["batch", heads, head_dim, "enc"]
            ),
            helper.make_tensor_value_info(
                f"cross_value_{i}", T.FLOAT, ["batch", heads, "enc", head_dim]
            ),
        ]
        outputs += [
            helper.make_tensor_value_info(f"present_{kv}_{i}", T.FLOAT, cache)
            for kv in ("key", "value")
        ]
    model = g.model(inputs, outputs, "musicgen_fast_decoder")
    helper.set_model_props(model, {"max_positions": str(max_positions)})
    return model


def build_cross_graph(w: DecoderWeights, heads: int):
    """Encoder states → per-layer cross-attention keys (transposed) and values, once per track."""
    from onnx import TensorProto as T
    from onnx import helper

    d = w.hidden
    head_dim = d // heads
    g = _Graph()
    proj_w, proj_b = w.proj
    h = g.op("MatMul", ["encoder_hidden_states", g.const("proj_w", proj_w)])
    if proj_b is not None:
        h = g.op("Add", [h, g.const("proj_b", proj_b)])
    mask = g.op(
        "Unsqueeze",
        [g.op("Cast", ["encoder_attention_mask"], to=T.FLOAT), g.const("axis2", np.array([2]))],
    )
    h = g.op("Mul", [h, mask])  # transformers zeroes masked encoder states after the projection
    split = g.const("split", np.array([0, -1, heads, head_dim]))
    outputs = []
    for i in range(w.layers):
        k = g.op(
            "Reshape",
            [g.op("MatMul", [h, g.const(f"ck_{i}", w.linear[(i, "encoder_attn", "k")])]), split],
        )
        v = g.op(
            "Reshape",
            [g.op("MatMul", [h, g.const(f"cv_{i}", w.linear[(i, "encoder_attn", "v")])]), split],
        )
        g.nodes.append(helper.make_node("Transpose", [k], [f"cross_key_t_{i}"], perm=[0, 2, 3, 1]))
        g.nodes.append(helper.make_node("Transpose", [v], [f"cross_value_{i}"], perm=[0, 2, 1, 3]))
        outputs += [
            helper.make_tensor_value_info(
                f"cross_key_t_{i}", T.FLOAT, ["batch", heads, head_dim, "enc"]
            ),
            helper.make_tensor_value_info(
                f"cross_value_{i}", T.FLOAT, ["batch", heads, "enc", head_dim]
            ),
        ]
    inputs = [
        helper.make_tensor_value_info("encoder_hidden_states", T.FLOAT, ["batch", "enc", "dtext"]),
        helper.make_tensor_value_info("encoder_attention_mask", T.INT64, ["batch", "enc"]),
    ]
    return g.model(inputs, outputs, "musicgen_cross_kv")


# MatMulNBits variants: (bits, block size). accuracy_level 4 quantizes the activations to int8
# inside the kernel: the VNNI/AMX (x86) and dot-product (ARM) paths, several times faster at the
# 8 token rows of a step than the fp32-activation kernel (measured: 97 vs 33 ms a step for q4).
NBITS = {"q8": (8, 128), "q4": (4, 32)}


def quantize_model(model, quant: str):
    """Weight-only block quantization of every MatMul with a constant matrix (ORT's own tools)."""
    if quant == "fp32":
        return model
    if quant not in NBITS:
        raise ValueError(f"unknown quantization {quant!r}")
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    bits, block = NBITS[quant]
    quantizer = MatMulNBitsQuantizer(
        model, bits=bits, block_size=block, is_symmetric=True, accuracy_level=4
    )
    quantizer.process()
    return quantizer.model.model


def save_model(model, path: Path) -> None:
    """Save atomically; weights beyond protobuf's 2 GB limit go to external data."""
    import onnx

    big = sum(t.ByteSize() for t in model.graph.initializer) > 1_800_000_000
    with atomic_path(path) as tmp:
        if big:
            onnx.save_model(
                model,
                str(tmp),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=f"{path.name}.data",
            )
        else:
            onnx.save_model(model, str(tmp))


def build_fast_decoder(
    source: Path,
    out_dir: Path,
    heads: int,
    max_positions: int,
    quant: str = "int8",
    on_stage: Callable[[str], None] | None = None,
    *,
    text_encoder: Path | None = None,
    tokenizer: Path | None = None,
) -> Path:
    """Write ``decoder_fast[_quant].onnx`` and ``decoder_cross_kv.onnx`` into ``out_dir``.

    An int8-cache variant (``q8kv``...) calibrates its cache scales by generating from a few
    prompts, so it needs the export's ``text_encoder`` and ``tokenizer``. Intermediate graphs
    live in a temporary directory: only the asked-for file is left behind.
    """
    if quant not in FAST_QUANTS:
        raise ModelError(f"unknown quantization {quant!r} (choose {', '.join(FAST_QUANTS)})")
    import onnxruntime

    needs = NBITS_MIN_ORT.get(quant)
    have = tuple(int(x) for x in onnxruntime.__version__.split(".")[:2])
    if needs and have < needs:
        raise ModelError(
            f"the {quant} fast decoder needs onnxruntime >= {needs[0]}.{needs[1]} "
            f"(installed: {onnxruntime.__version__})"
        )
    if int8_cache(quant) and (text_encoder is None or tokenizer is None):
        raise ModelError(f"--quant {quant} calibrates with the text encoder: none was given")
    say = on_stage or (lambda _msg: None)
    say(f"reading weights from {source.name}")
    weights = as_float32(extract_weights(source))
    cross_path = out_dir / CROSS_KV
    if not cross_path.exists():
        say("building the cross-attention graph")
        save_model(build_cross_graph(weights, heads), cross_path)
    say("building the step graph")
    step = build_step_graph(weights, heads, max_positions)
    codebooks, pad_token = len(weights.embeds), weights.embeds[0].shape[0] - 1
    del weights
    target = out_dir / fast_file_name(quant)
    base = weight_quant(quant)
    if base == "int8":
        say("quantizing to int8")
        with _scratch(out_dir) as scratch:
            fp32_path = scratch / fast_file_name("fp32")
            save_model(step, fp32_path)
            del step
            with atomic_path(target) as tmp:
                _quantize_dynamic(fp32_path, tmp)
        return target
    if base != "fp32":
        say(f"quantizing to {base}")
        step = quantize_model(step, base)
    if int8_cache(quant):
        assert text_encoder is not None and tokenizer is not None
        say("calibrating the int8 cache")
        hidden, mask = encode_prompts(text_encoder, tokenizer)
        with _scratch(out_dir) as scratch:
            path = scratch / "calibration.onnx"
            save_model(step, path)
            scales = calibrate(
                str(path), cross_path, hidden, mask, codebooks=codebooks, pad_token=pad_token
            )
        quantize_cache(step, scales)
    say(f"writing {target.name}")
    save_model(step, target)
    return target


@contextmanager
def _scratch(out_dir: Path) -> Iterator[Path]:
    """A hidden temporary directory beside the outputs (same disk), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=".lofi-build-", dir=out_dir) as tmp:
        yield Path(tmp)


def _quantize_dynamic(source: Path, target: Path) -> None:
    """ORT's dynamic int8 quantization of every MatMul with a constant matrix."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _without_preprocess_hint():
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            # shape inference cannot see through the com.microsoft attention op
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )


def _no_preprocess_hint(record: logging.LogRecord) -> bool:
    return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _without_preprocess_hint() -> Iterator[None]:
    """Drop ORT's "Please consider to run pre-processing" advice: it goes to the root logger
    (so to the user's terminal), and its shape-inference pre-pass does nothing for these graphs."""
    root = logging.getLogger()
    root.addFilter(_no_preprocess_hint)
    try:
        yield
    finally:
        root.removeFilter(_no_preprocess_hint)
