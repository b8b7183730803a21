"""Find a MusicGen export's files in the directory layouts used in the wild.

Supported layouts (all produced by Hugging Face optimum, same tensor names):

- flat: ``config.json``, ``tokenizer.json`` and the ``*.onnx`` files in one directory (lofi's own
  model directories and a plain ``optimum-cli export`` output). A ``fp16/`` directory of ONNX files
  next to the configs is found too.
- gabotechs/music_gen: ``small/{config,tokenizer}.json`` beside ``small_fp32/*.onnx``; point at the
  ``small_fp32`` (or ``small_fp16``...) directory, or at the repo root with a variant like
  ``small_fp16``.
- Xenova/musicgen-small: configs at the root, ONNX files in ``onnx/`` with a suffix per variant
  (``decoder_model_merged_fp16.onnx``, ``_quantized``, ``_q4``...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lofitui.errors import ModelError

TEXT_ENCODER = "text_encoder"
DECODER = "decoder_model"
DECODER_WITH_PAST = "decoder_with_past_model"
DECODER_MERGED = "decoder_model_merged"
ENCODEC = "encodec_decode"
FAST_DECODER = "decoder_fast.onnx"
CROSS_KV = "decoder_cross_kv.onnx"
# Preference order when several were built: int8 is as fast as 4-bit on a 2-core AVX2 CPU
# (weight traffic is no longer the only bound once the cache stays in place) and 7x closer to fp32.
FAST_QUANTS = ("int8", "q4", "fp32")
DEFAULT_FAST_QUANT = "int8"

# Xenova's file-name suffix for each variant; the plain files are fp32.
XENOVA_SUFFIX = {"fp32": "", "fp16": "_fp16", "int8": "_quantized", "q4": "_q4"}


@dataclass(frozen=True)
class MusicGenFiles:
    """Paths of one MusicGen export. Either the split decoder pair or the merged decoder is set."""

    config: Path
    tokenizer: Path
    text_encoder: Path
    encodec: Path
    decoder: Path | None = None
    decoder_with_past: Path | None = None
    decoder_merged: Path | None = None
    generation_config: Path | None = None
    fast: dict[str, Path] = field(default_factory=dict)  # quant → lofi's rebuilt step decoder
    cross_kv: Path | None = None

    @property
    def onnx_dir(self) -> Path:
        return self.text_encoder.parent

    @property
    def exact_source(self) -> Path:
        """The public decoder whose weights lofi's fast decoder is rebuilt from."""
        source = self.decoder or self.decoder_merged
        assert source is not None
        return source

    @property
    def has_split(self) -> bool:
        return self.decoder is not None and self.decoder_with_past is not None

    def read_config(self) -> dict[str, Any]:
        return _read_json(self.config)

    def read_generation_config(self) -> dict[str, Any]:
        return _read_json(self.generation_config) if self.generation_config else {}

    @classmethod
    def find(cls, root: Path, variant: str | None = None) -> MusicGenFiles:
        """Locate every file under ``root``; ``variant`` picks e.g. fp16 where several exist.

        Raises ModelError naming the first missing file.
        """
        root = Path(root)
        if not root.is_dir():
            raise ModelError(f"model directory not found: {root}")
        onnx_dir, suffix = _onnx_dir(root, variant)
        meta_dirs = _meta_dirs(root, onnx_dir)

        def meta(name: str, required: bool = True) -> Path | None:
            for d in meta_dirs:
                if (d / name).is_file():
                    return d / name
            if required:
                raise ModelError(
                    f"missing {name} in {root} (looked in: "
                    + ", ".join(str(d) for d in meta_dirs)
                    + ")"
                )
            return None

        def onnx(stem: str) -> Path | None:
            path = onnx_dir / f"{stem}{suffix}.onnx"
            return path if path.is_file() else None

        decoder, with_past, merged = onnx(DECODER), onnx(DECODER_WITH_PAST), onnx(DECODER_MERGED)
        if not (decoder and with_past) and not merged:
            missing = (
                DECODER_MERGED
                if not (decoder or with_past)
                else (DECODER_WITH_PAST if decoder else DECODER)
            )
            raise ModelError(
                f"missing {onnx_dir / f'{missing}{suffix}.onnx'} "
                f"(need {DECODER_MERGED}.onnx or {DECODER}.onnx + "
                f"{DECODER_WITH_PAST}.onnx)"
            )
        required = {}
        for stem in (TEXT_ENCODER, ENCODEC):
            path = onnx(stem)
            if path is None:
                raise ModelError(f"missing {onnx_dir / f'{stem}{suffix}.onnx'}")
            required[stem] = path
        config = meta("config.json")
        tokenizer = meta("tokenizer.json")
        assert config is not None and tokenizer is not None
        return cls(
            config=config,
            tokenizer=tokenizer,
            text_encoder=required[TEXT_ENCODER],
            encodec=required[ENCODEC],
            decoder=decoder if with_past else None,
            decoder_with_past=with_past if decoder else None,
            decoder_merged=merged,
            generation_config=meta("generation_config.json", required=False),
            fast=find_fast(onnx_dir),
            cross_kv=(onnx_dir / CROSS_KV) if (onnx_dir / CROSS_KV).is_file() else None,
        )


def find_fast(directory: Path) -> dict[str, Path]:
    """lofi's rebuilt decoders in ``directory``, by quantization (see musicgen_fast)."""
    found = {}
    for quant in FAST_QUANTS:
        path = directory / fast_file_name(quant)
        if path.is_file():
            found[quant] = path
    return found


def fast_file_name(quant: str) -> str:
    return FAST_DECODER if quant == "fp32" else FAST_DECODER.replace(".onnx", f"_{quant}.onnx")


def _onnx_dir(root: Path, variant: str | None) -> tuple[Path, str]:
    """The directory holding the ONNX files and the file-name suffix for ``variant``."""
    if (root / "onnx").is_dir():  # Xenova layout
        key = variant or "fp32"
        if key not in XENOVA_SUFFIX:
            raise ModelError(
                f"unknown variant {variant!r} for {root} (choose {', '.join(XENOVA_SUFFIX)})"
            )
        return root / "onnx", XENOVA_SUFFIX[key]
    if variant:
        for candidate in (root / variant, root / f"{_size_of(root)}_{variant}"):
            if candidate.is_dir() and any(candidate.glob("*.onnx")):
                return candidate, ""
        if not (variant == "fp32" and any(root.glob("*.onnx"))):
            raise ModelError(f"variant {variant!r} not found in {root}")
    return root, ""


def _size_of(root: Path) -> str:
    return root.name.split("_", 1)[0]


def _meta_dirs(root: Path, onnx_dir: Path) -> list[Path]:
    """Where config.json/tokenizer.json may sit relative to the ONNX directory."""
    dirs = [onnx_dir, root]
    for d in (onnx_dir, root):
        if "_" in d.name:  # gabotechs: small_fp32/ next to small/
            dirs.append(d.parent / _size_of(d))
        dirs.append(d.parent)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data
