"""The signal blocks the synthesiser is built from: FIR design, stateful block convolution
(filters and reverb), a modulated delay (tape wow and flutter), shaped noise, a soft clipper.

Everything works on whole blocks with numpy; the stateful pieces carry their tails from one
block to the next, so a track rendered bar by bar equals the same track rendered at once.
"""

from __future__ import annotations

import numpy as np

SR = 48_000


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def sine(cycles: np.ndarray) -> np.ndarray:
    """sin(2*pi*cycles) in float32 (the phase wrapped in float64 first, so no precision is
    lost over long notes; float32 sin is many times faster)."""
    return np.sin((cycles % 1.0).astype(np.float32) * np.float32(2 * np.pi))


def lowpass_kernel(cutoff_hz: float, taps: int = 255, sr: int = SR) -> np.ndarray:
    """A linear-phase windowed-sinc low-pass (Blackman window), unity gain at DC."""
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2.0 * cutoff_hz / sr * n) * np.blackman(taps)
    return (h / h.sum()).astype(np.float64)


def bandpass_kernel(lo_hz: float, hi_hz: float, taps: int = 255, sr: int = SR) -> np.ndarray:
    """Low-pass at ``hi_hz`` minus low-pass at ``lo_hz``."""
    return lowpass_kernel(hi_hz, taps, sr) - lowpass_kernel(lo_hz, taps, sr)


def band(freqs: np.ndarray, lo_hz: float, hi_hz: float, slope: float = 4.0) -> np.ndarray:
    """A smooth band-pass magnitude (Butterworth-like skirts of order ``slope``)."""
    f = np.maximum(freqs, 1e-3)
    high = 1.0 / np.sqrt(1.0 + (lo_hz / f) ** (2 * slope))
    low = 1.0 / np.sqrt(1.0 + (f / hi_hz) ** (2 * slope))
    return high * low


def shaped_noise(
    rng: np.random.Generator, n: int, lo_hz: float, hi_hz: float, slope: float = 4.0
) -> np.ndarray:
    """``n`` samples of noise band-limited to ``lo_hz``..``hi_hz``, unit RMS."""
    size = max(n, 64)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    spectrum *= band(np.fft.rfftfreq(size, 1.0 / SR), lo_hz, hi_hz, slope)
    out = np.fft.irfft(spectrum, size)[:n]
    rms = float(np.sqrt(np.mean(out**2))) or 1.0
    return out / rms


def _fft_size(n: int) -> int:
    return 1 << int(np.ceil(np.log2(max(n, 2))))


class Convolver:
    """Stateful FFT convolution of (frames, 2) blocks: each input block with its own kernel,
    the results summed (one inverse transform for all).

    Kernels are (taps,) for both channels or (taps, 2) for one each. The tail of each block's
    convolution is added to the start of the next, so block boundaries leave no trace.
    """

    def __init__(self, *kernels: np.ndarray) -> None:
        taps = max(len(k) for k in kernels)
        self.kernels = []
        for k in kernels:
            k2 = np.asarray(k, dtype=np.float32)
            k2 = np.repeat(k2[:, None], 2, axis=1) if k2.ndim == 1 else k2
            self.kernels.append(np.pad(k2, ((0, taps - len(k2)), (0, 0))))
        self.tail = np.zeros((taps - 1, 2), dtype=np.float32)
        self._spectra: dict[int, list[np.ndarray]] = {}

    def _spectrum(self, size: int) -> list[np.ndarray]:
        if size not in self._spectra:
            self._spectra[size] = [np.fft.rfft(k, size, axis=0) for k in self.kernels]
        return self._spectra[size]

    def process(self, *blocks: np.ndarray) -> np.ndarray:
        n = len(blocks[0])
        taps = len(self.tail) + 1
        size = _fft_size(n + taps - 1)
        spectra = self._spectrum(size)
        acc = np.fft.rfft(blocks[0].astype(np.float32), size, axis=0) * spectra[0]
        for block, spectrum in zip(blocks[1:], spectra[1:], strict=True):
            acc += np.fft.rfft(block.astype(np.float32), size, axis=0) * spectrum
        full = np.fft.irfft(acc, size, axis=0)[: n + taps - 1]
        keep = min(n, len(self.tail))
        full[:keep] += self.tail[:keep]
        rest = self.tail[keep:]
        tail = full[n:].copy()
        tail[: len(rest)] += rest
        self.tail = tail
        return full[:n]


class WowFlutter:
    """Tape speed drift: a delay that wanders slowly (wow, ~0.5 Hz) and quickly (flutter,
    ~6 Hz), read with linear interpolation; ``depth`` 1 is a gentle ~0.15 % pitch drift."""

    BASE_S = 0.004

    def __init__(self, rng: np.random.Generator, depth: float, channels: int = 2) -> None:
        self.depth = depth
        self.wow_hz = float(rng.uniform(0.35, 0.7))
        self.flutter_hz = float(rng.uniform(5.0, 7.5))
        self.phases = rng.uniform(0, 2 * np.pi, 3)
        self.history = np.zeros((int(self.BASE_S * SR) * 2 + 4, channels), dtype=np.float32)
        self.position = 0  # absolute frame index of the next block

    def process(self, block: np.ndarray) -> np.ndarray:
        n = len(block)
        if self.depth <= 0:
            return block
        t = (self.position + np.arange(n)) / SR
        # Pitch deviation = d'(t): wow amplitude a gives 2*pi*f*a.
        wow = 0.0015 / (2 * np.pi * self.wow_hz) * self.depth
        flutter = 0.0003 / (2 * np.pi * self.flutter_hz) * self.depth
        drift = 0.4 * wow * np.sin(2 * np.pi * 0.11 * t + self.phases[2])
        delay = (
            self.BASE_S
            + wow * np.sin(2 * np.pi * self.wow_hz * t + self.phases[0])
            + flutter * np.sin(2 * np.pi * self.flutter_hz * t + self.phases[1])
            + drift
        ) * SR
        buf = np.concatenate([self.history, block.astype(np.float32)])
        read = np.arange(n) + len(self.history) - delay
        grid = np.arange(len(buf))
        out = np.stack([np.interp(read, grid, buf[:, ch]) for ch in range(2)], axis=1)
        self.history = buf[-len(self.history) :]
        self.position += n
        return out


def soft_clip(x: np.ndarray, threshold: float = 0.85, ceiling: float = 0.985) -> np.ndarray:
    """Unchanged below ``threshold``; above, a tanh knee that never reaches ``ceiling``."""
    mag = np.abs(x)
    over = mag > threshold
    if not over.any():
        return x
    room = ceiling - threshold
    out = x.copy()
    out[over] = np.sign(x[over]) * (threshold + room * np.tanh((mag[over] - threshold) / room))
    return out


def reverb_ir(rng: np.random.Generator, seconds: float, damping_hz: float) -> np.ndarray:
    """A stereo room: decorrelated decaying noise, darker as it decays, after a short
    pre-delay. Unit energy per channel."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    pre = int(0.015 * SR)
    ir = np.zeros((n + pre, 2))
    for ch in range(2):
        bright = shaped_noise(rng, n, 150.0, damping_hz, 2.0)
        dark = shaped_noise(rng, n, 150.0, damping_hz / 4, 2.0)
        fade = np.clip(t / seconds * 2.5, 0.0, 1.0)
        tail = (bright * (1 - fade) + dark * fade) * np.exp(-6.9 * t / seconds)
        ir[pre:, ch] = tail / np.sqrt(np.sum(tail**2))
    return ir
