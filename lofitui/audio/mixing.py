"""Small pure functions on float32 sample blocks shaped (frames, channels).

Crossfades, fades, channel layout, gain ramps and levels. None of them keeps state; the player
composes them.
"""

from __future__ import annotations

import numpy as np


def to_stereo(samples: np.ndarray) -> np.ndarray:
    """Return ``samples`` as a C-contiguous float32 (frames, 2) array.

    Mono is copied to both channels; stereo passes through (copied only when needed); more than
    two channels are mixed down to mono first and then spread to both channels.
    """
    if samples.ndim != 2:
        raise ValueError(f"samples must be (frames, channels), got shape {samples.shape}")
    channels = samples.shape[1]
    if channels == 2:
        return np.ascontiguousarray(samples, dtype=np.float32)
    if channels == 1:
        mono = samples[:, 0]
    elif channels > 2:
        mono = samples.mean(axis=1)
    else:
        raise ValueError("samples have no channels")
    return np.ascontiguousarray(np.repeat(mono[:, None], 2, axis=1), dtype=np.float32)


def equal_power_curves(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in gains for an equal-power crossfade of ``frames`` frames.

    ``out = cos(θ)``, ``in = sin(θ)`` with θ going from 0 to π/2, so ``out² + in² = 1``: the
    summed power of two uncorrelated signals stays constant through the blend.
    """
    if frames <= 0:
        empty = np.zeros(0, np.float32)
        return empty, empty
    theta = (np.arange(frames, dtype=np.float64) + 0.5) / frames * (np.pi / 2)
    return np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)


def crossfade(tail: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Equal-power blend of the end of one track (``tail``) into the start of the next.

    Both blocks must have the same shape; the result has that shape too.
    """
    if tail.shape != head.shape:
        raise ValueError(f"crossfade needs equal shapes, got {tail.shape} and {head.shape}")
    fade_out, fade_in = equal_power_curves(tail.shape[0])
    return (tail * fade_out[:, None] + head * fade_in[:, None]).astype(np.float32, copy=False)


def fade(frames: int, start: float, end: float, shape: str = "cosine") -> np.ndarray:
    """Gains going from ``start`` to ``end`` over ``frames`` frames (float32, shape (frames,)).

    ``shape`` is ``"linear"`` or ``"cosine"`` (a raised-cosine S-curve: zero slope at both ends,
    the gentlest short fade for pause/resume). The last gain is exactly ``end``.
    """
    if frames <= 0:
        return np.zeros(0, np.float32)
    t = np.arange(1, frames + 1, dtype=np.float64) / frames
    if shape == "cosine":
        t = 0.5 - 0.5 * np.cos(np.pi * t)
    elif shape != "linear":
        raise ValueError(f"unknown fade shape {shape!r} (linear or cosine)")
    return (start + (end - start) * t).astype(np.float32)


def levels(samples: np.ndarray) -> tuple[float, float]:
    """Peak and RMS (linear, 0..1 for full scale) of a block, over all channels."""
    if samples.size == 0:
        return 0.0, 0.0
    peak = float(np.max(np.abs(samples)))
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return peak, rms


def db(value: float, floor: float = -120.0) -> float:
    """``value`` (a linear amplitude) in dBFS, never below ``floor``."""
    if value <= 0.0:
        return floor
    return max(floor, 20.0 * float(np.log10(value)))
