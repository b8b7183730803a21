"""Spectrum analysis for the visualiser: FFT bands on a log-frequency axis, with falling peaks.

:class:`SpectrumBands` turns the latest samples into one level per band, the bands spaced evenly
in log frequency from ``F_MIN`` to ``F_MAX``. Two windows share the work: the bands below
``SPLIT_HZ`` come from a long FFT (``LONG_FFT``: 5.9 Hz bins at 48 kHz, 170 ms), the rest from a
short one (``SHORT_FFT``: 23 Hz bins, 43 ms, so the highs follow the beat); with the short one
alone 30 Hz would be a bin and a quarter from DC, and bass notes would land bands away.

Each band is the loudest point of the log-magnitude spectrum inside it, read between bins by
linear interpolation (never above the bins around it), and then each local maximum of the
spectrum is placed where a parabola through its three bins puts the peak: a sine lights the
band its frequency is in, even where bands are narrower than a bin. :class:`FallingBars` gives
the levels their motion: bars jump up and fall back smoothly, peak markers hold, then fall
faster and faster.

Pure numpy, no clock and no UI: the caller passes the time step. A frame costs two real FFTs
and a few vector operations (``tests/bench/bench_spectrum.py``).
"""

from __future__ import annotations

import numpy as np

SHORT_FFT = 2048  # 43 ms at 48 kHz: bins 23 Hz apart
LONG_FFT = 8192  # 170 ms: bins 5.9 Hz apart, for the bass
SPLIT_HZ = 200.0  # bands wholly below this come from the long FFT
F_MIN = 30.0
F_MAX = 16000.0
POINTS_PER_BIN = 3  # interpolation points per FFT bin inside wide bands
FLOOR_DB = -72.0  # shown as an empty bar
CEILING_DB = -12.0  # shown as a full bar (after the tilt)
TILT_DB_PER_OCTAVE = 3.0  # music falls off toward the highs; lift them around 1 kHz
TILT_PIVOT_HZ = 1000.0
BAR_FALL_PER_S = 1.8  # a full bar falls back to nothing in about half a second
PEAK_HOLD_S = 0.35  # a peak marker stays this long...
PEAK_GRAVITY = 3.0  # ...then falls with this acceleration (full heights per second²)
SILENT_DB = -200.0  # what silence reads


