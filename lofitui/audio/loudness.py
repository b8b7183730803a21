"""Loudness normalisation: every track at one integrated loudness (ITU-R BS.1770-4, measured by
pyloudnorm) under a true-peak ceiling (4x oversampled with soxr, then a look-ahead limiter).

- A complete track (:meth:`Loudness.normalise`) gets its exact gain: target minus its measured
  integrated loudness, then the limiter; when the limiter took loudness off the peaks, at most
  two more passes add it back.
- A track still being generated (:meth:`Loudness.stream`) gets a running estimate: the loudness
  of everything generated so far, measured again as the track grows by a quarter. The gain glides
  to the estimate (at :data:`RISE_DB_PER_S` up, :data:`FALL_DB_PER_S` down) and holds there, so
  it never steps, at a chunk's edge or anywhere; it settles as the measured part grows, and ends
  at the gain the whole track measures.

Before the gain, a 10 Hz high-pass takes out any DC offset (inaudible, but it spends the
headroom the ceiling leaves and clicks where a track starts). Off (``target_lufs`` None), tracks
keep the level their engine gave them; the high-pass and the limiter still keep them clean.

Mono is measured as it is heard, on both speakers (dual mono: +3 dB over a one-channel meter),
so a mono and a stereo track at the same target sound equally loud.

The work happens where the audio is made (the scheduler's worker, the renderer), never in the
audio callback.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lofitui.audio.interrupts import interrupts_held
from lofitui.audio.mixing import to_stereo
from lofitui.audio.resample import StreamResampler
from lofitui.audio.types import Audio

DEFAULT_TARGET_LUFS = -14.0  # streaming services' level; loud enough next to other players
MIN_TARGET_LUFS = -40.0
MAX_TARGET_LUFS = -5.0
CEILING_DBTP = -1.0  # true-peak ceiling: headroom for lossy encoders and DACs' reconstruction
# The limiter aims a little under the ceiling: its gain varies across the few frames the
# oversampling filter spans, which the per-frame peaks do not see.
CEILING_MARGIN_DB = 0.1
MAX_GAIN_DB = 30.0  # a nearly silent track is not raised to full level (hiss, noise floor)
MIN_GAIN_DB = -30.0
RISE_DB_PER_S = 3.0  # how fast a streamed track's gain may rise...
FALL_DB_PER_S = 6.0  # ...and fall (faster: a loud passage under too much gain is worse)
REMEASURE_GROWTH = 1.25  # a streamed track is measured again each time it grows by a quarter
OVERSAMPLING = 4  # BS.1770-4's true peak: 4x oversampling at 48 kHz
ATTACK_S = 0.005  # the limiter's look-ahead: its gain ramps down over this before a peak
RELEASE_DB_PER_S = 30.0  # and comes back at this rate after it
BLOCK_S = 0.4  # BS.1770's gating block
MIN_MEASURED_S = 0.01  # shorter than this, a piece is not measured (-inf: nothing to tell)
DC_CUTOFF_HZ = 10.0  # under the lowest note (41 Hz): -0.05 dB at 30 Hz for a 2nd-order filter


def integrated_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness of (frames, channels) float audio as heard (mono on both
    speakers); -inf for silence. Audio shorter than one 400 ms block is measured as one block
    of its length (in whole milliseconds: pyloudnorm wants at least a block's frames)."""
    samples = np.asarray(samples)
    block = min(BLOCK_S, math.floor(samples.shape[0] * 1000 / sample_rate) / 1000)
    if block < MIN_MEASURED_S:
        return float("-inf")
    if samples.shape[1] != 2:
        samples = to_stereo(samples)
    loudness = _meter(sample_rate, block).integrated_loudness(samples.astype(np.float64))
    return float(loudness) if math.isfinite(loudness) else float("-inf")


def warm_up() -> None:
    """Import the meter's and the filters' libraries now (~0.3-0.8 s), so that a player can do
    it on a spare thread while its first track is generated instead of on that track's way to
    the speakers. On the main thread Ctrl-C waits for the import to finish (see
    :mod:`lofitui.audio.interrupts`); every lazy use of the libraries comes through here."""
    with interrupts_held():
        import pyloudnorm  # noqa: F401
        import scipy.ndimage
        import scipy.signal  # noqa: F401


