"""Track files outside the cache: readable names, the sidecar metadata, writing a new track.

A track's file name is ``<prompt-slug>-<seed>.wav`` (plus ``-2``, ``-3``... when taken) with a
sidecar ``.json`` beside it; nothing is ever overwritten.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from lofitui import __version__
from lofitui.atomic import atomic_new, write_json_atomic
from lofitui.audio.types import Audio
from lofitui.audio.wav import write_wav
from lofitui.engines.base import Engine, TrackRequest

__all__ = [
    "slugify",
    "track_metadata",
    "track_stem",
    "unique_path",
    "write_new_pair",
    "write_track",
]


def slugify(text: str, max_len: int = 48) -> str:
    """A readable, filesystem-safe name: ASCII letters, digits and dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "track"


def track_stem(request: TrackRequest) -> str:
    """The file name (without suffix) a track of ``request`` gets: ``<prompt-slug>-<seed>``."""
    return f"{slugify(request.prompt)}-{request.seed}"


def unique_path(directory: Path, stem: str, suffix: str) -> Path:
    """``stem.suffix`` in ``directory``, or ``stem-2.suffix``... if taken (never overwrites)."""
    candidate = directory / f"{stem}{suffix}"
    n = 2
    while candidate.exists() or candidate.with_suffix(".json").exists():
        candidate = directory / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


def track_metadata(request: TrackRequest, engine: Engine, audio: Audio, seconds: float) -> dict:
    """What a generated track's sidecar records: the request, the audio, the engine, timings."""
    return {
        **request.to_dict(),
        "sample_rate": audio.sample_rate,
        "channels": audio.channels,
        "frames": audio.frames,
        "generation_s": round(seconds, 3),
        "engine_info": getattr(engine, "describe", dict)(),
        "lofi_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_track(directory: Path, request: TrackRequest, audio: Audio, metadata: dict) -> Path:
    """Write new ``audio`` (16-bit WAV) and its sidecar under a free readable name; returns it.

    The WAV's name is created exclusively: another process saving the same name at the same
    moment gets the next free one. Both files or neither: a failed sidecar removes the WAV.
    """
    return write_new_pair(
        directory,
        track_stem(request),
        lambda path: write_wav(path, audio, subtype="PCM_16"),
        metadata,
    )


def write_new_pair(
    directory: Path, stem: str, write_audio: Callable[[Path], object], sidecar: dict
) -> Path:
    """A new WAV (``write_audio`` fills the temp path it is given) and its JSON ``sidecar``
    under the first free name ``stem[-N].wav`` in ``directory``; returns the WAV's path.

    Both files or neither: whatever fails (a full disk, Ctrl-C), what was made is removed.
    """
    written: list[Path] = []
    try:
        with atomic_new(lambda: unique_path(directory, stem, ".wav")) as written:
            write_audio(written[0])
        write_json_atomic(written[0].with_suffix(".json"), sidecar)
    except BaseException:
        # The name is ours (claimed exclusively, sidecar free): remove what was made of it,
        # also when Ctrl-C lands after the WAV was linked (written[0] is then its final name).
        if written:
            written[0].with_suffix(".json").unlink(missing_ok=True)
            written[0].unlink(missing_ok=True)
        raise
    return written[0]
