"""WAV files: atomic writes, reads that refuse truncated or corrupt files, and 16-bit WAV streams.

Decoding and encoding are libsndfile's (through ``soundfile``). libsndfile quietly shortens a
file whose header promises more data than it holds, so :func:`read_wav` also checks the RIFF
header's sizes against the file itself: a cached track cut short by a crash is an error, never a
shorter track, and garbage is never played as noise.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from lofitui.atomic import atomic_path
from lofitui.audio.interrupts import interrupts_held
from lofitui.audio.types import Audio
from lofitui.errors import LofiError

Subtype = Literal["FLOAT", "PCM_16"]
SUBTYPES: tuple[Subtype, ...] = ("FLOAT", "PCM_16")

_UNKNOWN_SIZE = 0xFFFFFFFF  # what streaming writers put in a size field they could not fill
_HEADER_BYTES = 44  # RIFF + fmt (16-byte PCM) + data chunk headers
MAX_DATA_BYTES = 0xFFFFFFFF - (_HEADER_BYTES - 8)  # the RIFF size field is 32 bits


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
    # Encoded in memory, written by Python: a full disk raises OSError(ENOSPC), where
    # libsndfile writing the file itself would only say "System error.".
    encoded = io.BytesIO()
    with interrupts_held():
        sf.write(encoded, samples, audio.sample_rate, subtype=subtype, format="WAV")
    with atomic_path(target) as tmp:
        tmp.write_bytes(encoded.getbuffer())
    return target


def pcm16_bytes(samples: np.ndarray) -> bytes:
    """(frames, channels) float samples as little-endian 16-bit PCM, clipped to [-1, 1].

    Converted by libsndfile, as :func:`write_wav` converts ``"PCM_16"``: the same samples give
    the same integers in a stream as in a file.
    """
    buffer = io.BytesIO()
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    with interrupts_held():
        sf.write(buffer, clipped, 8000, format="RAW", subtype="PCM_16", endian="LITTLE")
    return buffer.getvalue()


def wav_header(frames: int, sample_rate: int, channels: int) -> bytes:
    """The 44-byte header of a 16-bit PCM WAV holding exactly ``frames`` frames."""
    data = frames * channels * 2
    if frames < 0 or channels < 1 or sample_rate < 1:
        raise ValueError(f"no WAV of {frames} frames, {channels} channels at {sample_rate} Hz")
    if data > MAX_DATA_BYTES:
        raise ValueError(f"{data} bytes of audio exceed a WAV file's 4 GiB")
    block = channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * block, block, 16)
    return (
        struct.pack("<4sI4s", b"RIFF", _HEADER_BYTES - 8 + data, b"WAVE")
        + struct.pack("<4sI", b"fmt ", len(fmt))
        + fmt
        + struct.pack("<4sI", b"data", data)
    )


class WavStream:
    """A 16-bit WAV whose length is known before its audio: the header first, then the audio
    as it arrives, to a sink that cannot seek (a pipe).

    The header promises exactly ``frames`` frames: :meth:`write` refuses audio past them and
    :meth:`pad` fills with silence, so a finished stream is always a valid, complete file.
    """

    def __init__(
        self, write: Callable[[bytes], object], frames: int, sample_rate: int, channels: int
    ) -> None:
        self._write = write
        self.frames = frames
        self.sample_rate = sample_rate
        self.channels = channels
        self.written = 0
        self._header = wav_header(frames, sample_rate, channels)  # checks the size first
        self._started = False

    def start(self) -> None:
        """Send the header (at once, so a player can open its device before the audio)."""
        if not self._started:
            self._started = True
            self._write(self._header)

    def write(self, audio: Audio) -> None:
        """Send ``audio`` (same rate and channels as promised) after what was sent."""
        if (audio.sample_rate, audio.channels) != (self.sample_rate, self.channels):
            raise ValueError(
                f"audio at {audio.sample_rate} Hz x{audio.channels} in a WAV stream of "
                f"{self.sample_rate} Hz x{self.channels}"
            )
        if self.written + audio.frames > self.frames:
            raise ValueError(f"audio past the {self.frames} frames the WAV header promised")
        self.start()
        if audio.frames:
            self._write(pcm16_bytes(audio.samples))
            self.written += audio.frames

    def pad(self, frames: int) -> None:
        """Send ``frames`` frames of silence (never past the promised length)."""
        if frames > 0:
            silence = np.zeros((frames, self.channels), dtype=np.float32)
            self.write(Audio(silence, self.sample_rate))


def read_wav(path: str | os.PathLike[str]) -> Audio:
    """Read a WAV file as float32 :class:`Audio`; raise :class:`CorruptAudioError` if damaged.

    Damaged means: no readable header, a header promising more data than the file holds, fewer
    frames decoded than the header announces, or non-finite samples.
    """
    source = Path(path)
    name = source.name
    try:
        _check_riff_sizes(source)
        with sf.SoundFile(os.fsencode(source)) as handle:  # a str path must be UTF-8
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
