"""An int8 self-attention cache for lofi's fast MusicGen decoder, with scales fixed at build time.

ONNX Runtime's ``GroupQueryAttention`` stores its cache as int8 when given ``k_quant_type`` /
``v_quant_type`` and per-channel scales (inputs 12 and 13): a step then reads a quarter of the
bytes of the fp32 cache, the cost that grows with the position. The scales cannot follow the data
at run time, so they are calibrated once, on the weights being converted: the step graph generates
a few hundred tokens for a few prompts (classifier-free guidance, top-k sampling, MusicGen's delay
pattern, as a track does) and each layer's largest |key| and |value| per head and channel, with
:data:`HEADROOM`, become the scales. Values beyond them saturate at ±127 rather than wrap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Prompts the calibration generates from: the player's own genre, and enough spread of timbre.
PROMPTS = (
    "lofi hip hop beat with warm piano and vinyl crackle",
    "mellow jazz chords, soft drums, rainy night",
    "ambient synth pad, slow tempo, tape hiss",
    "upbeat funk bass line with crisp drums and guitar",
)
STEPS = 192  # token columns generated per prompt (~4 s of audio)
HEADROOM = 1.25  # scale = headroom × observed max |x| / 127: positions beyond calibration vary
GUIDANCE = 3.0
TOP_K = 250
KV_QUANT = "PER_CHANNEL"


@dataclass(frozen=True)
class KVScales:
    """Per-layer dequantization scales, each shaped [1, heads, 1, head_dim] (x ≈ q · scale)."""

    key: list[np.ndarray]
    value: list[np.ndarray]


def encode_prompts(
    text_encoder: Path, tokenizer: Path, prompts: tuple[str, ...] = PROMPTS
) -> tuple[np.ndarray, np.ndarray]:
    """T5 hidden states and mask of ``prompts`` followed by as many unconditional rows (CFG)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    tok.no_padding()
    session = ort.InferenceSession(str(text_encoder), providers=["CPUExecutionProvider"])
    encoded = [tok.encode(p).ids for p in prompts]
    width = max(len(ids) for ids in encoded)
    ids = np.zeros((len(prompts), width), np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(encoded):
        ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    (hidden,) = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
    hidden = np.asarray(hidden, np.float32) * mask[..., None].astype(np.float32)
    return np.concatenate([hidden, np.zeros_like(hidden)]), np.concatenate(
        [mask, np.zeros_like(mask)]
    )


def calibrate(
    step_model: str | bytes,
    cross_model: Path,
    hidden: np.ndarray,
    mask: np.ndarray,
    *,
    codebooks: int,
    pad_token: int,
    steps: int = STEPS,
    seed: int = 0,
    threads: int = 0,
) -> KVScales:
    """Generate ``steps`` columns with the fp32-cache step graph; the cache's ranges → scales.

    ``hidden``/``mask`` hold the conditional rows then as many unconditional ones
    (:func:`encode_prompts`).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    cpu = ["CPUExecutionProvider"]
    cross = ort.InferenceSession(str(cross_model), opts, providers=cpu)
    cross_out = cross.run(None, {"encoder_hidden_states": hidden, "encoder_attention_mask": mask})
    cross_names = [o.name for o in cross.get_outputs()]
    del cross
    session = ort.InferenceSession(step_model, opts, providers=cpu)
    shapes = {a.name: a.shape for a in session.get_inputs()}
    layers = sum(1 for name in shapes if name.startswith("past_key_"))
    _, heads, _, head_dim = shapes["past_key_0"]
    batch = hidden.shape[0]
    buffers = [np.zeros((batch, heads, steps, head_dim), np.float32) for _ in range(2 * layers)]
    binding = session.io_binding()
    for name, value in zip(cross_names, cross_out, strict=True):
        binding.bind_cpu_input(name, value)
    bias = np.where(mask > 0, 0.0, -1e9).astype(np.float32)[:, None, None, :]
    binding.bind_cpu_input("cross_bias", bias)
    binding.bind_output("logits")
    values = [ort.OrtValue.ortvalue_from_numpy(b) for b in buffers]
    for i in range(layers):
        for j, kv in enumerate(("key", "value")):
            binding.bind_ortvalue_input(f"past_{kv}_{i}", values[2 * i + j])
            binding.bind_ortvalue_output(f"present_{kv}_{i}", values[2 * i + j])
    rng = np.random.default_rng(seed)
    cond, k_count = batch // 2, codebooks
    column = np.full((batch * k_count, 1), pad_token, np.int64)
    for t in range(steps):
        binding.bind_cpu_input("input_ids", column)
        binding.bind_cpu_input("position_ids", np.array([t], np.int64))
        binding.bind_cpu_input("seqlens_k", np.full(batch, t, np.int32))
        binding.bind_cpu_input("total_sequence_length", np.array(t + 1, np.int32))
        session.run_with_iobinding(binding)
        logits = binding.get_outputs()[0].numpy().reshape(batch, k_count, -1)
        guided = logits[cond:] + GUIDANCE * (logits[:cond] - logits[cond:])
        tokens = _sample_top_k(guided, rng)  # [cond, K]
        # The delay pattern: codebook k starts one column after codebook k - 1.
        tokens[:, np.arange(k_count) > t] = pad_token
        column = np.tile(tokens, (2, 1)).reshape(-1, 1)
    key = [np.abs(values[2 * i].numpy()).max(axis=(0, 2), keepdims=True) for i in range(layers)]
    val = [np.abs(values[2 * i + 1].numpy()).max(axis=(0, 2), keepdims=True) for i in range(layers)]

    def scale(peak: np.ndarray) -> np.ndarray:
        return np.maximum(peak * HEADROOM / 127, 1e-8).astype(np.float32)

    return KVScales([scale(k) for k in key], [scale(v) for v in val])


def _sample_top_k(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token per (row, codebook) from the top-k of ``logits`` [rows, K, V], temperature 1."""
    k = min(TOP_K, logits.shape[-1])
    top = np.argpartition(logits, -k, axis=-1)[..., -k:]
    picked = np.take_along_axis(logits, top, axis=-1)
    probs = np.exp(picked - picked.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    cum = probs.cumsum(axis=-1)
    draw = rng.random((*cum.shape[:-1], 1))
    index = np.minimum((cum < draw).sum(axis=-1), k - 1)
    return np.take_along_axis(top, index[..., None], axis=-1)[..., 0].astype(np.int64)


def quantize_cache(model, scales: KVScales):
    """Turn every GroupQueryAttention's cache of ``model`` (in place) into int8 with ``scales``."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    attention = [n for n in graph.node if n.op_type == "GroupQueryAttention"]
    if len(attention) != len(scales.key):
        raise ValueError(f"{len(attention)} attention nodes but {len(scales.key)} scales")
    for i, node in enumerate(attention):
        names = (f"kv_key_scale_{i}", f"kv_value_scale_{i}")
        graph.initializer.extend(
            numpy_helper.from_array(s, n)
            for s, n in zip((scales.key[i], scales.value[i]), names, strict=True)
        )
        inputs = [*node.input, *[""] * (12 - len(node.input)), *names]
        del node.input[:]
        node.input.extend(inputs)
        node.attribute.extend(
            [
                helper.make_attribute("k_quant_type", KV_QUANT),
                helper.make_attribute("v_quant_type", KV_QUANT),
                helper.make_attribute("kv_cache_bit_width", 8),
            ]
        )
    for info in [*graph.input, *graph.output]:
        if info.name.startswith(("past_key_", "past_value_", "present_key_", "present_value_")):
            info.type.tensor_type.elem_type = TensorProto.INT8
    return model
