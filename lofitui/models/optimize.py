"""Model formats lofi derives on the user's machine from public files (``lofi models optimize``).

Today: MusicGen's fast decoder (in-place KV cache, 4-bit or int8 weights; built by
``lofitui.convert.musicgen_fast`` through MusicGen's prepare step, ``MusicGenEngine.prepare``),
written next to the public ONNX files it was built from and reused from then on.
"""

from __future__ import annotations

from pathlib import Path

from lofitui.convert.formats import DEFAULT_FAST_QUANT
from lofitui.engines.base import StageCallback
from lofitui.engines.musicgen_files import MusicGenFiles


def has_fast_decoder(model_dir: Path, quant: str | None = None) -> bool:
    files = MusicGenFiles.find(model_dir)
    return files.cross_kv is not None and (quant in files.fast if quant else bool(files.fast))


def optimize_musicgen(
    model_dir: Path, quant: str = DEFAULT_FAST_QUANT, on_stage: StageCallback | None = None
) -> Path:
    """Build (once) the fast decoder for the MusicGen export in ``model_dir``; returns its path.

    MusicGen's own prepare step with an explicit quantization (``lofi models optimize``).
    """
    from lofitui.engines.musicgen import MusicGenEngine
    from lofitui.engines.runtime import RuntimeOptions

    path = MusicGenEngine.prepare(
        model_dir, RuntimeOptions("cpu"), on_stage or (lambda _msg: None), quant=quant
    )
    assert path is not None  # an explicit quantization always gives a file or an error
    return path
