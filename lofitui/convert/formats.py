"""What the converters write and the runtime reads: file names, format ids, the install hint.

The one source of truth for both sides; plain constants, so the engines import it at no cost.
"""

from __future__ import annotations

# MusicGen: lofi's fast decoder, rebuilt next to the public ONNX files (convert.musicgen_fast).
FAST_DECODER = "decoder_fast.onnx"
CROSS_KV = "decoder_cross_kv.onnx"
# Preference order when several were built. q8 (8-bit blocks of 128, MatMulNBits with int8
# activations: VNNI/AMX kernels) beats int8 dynamic quantization in both speed and logit error on
# AVX-512 CPUs; q4 halves the weight bytes again but moves logits ~8x further from fp32. A "kv"
# suffix adds an int8 self-attention cache (scales calibrated at build time: convert.kv_cache):
# a quarter of the cache bytes per step at the same logit error as q8 (README, "Speed").
FAST_QUANTS = ("q8kv", "q8", "int8", "q4kv", "q4", "fp32")
DEFAULT_FAST_QUANT = "q8kv"
# What an older onnxruntime builds instead of the default, in order (int8 needs no new kernel).
FAST_FALLBACKS = ("q8", "int8")
# The onnxruntime (major, minor) whose CPU kernels run a quantization (8-bit MatMulNBits: 1.22;
# GroupQueryAttention's int8 cache on the CPU: the oldest release verified here, 1.32).
NBITS_MIN_ORT = {"q8": (1, 22), "q8kv": (1, 32), "q4kv": (1, 32)}

# ACE-Step: the model directory written by convert.acestep, described by its config file.
ACESTEP_CONFIG_NAME = "acestep.json"
ACESTEP_FORMAT = "lofi-acestep"
ACESTEP_FORMAT_VERSION = 1
# The diffusers pipeline components the exporter reads: all lofi downloads of a checkpoint.
ACESTEP_PIPELINE_COMPONENTS = (
    "text_encoder",
    "tokenizer",
    "condition_encoder",
    "transformer",
    "vae",
    "scheduler",
)

# ACE-Step v1: the file set lofi.nvim publishes (willibrandon/lofi-models, ace-step/), which
# convert.acestep_v1 writes too, plus its optional side file (the runtime runs the set without it).
ACESTEP_V1_CONFIG_NAME = "acestep_v1.json"
ACESTEP_V1_FORMAT = "lofi-acestep-v1"
ACESTEP_V1_FORMAT_VERSION = 1
ACESTEP_V1_DECODER_WEIGHTS = "transformer_decoder_weights.bin"
ACESTEP_V1_FILES = {
    "tokenizer": "tokenizer.json",
    "text_encoder": "text_encoder.onnx",
    "transformer_encoder": "transformer_encoder.onnx",
    "transformer_decoder": "transformer_decoder.onnx",
    "transformer_decoder_weights": ACESTEP_V1_DECODER_WEIGHTS,
    "dcae_decoder": "dcae_decoder.onnx",
    "vocoder": "vocoder.onnx",
}
EXPORT_V1_EXTRA_HINT = "pip install -e '.[export-acestep-v1]'"
# The original pipeline's defaults (``ACEStepPipeline.__call__``; ERG aside: it edits the graphs),
# by lofi's parameter names: what the engine samples with, the catalog shows, the side file keeps.
ACESTEP_V1_DEFAULTS: dict[str, str | int | float] = {
    "steps": 60,
    "scheduler": "euler",
    "guidance": 15.0,
    "guidance_mode": "apg",
    "omega": 10.0,
    "guidance_interval": 0.5,
    "guidance_decay": 0.0,
    "min_guidance": 3.0,
}

# The optional extra the ACE-Step exporter needs (torch, diffusers, transformers, onnxscript).
EXPORT_EXTRA_HINT = "pip install -e '.[export-acestep]'"


def weight_quant(quant: str) -> str:
    """The weight quantization of a fast-decoder id ("q8kv" → "q8")."""
    return quant.removesuffix("kv")


def int8_cache(quant: str) -> bool:
    """Whether the fast decoder ``quant`` keeps its self-attention cache in int8."""
    return quant.endswith("kv")


def fast_file_name(quant: str) -> str:
    """The file name of the fast decoder built with ``quant`` (one of :data:`FAST_QUANTS`)."""
    return FAST_DECODER if quant == "fp32" else FAST_DECODER.replace(".onnx", f"_{quant}.onnx")
