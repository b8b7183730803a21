"""Files lofi derives on the user's machine inside a model directory (the fast MusicGen decoder).

They belong to the model: listed with it, counted in its size and removed with it.
"""

from __future__ import annotations

from pathlib import Path

from lofitui.convert.formats import CROSS_KV, FAST_QUANTS, fast_file_name


def derived_files(directory: Path) -> list[Path]:
    """Files lofi built itself in a model directory (removed with the model)."""
    names = [CROSS_KV, *(fast_file_name(q) for q in FAST_QUANTS)]
    found = []
    for name in names:
        for path in (directory / name, directory / f"{name}.data"):
            if path.is_file():
                found.append(path)
    return found