@functools.lru_cache(maxsize=8)
def _meter(sample_rate: int, block_s: float) -> Any:
    # Imported here: pyloudnorm loads scipy.signal (~0.5 s), which `lofi --help`, config
    # parsing and the player's start-up do not need.
    warm_up()
    import pyloudnorm

    return pyloudnorm.Meter(sample_rate, block_size=block_s)


def _db(gain: float | np.ndarray) -> Any:
    return 20.0 * np.log10(gain)


def _gain(db: float | np.ndarray) -> Any:
    return 10.0 ** (np.asarray(db) / 20.0)


@dataclass(frozen=True)
class Loudness:
    """The loudness every track is brought to: ``target_lufs`` integrated (None: the level the
    engine gave it) under a ``ceiling_dbtp`` true-peak ceiling."""

    target_lufs: float | None = DEFAULT_TARGET_LUFS
    ceiling_dbtp: float = CEILING_DBTP

    def __post_init__(self) -> None:
        target = self.target_lufs
        if target is not None and not MIN_TARGET_LUFS <= target <= MAX_TARGET_LUFS:
            raise ValueError(
                f"loudness target must be between {MIN_TARGET_LUFS:g} and {MAX_TARGET_LUFS:g} "
                f"LUFS (got {target:g})"
            )

    @property
    def enabled(self) -> bool:
        return self.target_lufs is not None

    def record(self, source_lufs: float, gain_db: float) -> dict[str, Any]:
        """What a track's sidecar says of its loudness (``loudness`` key)."""
        return {
            "target_lufs": self.target_lufs,
            "ceiling_dbtp": self.ceiling_dbtp,
            "source_lufs": round(source_lufs, 2) if math.isfinite(source_lufs) else None,
            "gain_db": round(gain_db, 2),
        }

    def applied_to(self, metadata: dict[str, Any]) -> bool:
        """Whether a stored track's ``metadata`` says it is at this loudness already (off:
        every track is taken as it is)."""
        if not self.enabled:
            return True
        record = metadata.get("loudness")
        return (
            isinstance(record, dict)
            and record.get("target_lufs") == self.target_lufs
            and record.get("ceiling_dbtp") == self.ceiling_dbtp
        )

    def normalise(self, audio: Audio) -> tuple[Audio, dict[str, Any]]:
        """``audio`` at the target with its exact gain, under the ceiling, and the sidecar
        record."""
        if audio.frames == 0:
            return audio, self.record(float("-inf"), 0.0)
        source = integrated_lufs(audio.samples, audio.sample_rate)
        target = self.target_lufs
        if target is None or not math.isfinite(source):
            return self._limited(audio, 0.0), self.record(source, 0.0)
        gain_db = float(np.clip(target - source, MIN_GAIN_DB, MAX_GAIN_DB))
        out = self._limited(audio, gain_db)
        for _ in range(2):  # the limiter lowered the loudness: make it up, and limit again
            short = target - integrated_lufs(out.samples, out.sample_rate)
            if short < 0.1 or gain_db >= MAX_GAIN_DB:
                break
            gain_db = min(gain_db + short, MAX_GAIN_DB)
            out = self._limited(audio, gain_db)
        return out, self.record(source, gain_db)

    def _limited(self, audio: Audio, gain_db: float) -> Audio:
        limiter = TruePeakLimiter(audio.sample_rate, audio.channels, self.ceiling_dbtp)
        centred = DcBlocker(audio.sample_rate, audio.channels).process(audio.samples)
        out = np.concatenate([limiter.push(centred * np.float32(_gain(gain_db))), limiter.flush()])
        return Audio(out, audio.sample_rate)

    def stream(
        self, sample_rate: int, channels: int, start_db: float | None = None
    ) -> LoudnessStream:
        """A normaliser for one track that arrives in chunks; ``start_db``: the gain to glide
        from (a track that continues another: the gain the other one ended on)."""
        return LoudnessStream(self, sample_rate, channels, start_db)


