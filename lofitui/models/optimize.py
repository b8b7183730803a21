"""Model formats lofi derives on the user's machine from public files (``lofi models optimize``).

Today: MusicGen's fast decoder (in-place KV cache, 4-bit or int8 weights; see
``lofitui.convert.musicgen_fast``), written next to the public ONNX files it was built from and
reused from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lofitui.convert.formats import FAST_QUANTS
from lofitui.engines.musicgen_files import MusicGenFiles
from lofitui.errors import UsageError

DEFAULT_QUANT = "int8"


def has_fast_decoder(model_dir: Path, quant: str | None = None) -> bool:
    files = MusicGenFiles.find(model_dir)
    return files.cross_kv is not None and (quant in files.fast if quant else bool(files.fast))


def optimize_musicgen(
    model_dir: Path, quant: str = DEFAULT_QUANT, on_stage: Callable[[str], None] | None = None
) -> Path:
    """Build (once) the fast decoder for the MusicGen export in ``model_dir``; returns its path."""
    from lofitui.convert.musicgen_fast import build_fast_decoder
    from lofitui.engines.musicgen import MusicGenConfig

    if quant not in FAST_QUANTS:
        raise UsageError(f"unknown quantization {quant!r} (choose {', '.join(FAST_QUANTS)})")
    files = MusicGenFiles.find(model_dir)
    if quant in files.fast and files.cross_kv is not None:
        return files.fast[quant]
    config = MusicGenConfig.from_files(files)
    return build_fast_decoder(
        files.exact_source,
        files.onnx_dir,
        heads=config.heads,
        max_positions=config.max_positions,
        quant=quant,
        on_stage=on_stage,
    )


def ensure_fast_decoder(
    model_dir: Path, engine: str, device_is_cpu: bool, on_stage: Callable[[str], None]
) -> None:
    """Build the fast decoder the first time a lofi-managed MusicGen model runs on the CPU.

    Directories the user passed with ``--model`` are never written to (``lofi models optimize
    DIR`` does it on request). A model the builder does not understand keeps the exact path.
    """
    from lofitui import paths
    from lofitui.errors import ModelError

    if engine != "musicgen" or not device_is_cpu:
        return
    managed = paths.models_dir().resolve()
    if managed not in model_dir.resolve().parents or has_fast_decoder(model_dir):
        return
    on_stage(f"building the fast CPU decoder for {model_dir.name} (once)")
    try:
        optimize_musicgen(model_dir, DEFAULT_QUANT, on_stage)
    except ModelError as exc:
        on_stage(f"keeping the exact decoder: {exc}")
