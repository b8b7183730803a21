"""Flow-matching sampling in numpy: timestep schedules, ODE/SDE samplers, guidance (CFG, APG).

Conventions follow ACE-Step 1.5 in diffusers: time runs from t = 1 (pure noise) to t = 0 (data);
the model predicts a velocity v with x_t = (1 - t) * x_0 + t * noise, so x_0 = x_t - t * v.
Everything is float32 except APG's projection, which diffusers computes in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from lofitui.errors import UsageError

Velocity = Callable[[np.ndarray, float], np.ndarray]

SCHEDULERS = ("euler", "heun", "pingpong")
GUIDANCE_MODES = ("apg", "cfg")

# The turbo checkpoints were distilled on fixed 8-step tables for shift 1, 2 and 3 (the terminal
# 0 is appended by the sampler). :func:`shifted_schedule` reproduces them; the tests hold it to it.
TURBO_TABLES: dict[float, tuple[float, ...]] = {
    1.0: (1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8),
    2.0: (1.0, 14 / 15, 6 / 7, 10 / 13, 2 / 3, 6 / 11, 2 / 5, 2 / 9),
    3.0: (1.0, 21 / 22, 9 / 10, 5 / 6, 3 / 4, 9 / 14, 1 / 2, 3 / 10),
}

# APG as ACE-Step base/SFT use it (diffusers' `normalized_guidance` with these arguments).
APG_MOMENTUM = -0.75
APG_NORM_THRESHOLD = 2.5
APG_ETA = 0.0


def shifted_schedule(steps: int, shift: float = 3.0) -> np.ndarray:
    """Timesteps t_0 = 1 > ... > t_{N-1} followed by a terminal 0: N + 1 float32 values.

    ``s = linspace(1, 0, N + 1)`` then ``t = shift * s / (1 + (shift - 1) * s)``, in float32 like
    diffusers (which then appends the 0 that the last Euler step lands on).
    """
    if steps < 1:
        raise UsageError(f"steps must be at least 1, got {steps}")
    if not shift > 0:
        raise UsageError(f"shift must be > 0, got {shift}")
    s = np.linspace(1.0, 0.0, steps + 1).astype(np.float32)
    if shift != 1.0:
        shift32 = np.float32(shift)
        s = shift32 * s / (np.float32(1.0) + (shift32 - np.float32(1.0)) * s)
    t = s.astype(np.float32)
    t[-1] = 0.0
    return t


def evaluations(scheduler: str, steps: int) -> int:
    """How many velocity evaluations a sampler makes for ``steps`` steps (for progress totals)."""
    check_scheduler(scheduler)
    return 2 * steps - 1 if scheduler == "heun" and steps > 1 else steps


def check_scheduler(name: str) -> str:
    if name not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")
    return name


def sample(
    x: np.ndarray,
    schedule: np.ndarray,
    velocity: Velocity,
    scheduler: str = "euler",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Integrate from t = schedule[0] to schedule[-1] (= 0) starting at noise ``x``.

    - ``euler``: x += (t_next - t) * v(x, t): one evaluation per step (what diffusers does).
    - ``heun``: Euler predictor, then the trapezoid of v(x, t) and v(x_pred, t_next); the last
      step (t_next = 0) stays Euler: 2N - 1 evaluations.
    - ``pingpong``: stochastic: jump to the clean estimate x0 = x - t * v, then re-noise to t_next
      with fresh Gaussian noise from ``rng`` (ACE-Step's PingPong sampler).
    """
    check_scheduler(scheduler)
    x = np.asarray(x, dtype=np.float32)
    if scheduler == "pingpong" and rng is None:
        raise ValueError("the pingpong sampler needs a random generator")
    for t, t_next in pairwise(schedule):
        t, t_next = np.float32(t), np.float32(t_next)
        dt = np.float32(t_next - t)
        v = velocity(x, float(t))
        if scheduler == "euler":
            x = (x + dt * v).astype(np.float32)
        elif scheduler == "heun":
            predicted = (x + dt * v).astype(np.float32)
            if t_next == 0:
                x = predicted
            else:
                v_next = velocity(predicted, float(t_next))
                x = (x + dt * (np.float32(0.5) * (v + v_next))).astype(np.float32)
        else:
            x0 = x - t * v
            noise = rng.standard_normal(x.shape, dtype=np.float32)
            x = ((np.float32(1.0) - t_next) * x0 + t_next * noise).astype(np.float32)
    return x


@dataclass
class Guidance:
    """Combine conditional and unconditional velocities; holds APG's momentum across steps.

    ``scale`` is the user-facing guidance scale (1 = off). ``mode`` "apg": diffusers'
    ``normalized_guidance(cond, uncond, scale - 1, MomentumBuffer(-0.75), eta=0,
    norm_threshold=2.5, use_original_formulation=True, norm_dim=(1,))``; "cfg": plain
    classifier-free guidance ``uncond + scale * (cond - uncond)``. Guidance applies only where
    ``interval[0] <= 1 - t <= interval[1]``.
    """

    scale: float = 7.0
    mode: str = "apg"
    interval: tuple[float, float] = (0.0, 1.0)
    momentum: float = APG_MOMENTUM
    norm_threshold: float = APG_NORM_THRESHOLD
    eta: float = APG_ETA
    _running: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in GUIDANCE_MODES:
            raise UsageError(
                f"unknown guidance mode {self.mode!r}: choose one of {', '.join(GUIDANCE_MODES)}"
            )
        if self.scale < 0:
            raise UsageError(f"guidance must be >= 0, got {self.scale}")
        start, end = self.interval
        if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0 and start <= end):
            raise UsageError(
                f"guidance interval must satisfy 0 <= start <= end <= 1, got {start}, {end}"
            )

    @property
    def enabled(self) -> bool:
        return self.scale > 1.0

    def applies(self, t: float) -> bool:
        ratio = 1.0 - t
        return self.enabled and self.interval[0] <= ratio <= self.interval[1]

    def combine(self, cond: np.ndarray, uncond: np.ndarray) -> np.ndarray:
        if self.mode == "cfg":
            return (uncond + np.float32(self.scale) * (cond - uncond)).astype(np.float32)
        return self._apg(cond, uncond)

    def _apg(self, cond: np.ndarray, uncond: np.ndarray) -> np.ndarray:
        diff = (cond - uncond).astype(np.float32)
        if self._running is None:
            self._running = diff
        else:
            self._running = (diff + np.float32(self.momentum) * self._running).astype(np.float32)
        diff = self._running
        if self.norm_threshold > 0:
            norm = np.sqrt(np.sum(diff * diff, axis=1, keepdims=True, dtype=np.float32))
            with np.errstate(divide="ignore"):
                factor = np.minimum(np.float32(1.0), np.float32(self.norm_threshold) / norm)
            diff = (diff * factor).astype(np.float32)
        v0 = diff.astype(np.float64)
        v1 = cond.astype(np.float64)
        v1 = v1 / np.maximum(np.sqrt(np.sum(v1 * v1, axis=1, keepdims=True)), 1e-12)
        parallel = np.sum(v0 * v1, axis=1, keepdims=True) * v1
        orthogonal = (v0 - parallel).astype(np.float32)
        update = orthogonal + np.float32(self.eta) * parallel.astype(np.float32)
        return (cond + np.float32(self.scale - 1.0) * update).astype(np.float32)