class LoudnessStream:
    """One streamed track normalised as it arrives: :meth:`push` each chunk as the engine
    yields it, then :meth:`flush` once. The joined output has the input's length; each push
    gives back all but the last ~10-20 ms it has had (the limiter's 5 ms look-ahead and its
    oversampler's filter), and the flush gives the rest.

    ``gains_db`` is the running gain at the end of each chunk pushed (before the limiter).
    """

    def __init__(
        self, loudness: Loudness, sample_rate: int, channels: int, start_db: float | None = None
    ) -> None:
        self.loudness = loudness
        self.sample_rate = sample_rate
        self.channels = channels
        self.gains_db: list[float] = []
        self._raw: list[np.ndarray] = []
        self._frames = 0
        self._measured = 0  # frames in the last measurement
        self._wanted_db: float | None = None  # the gain the last measurement asks for
        self._gain_db = start_db  # the gain reached (None: nothing audible yet)
        self._dc = DcBlocker(sample_rate, channels)
        self._limiter = TruePeakLimiter(sample_rate, channels, loudness.ceiling_dbtp)

    def push(self, chunk: Audio) -> Audio:
        """The normalised audio that is ready after ``chunk`` (possibly none)."""
        if chunk.sample_rate != self.sample_rate or chunk.channels != self.channels:
            raise ValueError(
                f"chunk at {chunk.sample_rate} Hz x {chunk.channels} does not continue a "
                f"{self.sample_rate} Hz x {self.channels} stream"
            )
        if chunk.frames == 0:
            return chunk
        if self.loudness.enabled:
            self._raw.append(chunk.samples)
            self._frames += chunk.frames
            if self._measured == 0 or self._frames >= self._measured * REMEASURE_GROWTH:
                self._measure()
        ramp = self._ramp(chunk.frames)
        centred = self._dc.process(chunk.samples)
        return Audio(self._limiter.push(centred * ramp[:, None]), self.sample_rate)

    def flush(self) -> Audio:
        """The rest of the track (the limiter's look-ahead): call once, after the last chunk."""
        return Audio(self._limiter.flush(), self.sample_rate)

    def _measure(self) -> None:
        target = self.loudness.target_lufs
        assert target is not None
        samples = np.concatenate(self._raw)
        self._raw = [samples]
        self._measured = self._frames
        measured = integrated_lufs(samples, self.sample_rate)
        if math.isfinite(measured):
            self._wanted_db = float(np.clip(target - measured, MIN_GAIN_DB, MAX_GAIN_DB))

    def _ramp(self, frames: int) -> np.ndarray:
        """Per-frame gains for the next ``frames``: from the gain reached towards the wanted
        one, linear in dB at the rise or fall rate, then held there."""
        wanted = self._wanted_db
        if wanted is None:  # off, or silence so far: nothing to measure, nothing to hear
            self.gains_db.append(0.0)
            return np.ones(frames, np.float32)
        start = wanted if self._gain_db is None else self._gain_db  # the first audible chunk
        elapsed = np.arange(1, frames + 1) / self.sample_rate
        gains = start + np.clip(wanted - start, -FALL_DB_PER_S * elapsed, RISE_DB_PER_S * elapsed)
        self._gain_db = float(gains[-1])
        self.gains_db.append(self._gain_db)
        return _gain(gains).astype(np.float32)


