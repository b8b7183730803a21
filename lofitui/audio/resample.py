"""Sample-rate conversion with soxr (high quality)."""

from __future__ import annotations

import numpy as np
import soxr

from lofitui.audio.types import Audio

QUALITY = "HQ"  # soxr's high quality: linear phase, ~-144 dB stopband, no audible artefacts


def resample(audio: Audio, sample_rate: int) -> Audio:
    """Return ``audio`` at ``sample_rate`` Hz (the same object when the rate already matches).

    Works on whole tracks: soxr sees the complete signal, so there are no block-edge artefacts
    and the output length is ``round(frames * sample_rate / audio.sample_rate)``.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if audio.sample_rate == sample_rate:
        return audio
    if audio.frames == 0:
        return Audio(np.zeros((0, audio.channels), np.float32), sample_rate)
    out = soxr.resample(audio.samples, audio.sample_rate, sample_rate, quality=QUALITY)
    out = np.ascontiguousarray(out, dtype=np.float32).reshape(-1, audio.channels)
    return Audio(out, sample_rate)
