"""Model formats lofi derives on the user's machine from public files (``lofi models optimize``).

Today: MusicGen's fast decoder (in-place KV cache, 4-bit or int8 weights), built by MusicGen's
prepare step (``MusicGenEngine.prepare``), written next to the public ONNX files it was built
from and reused from then on.
"""

from __future__ import annotations

from pathlib import Path

from lofitui.engines.base import StageCallback
from lofitui.engines.musicgen_files import (
    CROSS_KV,
    DEFAULT_FAST_QUANT,
    FAST_QUANTS,
    MusicGenFiles,
    fast_file_name,
)


def derived_files(directory: Path) -> list[Path]:
    """Files lofi built itself in a model directory (removed with the model)."""
    names = [CROSS_KV, *(fast_file_name(q) for q in FAST_QUANTS)]
    found = []
    for name in names:
        for path in (directory / name, directory / f"{name}.data"):
            if path.is_file():
                found.append(path)
    return found


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
