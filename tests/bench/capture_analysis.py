"""What a capture of the sound server says: first audible sample, silent gaps, their positions.

Pure numpy, no sound server: the benchmarks (bench_first_sound.py, bench_gaps.py) run these on
what they recorded from the null sink's monitor, and tests/test_bench_analysis.py checks them on
synthetic signals. Levels are dBFS of full scale 1.0; a window's level is the RMS over all its
samples and channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AUDIBLE_DBFS = -60.0  # a sample (first sound) or a window's RMS (gaps) above this is audible
GAP_WINDOW_S = 0.1


def amplitude(dbfs: float) -> float:
    """The linear amplitude of a dBFS level."""
    return float(10.0 ** (dbfs / 20.0))


def level_dbfs(x: np.ndarray) -> float:
    """RMS level of ``x`` (any shape) in dBFS; -inf for digital silence or no samples."""
    if x.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def first_audible(x: np.ndarray, threshold_dbfs: float = AUDIBLE_DBFS) -> int | None:
    """Index of the first frame of ``x`` ((frames,) or (frames, channels)) whose magnitude on
    any channel exceeds ``threshold_dbfs``; None if none does."""
    frames = np.abs(x) if x.ndim == 1 else np.abs(x).max(axis=1)
    loud = np.flatnonzero(frames > amplitude(threshold_dbfs))
    return int(loud[0]) if loud.size else None


def window_levels(x: np.ndarray, rate: int, window_s: float = GAP_WINDOW_S) -> np.ndarray:
    """RMS level (dBFS) of each whole ``window_s`` window of ``x``; a partial tail is dropped."""
    window = max(1, round(window_s * rate))
    count = x.shape[0] // window
    blocks = x[: count * window].reshape(count, window, -1).astype(np.float64)
    rms = np.sqrt(np.mean(np.square(blocks), axis=(1, 2)))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(rms)


@dataclass(frozen=True)
class Gap:
    """A run of consecutive silent windows, in seconds from the capture's start."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def find_gaps(
    x: np.ndarray,
    rate: int,
    *,
    window_s: float = GAP_WINDOW_S,
    threshold_dbfs: float = AUDIBLE_DBFS,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> list[Gap]:
    """The silent gaps of ``x``: runs of ``window_s`` windows whose RMS is below
    ``threshold_dbfs``, counting only windows that lie wholly inside [start_s, end_s)."""
    levels = window_levels(x, rate, window_s)
    window = max(1, round(window_s * rate))
    starts = np.arange(levels.size) * window / rate
    ends = starts + window / rate
    inside = starts >= start_s - 1e-9
    if end_s is not None:
        inside &= ends <= end_s + 1e-9
    silent = (levels < threshold_dbfs) & inside
    gaps: list[Gap] = []
    run_start: int | None = None
    for i, quiet in enumerate([*silent.tolist(), False]):
        if quiet and run_start is None:
            run_start = i
        elif not quiet and run_start is not None:
            gaps.append(Gap(float(starts[run_start]), float(ends[i - 1])))
            run_start = None
    return gaps


def nearest(t: float, marks: Sequence[float]) -> tuple[float, float] | None:
    """The mark nearest to ``t`` and ``t - mark`` (negative: before it); None without marks."""
    if not marks:
        return None
    mark = min(marks, key=lambda m: abs(t - m))
    return mark, t - mark


def predicted_gap_s(duration_s: float, rate: float) -> float:
    """The steady-state silence between tracks that one generator of ``rate`` (seconds of audio
    per second of wall time) must leave: each track takes duration/rate to generate and plays
    for its duration, so the next one is late by the difference (zero at or above real time)."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0 (got {rate})")
    return max(0.0, duration_s / rate - duration_s)
