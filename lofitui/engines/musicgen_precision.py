"""MusicGen's precision choice, ``compute_type`` (named after faster-whisper's option).

| compute type | on the CPU                                        | on a GPU / CoreML         |
|--------------|---------------------------------------------------|---------------------------|
| ``auto``     | the 8-bit fast decoder with its int8 cache        | the exported graphs       |
| ``float32``  | the fast decoder in float32: the exported fp32    | the exported graphs       |
|              | graphs' logits (within 1e-5), in-place cache      |                           |
| ``int8``     | 8-bit weight blocks (``MatMulNBits``, int8        | refused: CPU only         |
|              | activations; dynamic int8 on onnxruntime < 1.22)  |                           |
| ``int4``     | 4-bit weight blocks (and the int8 cache):         | refused: CPU only         |
|              | smallest, furthest from fp32                      |                           |

The fast decoders are built once from the export's own weights (fp16 exports are widened to
float32 first) by :mod:`lofitui.convert.musicgen_fast`; ``fast_quant`` names the build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lofitui.convert.formats import int8_cache, weight_quant
from lofitui.engines.base import Param
from lofitui.errors import UsageError

if TYPE_CHECKING:  # onnxruntime is imported only when a model is opened, not to parse options
    from lofitui.engines.runtime import RuntimeOptions

COMPUTE_TYPES = ("auto", "float32", "int8", "int4")
DEFAULT_COMPUTE_TYPE = "auto"

COMPUTE_PARAM = Param(
    "compute_type",
    str,
    "precision of the decoder: auto (int8 on the CPU, the exported graphs on a GPU), float32 "
    "(the exported graphs' logits), int8 or int4 (CPU only; smaller, faster, less exact)",
    "--compute-type",
    "TYPE",
    default=DEFAULT_COMPUTE_TYPE,
    choices=COMPUTE_TYPES,
)


def fast_quant(compute_type: str | None, options: RuntimeOptions) -> str | None:
    """The fast decoder build ``compute_type`` runs on ``options``' device; None: the exported
    graphs as they are (GPU, CoreML)."""
    from lofitui.engines.runtime import default_fast_quant

    kind = compute_type or DEFAULT_COMPUTE_TYPE
    if kind not in COMPUTE_TYPES:
        raise UsageError(f"compute-type must be one of {', '.join(COMPUTE_TYPES)} (got {kind!r})")
    if options.providers()[0] != "CPUExecutionProvider":
        if kind in ("int8", "int4"):
            raise UsageError(
                f"--compute-type {kind} runs on the CPU only (--device cpu); on this device use "
                "auto or float32"
            )
        return None
    best = default_fast_quant()  # 8-bit weights, with the int8 cache where onnxruntime has it
    if kind == "int4":
        return "q4kv" if int8_cache(best) else "q4"
    return "fp32" if kind == "float32" else best


def compute_type_of(quant: str | None) -> str:
    """The compute type a fast decoder build (or the exported graphs: None) gives."""
    if quant is None or quant == "fp32":
        return "float32"
    return "int4" if weight_quant(quant) == "q4" else "int8"