class _Resolution:
    """One FFT size serving the bands whose edges (in Hz) are ``edges``."""

    def __init__(self, fft_size: int, samplerate: int, edges: np.ndarray) -> None:
        self.fft_size = fft_size
        self.window = np.hanning(fft_size)
        self.power_scale = (2.0 / self.window.sum()) ** 2  # a full-scale sine's peak reads 1.0
        bin_hz = samplerate / fft_size
        self.edge_bins = edges / bin_hz
        lo, hi = self.edge_bins[:-1], self.edge_bins[1:]
        # Where to read each band: m points evenly in log frequency, at most 1/3 bin apart.
        per_band = np.maximum(1, np.ceil((hi - lo) * POINTS_PER_BIN)).astype(np.intp)
        owner = np.repeat(np.arange(lo.size), per_band)
        self.starts = np.concatenate([[0], np.cumsum(per_band)[:-1]])
        step = (np.arange(owner.size) - self.starts[owner] + 0.5) / per_band[owner]
        positions = lo[owner] * (hi[owner] / lo[owner]) ** step
        self.k = np.minimum(positions.astype(np.intp), fft_size // 2 - 1)
        self.d = positions - self.k
        # Local maxima are looked for in the bins that can reach these bands.
        self.first = max(1, int(lo[0]) - 1)
        self.last = min(fft_size // 2 - 1, int(np.ceil(hi[-1])) + 1)

    def decibels(self, x: np.ndarray) -> np.ndarray:
        """Band levels in dBFS from the last ``fft_size`` samples of mono ``x``."""
        n = self.fft_size
        x = x[-n:]
        if x.shape[0] < n:
            x = np.concatenate([np.zeros(n - x.shape[0], x.dtype), x])
        spectrum = np.fft.rfft(x * self.window)
        power = spectrum.real**2 + spectrum.imag**2
        y = 10.0 * np.log10(power * self.power_scale + 1e-30)
        k = self.k
        bands = np.maximum.reduceat(y[k] + self.d * (y[k + 1] - y[k]), self.starts)
        # Each local maximum, placed where its parabola peaks.
        a = y[self.first - 1 : self.last - 1]
        b = y[self.first : self.last]
        c = y[self.first + 1 : self.last + 1]
        top = np.flatnonzero((b >= a) & (b > c))
        if top.size:
            a, b, c = a[top], b[top], c[top]
            offset = 0.5 * (a - c) / (a - 2.0 * b + c)
            where = np.searchsorted(self.edge_bins, top + self.first + offset, side="right") - 1
            inside = (where >= 0) & (where < bands.size)
            np.maximum.at(bands, where[inside], (b - 0.25 * (a - c) * offset)[inside])
        return bands


class SpectrumBands:
    """``count`` bands from ``f_min`` to ``f_max`` (capped below Nyquist) at ``samplerate``.

    :meth:`decibels` gives each band's level in dBFS (a full-scale sine reads 0 dB);
    :meth:`levels` maps that, tilted, onto 0..1 for display. Either wants the last
    :attr:`window` frames (fewer are padded with silence in front).
    """

    def __init__(
        self, count: int, samplerate: int, *, f_min: float = F_MIN, f_max: float = F_MAX
    ) -> None:
        if count < 1:
            raise ValueError("a spectrum needs at least one band")
        self.count = count
        self.samplerate = samplerate
        self.edges = np.geomspace(f_min, min(f_max, 0.45 * samplerate), count + 1)
        self.centers = np.sqrt(self.edges[:-1] * self.edges[1:])
        split = int(np.searchsorted(self.edges[1:], SPLIT_HZ, side="right"))
        self._parts = [
            (part, _Resolution(size, samplerate, self.edges[part.start : part.stop + 1]))
            for part, size in ((slice(0, split), LONG_FFT), (slice(split, count), SHORT_FFT))
            if part.stop > part.start
        ]
        self.window = max(r.fft_size for _, r in self._parts)
        self._tilt = TILT_DB_PER_OCTAVE * np.log2(self.centers / TILT_PIVOT_HZ)

    def band_of(self, freq: float) -> int:
        """The band that holds ``freq`` (clamped to the first and last)."""
        return int(np.clip(np.searchsorted(self.edges, freq, side="right") - 1, 0, self.count - 1))

    def decibels(self, samples: np.ndarray) -> np.ndarray:
        """Each band's level in dBFS; ``samples`` is (frames,) or (frames, channels), channels
        averaged. Silence reads ``SILENT_DB``."""
        x = samples if samples.ndim == 1 else samples.mean(axis=1)
        x = x[-self.window :]
        if not x.any():
            return np.full(self.count, SILENT_DB)
        out = np.empty(self.count)
        for part, resolution in self._parts:
            out[part] = resolution.decibels(x)
        return out

    def levels(self, samples: np.ndarray) -> np.ndarray:
        """Each band's height, 0..1: ``FLOOR_DB`` to ``CEILING_DB``, highs lifted by the tilt."""
        db = self.decibels(samples) + self._tilt
        return np.clip((db - FLOOR_DB) / (CEILING_DB - FLOOR_DB), 0.0, 1.0)


class FallingBars:
    """Bars and peak markers for ``count`` bands, moved by :meth:`update` once per frame."""

    def __init__(self, count: int) -> None:
        self.bars = np.zeros(count)
        self.peaks = np.zeros(count)
        self._hold = np.zeros(count)
        self._speed = np.zeros(count)

    def update(self, levels: np.ndarray, dt: float) -> None:
        """Advance ``dt`` seconds toward ``levels`` (0..1): a bar rises at once and falls at
        ``BAR_FALL_PER_S``; a peak marker rises with its bar, holds ``PEAK_HOLD_S``, then falls
        at ``PEAK_GRAVITY``, never below its bar."""
        bars = np.maximum(levels, self.bars - BAR_FALL_PER_S * dt)
        np.maximum(bars, 0.0, out=bars)
        rising = bars > self.peaks
        self._hold = np.where(rising, PEAK_HOLD_S, np.maximum(self._hold - dt, 0.0))
        falling = ~rising & (self._hold <= 0.0)
        self._speed = np.where(falling, self._speed + PEAK_GRAVITY * dt, 0.0)
        peaks = np.where(falling, self.peaks - self._speed * dt, self.peaks)
        self.peaks = np.maximum(peaks, bars)
        self._speed[self.peaks <= bars] = 0.0  # resting on its bar: fall afresh once let go
        self.bars = bars

    @property
    def at_rest(self) -> bool:
        """Every bar and marker is down (peaks are never below bars)."""
        return not self.peaks.any()
