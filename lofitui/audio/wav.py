"""WAV files: atomic writes and reads that refuse truncated or corrupt files.

Decoding and encoding are libsndfile's (through ``soundfile``). libsndfile quietly shortens a
file whose header promises more data than it holds, so :func:`read_wav` also checks the RIFF
header's sizes against the file itself: a cached track cut short by a crash is an error, never a
shorter track, and garbage is never played as noise.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from lofitui.atomic import atomic_path
from lofitui.audio.types import Audio
from lofitui.errors import LofiError

Subtype = Literal["FLOAT", "PCM_16"]
SUBTYPES: tuple[Subtype, ...] = ("FLOAT", "PCM_16")

_UNKNOWN_SIZE = 0xFFFFFFFF  # what streaming writers put in a size field they could not fill


class CorruptAudioError(LofiError):
    """An audio file is truncated, unreadable or holds invalid samples."""


def write_wav(path: str | os.PathLike[str], audio: Audio, subtype: Subtype = "FLOAT") -> Path:
    """Write ``audio`` to ``path`` atomically and return the path.

    ``subtype`` is ``"FLOAT"`` (32-bit float, lossless for our samples) or ``"PCM_16"`` (16-bit
    integer, clipped to [-1, 1]). Written through :func:`lofitui.atomic.atomic_path`: readers
    see the old file or the complete new one, never a temp file or half a file.
    """
    if subtype not in SUBTYPES:
        raise ValueError(f"unknown WAV subtype {subtype!r}: use one of {', '.join(SUBTYPES)}")
    if audio.channels < 1:
        raise ValueError("audio has no channels")
    target = Path(path)
    samples = audio.samples
    if subtype == "PCM_16":
        samples = np.clip(samples, -1.0, 1.0)
    with atomic_path(target) as tmp:
        sf.write(tmp, samples, audio.sample_rate, subtype=subtype, format="WAV")
    return target


def read_wav(path: str | os.PathLike[str]) -> Audio:
    """Read a WAV file as float32 :class:`Audio`; raise :class:`CorruptAudioError` if damaged.

    Damaged means: no readable header, a header promising more data than the file holds, fewer
    frames decoded than the header announces, or non-finite samples.
    """
    source = Path(path)
    name = source.name
    try:
        _check_riff_sizes(source)
        with sf.SoundFile(source) as handle:
            expected = handle.frames
            samples = handle.read(dtype="float32", always_2d=True)
            rate = handle.samplerate
    except CorruptAudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, struct.error) as exc:
        raise CorruptAudioError(f"{name}: unreadable audio file ({_one_line(exc)})") from exc
    if samples.shape[0] != expected:
        raise CorruptAudioError(
            f"{name}: truncated ({samples.shape[0]} of {expected} frames readable)"
        )
    if not np.isfinite(samples).all():
        raise CorruptAudioError(f"{name}: contains invalid (non-finite) samples")
    return Audio(np.ascontiguousarray(samples), int(rate))


def _check_riff_sizes(path: Path) -> None:
    """Compare the RIFF and data chunk sizes in the header with what the file holds.

    Only the chunk *sizes* are read here (libsndfile does the real parsing); it is the one
    thing libsndfile forgives that a cache must not.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12:
            raise CorruptAudioError(f"{path.name}: truncated header ({size} bytes)")
        riff, riff_size, wave = struct.unpack("<4sI4s", header)
        if riff != b"RIFF" or wave != b"WAVE":
            raise CorruptAudioError(f"{path.name}: not a RIFF/WAVE file")
        if riff_size != _UNKNOWN_SIZE and riff_size + 8 > size:
            raise CorruptAudioError(
                f"{path.name}: truncated ({size} bytes, header says {riff_size + 8})"
            )
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            offset += 8
            if chunk_id == b"data":
                if chunk_size != _UNKNOWN_SIZE and offset + chunk_size > size:
                    raise CorruptAudioError(
                        f"{path.name}: truncated ({size - offset} of {chunk_size} data bytes)"
                    )
                return
            offset += chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    raise CorruptAudioError(f"{path.name}: no audio data chunk")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