class DcBlocker:
    """A 2nd-order Butterworth high-pass at :data:`DC_CUTOFF_HZ` (scipy's design), its state
    carried from one :meth:`process` to the next: chunk by chunk equals all at once."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        warm_up()
        from scipy.signal import butter

        self._sos = butter(2, DC_CUTOFF_HZ, "highpass", fs=sample_rate, output="sos")
        self._state = np.zeros((len(self._sos), 2, channels))

    def process(self, samples: np.ndarray) -> np.ndarray:
        from scipy.signal import sosfilt

        out, self._state = sosfilt(self._sos, samples, axis=0, zi=self._state)
        return out.astype(np.float32)


class TruePeakLimiter:
    """A look-ahead limiter that keeps the 4x-oversampled peak under ``ceiling_dbtp``.

    Per frame, the gain that would put its oversampled peak (all channels) at the ceiling; the
    lowest of the next :data:`ATTACK_S` of those (hold), rising after a peak no faster than
    :data:`RELEASE_DB_PER_S`, then averaged over :data:`ATTACK_S`. Every frame in that average's
    window holds a gain at most the one this frame needs, so the output never exceeds the
    ceiling, and the gain ramps down over the look-ahead instead of jumping (no click).
    Streaming: :meth:`push` returns what is ready, :meth:`flush` the rest; the joined output
    has the input's length, whatever the chunking.
    """

    def __init__(self, sample_rate: int, channels: int, ceiling_dbtp: float) -> None:
        warm_up()  # scipy.ndimage, for _emit
        self.sample_rate = sample_rate
        self.channels = channels
        self._ceiling = float(_gain(ceiling_dbtp - CEILING_MARGIN_DB))
        self._look = max(1, round(ATTACK_S * sample_rate))
        self._release = RELEASE_DB_PER_S / sample_rate  # dB per frame
        self._oversampler = StreamResampler(sample_rate, OVERSAMPLING * sample_rate, channels)
        # The track is preceded by look - 1 silent frames, so the first real frames have a
        # full window of history; they are dropped from the output.
        lead = self._look - 1
        self._pending = np.zeros((lead, channels), np.float32)  # input not yet output
        self._needs = np.ones(lead)  # per pending frame: the gain its peak allows
        self._leftover = np.zeros((0, channels), np.float32)  # oversampled, < one frame's worth
        self._drop = lead
        self._held_db = 0.0  # the released gain (dB) of the last frame output
        self._history = np.ones(lead)  # the released gains of the last look - 1 frames

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The limited frames that are ready after ``samples`` (frames, channels)."""
        samples = np.asarray(samples, np.float32)
        self._pending = np.concatenate([self._pending, samples])
        self._peaks(self._oversampler.push(Audio(samples, self.sample_rate)).samples)
        # A frame is ready once the needs of the look-ahead after it are known.
        return self._emit(len(self._needs) - (self._look - 1))

    def flush(self) -> np.ndarray:
        """Every frame still held back; call once, after the last :meth:`push`."""
        self._peaks(self._oversampler.flush().samples)
        missing = len(self._pending) - len(self._needs)  # soxr gives back a frame short at most
        self._needs = np.concatenate([self._needs, np.ones(max(missing, 0))])[: len(self._pending)]
        ready = len(self._pending)
        self._pending = np.concatenate([self._pending, np.zeros((self._look - 1, self.channels))])
        self._needs = np.concatenate([self._needs, np.ones(self._look - 1)])
        return self._emit(ready)

    def _peaks(self, oversampled: np.ndarray) -> None:
        """Each whole frame's worth of oversampled samples → the gain that frame allows."""
        both = np.concatenate([self._leftover, oversampled.astype(np.float32)])
        whole = len(both) // OVERSAMPLING * OVERSAMPLING
        self._leftover = both[whole:]
        peaks = np.abs(both[:whole]).reshape(-1, OVERSAMPLING * self.channels).max(axis=1)
        needs = np.minimum(1.0, self._ceiling / np.maximum(peaks, 1e-12))
        self._needs = np.concatenate([self._needs, needs])

    def _emit(self, count: int) -> np.ndarray:
        from scipy.ndimage import minimum_filter1d  # scipy comes with pyloudnorm

        count = min(count, len(self._pending))
        if count <= 0:
            return np.zeros((0, self.channels), np.float32)
        look = self._look
        window = self._needs[: count + look - 1]
        # Hold: the lowest need of each frame and the look - 1 after it.
        held = minimum_filter1d(window, look, origin=-(look // 2))[:count] if look > 1 else window
        # Release: rise no faster than the rate (a running minimum of lines of that slope).
        ramp = self._release * np.arange(count)
        held_db = _db(np.maximum(held, 1e-12))
        released_db = np.minimum(
            np.minimum.accumulate(held_db - ramp) + ramp,
            self._held_db + self._release * np.arange(1, count + 1),
        )
        self._held_db = float(released_db[-1])
        released = _gain(released_db)
        # Smooth: the mean of each frame's look gains ending at it.
        series = np.concatenate([self._history, released])
        sums = np.cumsum(np.concatenate([[0.0], series]))
        gains = (sums[look:] - sums[:-look]) / look
        self._history = series[len(series) - (look - 1) :] if look > 1 else series[:0]
        out = self._pending[:count] * gains[:, None].astype(np.float32)
        self._pending = self._pending[count:]
        self._needs = self._needs[count:]
        if self._drop:
            dropped = min(self._drop, len(out))
            out = out[dropped:]
            self._drop -= dropped
        return np.ascontiguousarray(out, dtype=np.float32)


__all__ = [
    "CEILING_DBTP",
    "DEFAULT_TARGET_LUFS",
    "MAX_TARGET_LUFS",
    "MIN_TARGET_LUFS",
    "DcBlocker",
    "Loudness",
    "LoudnessStream",
    "TruePeakLimiter",
    "integrated_lufs",
]
