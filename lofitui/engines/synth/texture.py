"""Background texture: vinyl (crackle, pops, surface hiss) and rain (a wash of filtered noise
with droplets). The sparse sounds are placed in the time domain; the steady noise is white
noise here, shaped by :meth:`Texture.noise_kernel` in the mixer's one master convolution."""

from __future__ import annotations

import numpy as np

from lofitui.engines.synth.dsp import SR, bandpass_kernel, shaped_noise


class Texture:
    """Vinyl at ``vinyl`` and rain at ``rain`` (0 = off, 1 = the usual level)."""

    def __init__(self, rng: np.random.Generator, vinyl: float, rain: float) -> None:
        self.rng = rng
        self.vinyl = vinyl
        self.rain = rain
        self.click = bandpass_kernel(700.0, 9000.0, 63)
        t = np.arange(400) / SR
        self.drops = [shaped_noise(rng, 400, 1500.0, 7000.0) * np.exp(-t / 0.002) for _ in range(8)]
        self.swell_hz = float(rng.uniform(0.04, 0.09))
        self.position = 0
        self.carry = np.zeros((512, 2), dtype=np.float32)

    def noise_kernel(self) -> np.ndarray:
        """The steady noise's colour and level: hiss (vinyl) plus the rain's wash and body."""
        hiss = np.pad(bandpass_kernel(300.0, 5000.0, 127), 192) * 0.012 * self.vinyl
        wash = np.pad(bandpass_kernel(400.0, 6000.0, 255), 128) * 0.05 * self.rain
        body = bandpass_kernel(80.0, 900.0, 511) * 0.03 * self.rain
        return hiss + wash + body

    def noise(self, n: int) -> np.ndarray:
        """White noise for the steady part, swelling slowly when it rains."""
        t = (self.position + np.arange(n)) / SR
        white = self.rng.standard_normal((n, 2), dtype=np.float32)
        if self.rain > 0:
            white *= (0.75 + 0.25 * np.sin(2 * np.pi * self.swell_hz * t))[:, None]
        return white

    def sparse(self, n: int) -> np.ndarray:
        """Clicks, pops and droplets in the next ``n`` frames."""
        rng = self.rng
        out = np.zeros((n + 512, 2), dtype=np.float32)
        if self.vinyl > 0:
            count = int(rng.poisson(9.0 * n / SR))
            sizes = (rng.pareto(2.5, count) * 0.02 + 0.006) * rng.choice([-1.0, 1.0], count)
            for at, side, size in zip(
                rng.integers(0, n, count), rng.integers(0, 2, count), sizes, strict=True
            ):
                out[at : at + 63, side] += self.click * (size * self.vinyl * 12)
            for at in rng.integers(0, n, int(rng.poisson(0.25 * n / SR))):
                out[at : at + 40] += (np.hanning(40) * rng.uniform(0.02, 0.05) * self.vinyl)[
                    :, None
                ]
        if self.rain > 0:
            count = int(rng.poisson(40.0 * n / SR))
            for at, side, size, k in zip(
                rng.integers(0, n, count),
                rng.integers(0, 2, count),
                rng.exponential(0.03, count),
                rng.integers(0, len(self.drops), count),
                strict=True,
            ):
                out[at : at + 400, side] += self.drops[k] * (size * self.rain)
        self.position += n
        out[: len(self.carry)] += self.carry
        self.carry = out[n:].copy()
        return out[:n]
