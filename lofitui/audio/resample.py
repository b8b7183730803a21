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


class StreamResampler:
    """Resample a track that arrives in chunks: the joined output equals :func:`resample` of the
    joined input (soxr's streaming form; it holds back a few ms of filter delay until
    :meth:`flush`)."""

    def __init__(self, from_rate: int, to_rate: int, channels: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.channels = channels
        self._stream = (
            None
            if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32", quality=QUALITY)
        )

    def push(self, audio: Audio) -> Audio:
        """The output for one more chunk (at ``from_rate``, ``channels`` channels)."""
        if audio.sample_rate != self.from_rate or audio.channels != self.channels:
            raise ValueError(
                f"chunk at {audio.sample_rate} Hz x {audio.channels} does not continue a "
                f"{self.from_rate} Hz x {self.channels} stream"
            )
        return self._convert(np.ascontiguousarray(audio.samples, dtype=np.float32), last=False)

    def flush(self) -> Audio:
        """The output still held back: call once, after the last chunk."""
        return self._convert(np.zeros((0, self.channels), np.float32), last=True)

    def _convert(self, samples: np.ndarray, last: bool) -> Audio:
        if self._stream is None:
            return Audio(samples, self.to_rate)
        out = self._stream.resample_chunk(samples, last=last)
        out = np.ascontiguousarray(out, dtype=np.float32).reshape(-1, self.channels)
        return Audio(out, self.to_rate)
