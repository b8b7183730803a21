"""Integrated loudness after ITU-R BS.1770-4 (K-weighting, 400 ms blocks, absolute and relative
gates), in LUFS. The K-weighting filters are applied by their magnitude response in the
frequency domain (power is what is measured), so numpy alone suffices."""

from __future__ import annotations

import numpy as np

# The two K-weighting biquads at 48 kHz: a high shelf (head) and a high-pass (RLB).
_SHELF = (
    (1.53512485958697, -2.69169618940638, 1.19839281085285),
    (-1.69065929318241, 0.73248077421585),
)
_RLB = ((1.0, -2.0, 1.0), (-1.99004745483398, 0.99007225036621))


def _power_response(n: int) -> np.ndarray:
    z = np.exp(-1j * np.pi * np.arange(n // 2 + 1) / (n / 2))
    out = np.ones(len(z))
    for (b0, b1, b2), (a1, a2) in (_SHELF, _RLB):
        h = (b0 + b1 * z + b2 * z * z) / (1 + a1 * z + a2 * z * z)
        out *= np.abs(h) ** 2
    return out


def k_weighted(samples: np.ndarray) -> np.ndarray:
    """``samples`` (frames, channels) at 48 kHz through the K-weighting magnitude."""
    n = len(samples)
    spectrum = np.fft.rfft(samples, n, axis=0) * np.sqrt(_power_response(n))[:, None]
    return np.fft.irfft(spectrum, n, axis=0)


def integrated_lufs(samples: np.ndarray, sample_rate: int = 48_000) -> float:
    """Integrated loudness of (frames, channels) float audio at 48 kHz; -inf for silence."""
    if sample_rate != 48_000:
        raise ValueError("loudness is measured at 48 kHz")
    x = k_weighted(np.asarray(samples, dtype=np.float64))
    block, hop = int(0.4 * sample_rate), int(0.1 * sample_rate)
    if len(x) < block:
        return float("-inf")
    starts = np.arange(0, len(x) - block + 1, hop)
    power = np.cumsum(np.concatenate([np.zeros((1, x.shape[1])), x**2]), axis=0)
    z = ((power[starts + block] - power[starts]) / block).sum(axis=1)
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10 * np.log10(z)
    gated = z[loud > -70.0]
    if not len(gated):
        return float("-inf")
    relative = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    kept = z[(loud > -70.0) & (loud > relative)]
    return float(-0.691 + 10 * np.log10(kept.mean()))
