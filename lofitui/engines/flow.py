"""Flow-matching sampling in numpy: timestep schedules, ODE/SDE samplers, guidance (CFG, APG).

Conventions follow ACE-Step 1.5 in diffusers: time runs from t = 1 (pure noise) to t = 0 (data);
the model predicts a velocity v with x_t = (1 - t) * x_0 + t * noise, so x_0 = x_t - t * v.
Everything is float32 except APG's projection, which diffusers computes in float64.

ACE-Step v1 samples with the same equations and adds what its own schedulers and pipeline do:
their sigma schedule (:func:`flowmatch_schedule`), the omega mean-shift of each Euler/Heun update
(``sample(..., omega=)``), APG over the last two axes (``Guidance(axes=(-2, -1))``), ``cfg_star``,
and a guidance window counted in evaluations (:class:`GuidanceWindow`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from lofitui.errors import UsageError

Velocity = Callable[[np.ndarray, float], np.ndarray]
# Standard normal float32 noise of a shape (PingPong's re-noising draws).
Noise = Callable[[tuple[int, ...]], np.ndarray]

SCHEDULERS = ("euler", "heun", "pingpong")
GUIDANCE_MODES = ("apg", "cfg")
# ACE-Step v1's pipeline also offers CFG-Zero* (``cfg_star``).
V1_GUIDANCE_MODES = (*GUIDANCE_MODES, "cfg_star")

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
# CFG-Zero* as ACE-Step v1 calls it: the first evaluations (index <= 1) predict zero velocity.
CFG_STAR_ZERO_STEPS = 1


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


def flowmatch_schedule(steps: int, shift: float = 3.0, train_steps: int = 1000) -> np.ndarray:
    """Sigmas sigma_0 = 1 > ... > sigma_{N-1} followed by a terminal 0, as ACE-Step v1's
    FlowMatch schedulers (Euler, Heun, PingPong) set them: N + 1 float32 values.

    The schedulers' constructor shifts its training grid (1/T ... 1), so its smallest sigma is
    ``shift(1/T)``; ``set_timesteps`` then spaces N points linearly (float64) from 1 to that
    sigma and shifts them again, so the last step ends at 0.00893 (N = 60), not at 1/N. The
    model's timestep for a sigma is ``sigma * 1000`` in float32 (:func:`model_timestep`).
    """
    if steps < 1:
        raise UsageError(f"steps must be at least 1, got {steps}")
    if not shift > 0:
        raise UsageError(f"shift must be > 0, got {shift}")
    shift32 = np.float32(shift)
    grid_min = np.float32(1.0) / np.float32(train_steps)
    sigma_min = shift32 * grid_min / (np.float32(1.0) + (shift32 - np.float32(1.0)) * grid_min)
    u = np.linspace(1.0 * train_steps, float(sigma_min) * train_steps, steps) / train_steps
    sigmas = (shift * u / (1 + (shift - 1) * u)).astype(np.float32)
    return np.concatenate([sigmas, np.zeros(1, np.float32)])


def model_timestep(sigma: float) -> np.float32:
    """The timestep ACE-Step v1's transformer is given for ``sigma``: sigma * 1000 in float32."""
    return np.float32(sigma) * np.float32(1000.0)


def omega_factor(omega: float) -> float:
    """ACE-Step v1's mean-shift gain: a logistic squashing of omega into (0.9, 1.1); omega 0
    gives 1 (no shift), the default 10 gives 1.0462."""
    return 0.9 + 0.2 / (1.0 + float(np.exp(-0.1 * omega)))


def _mean_shift(dx: np.ndarray, gain: float | None) -> np.ndarray:
    """``(dx - mean) * gain + mean`` over the whole tensor (the v1 schedulers' omega step)."""
    if gain is None:
        return dx
    mean = dx.mean(dtype=np.float32)
    return ((dx - mean) * np.float32(gain) + mean).astype(np.float32)


def generator_noise(rng: np.random.Generator) -> Noise:
    """Draws from one numpy Generator (the same one the initial noise came from)."""
    return lambda shape: rng.standard_normal(shape, dtype=np.float32)


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
    *,
    noise: Noise | None = None,
    omega: float | None = None,
) -> np.ndarray:
    """Integrate from t = schedule[0] to schedule[-1] (= 0) starting at noise ``x``.

    - ``euler``: x += (t_next - t) * v(x, t): one evaluation per step (what diffusers does).
    - ``heun``: Euler predictor, then the trapezoid of v(x, t) and v(x_pred, t_next); the last
      step (t_next = 0) stays Euler: 2N - 1 evaluations.
    - ``pingpong``: stochastic: jump to the clean estimate x0 = x - t * v, then re-noise to t_next
      with fresh Gaussian noise from ``noise`` (default: ``rng``) (ACE-Step's PingPong sampler).

    ``omega`` (ACE-Step v1): every Euler/Heun update dx is mean-shifted by
    :func:`omega_factor` (None: the plain update, as 1.5 does).
    """
    check_scheduler(scheduler)
    x = np.asarray(x, dtype=np.float32)
    if noise is None and rng is not None:
        noise = generator_noise(rng)
    if scheduler == "pingpong" and noise is None:
        raise ValueError("the pingpong sampler needs a random generator")
    gain = None if omega is None else omega_factor(omega)
    for t, t_next in pairwise(schedule):
        t, t_next = np.float32(t), np.float32(t_next)
        dt = np.float32(t_next - t)
        v = velocity(x, float(t))
        if scheduler == "euler":
            x = (x + _mean_shift((dt * v).astype(np.float32), gain)).astype(np.float32)
        elif scheduler == "heun":
            predicted = (x + _mean_shift((dt * v).astype(np.float32), gain)).astype(np.float32)
            if t_next == 0:
                x = predicted
            else:
                v_next = velocity(predicted, float(t_next))
                dx = (dt * (np.float32(0.5) * (v + v_next))).astype(np.float32)
                x = (x + _mean_shift(dx, gain)).astype(np.float32)
        else:
            x0 = x - t * v
            x = ((np.float32(1.0) - t_next) * x0 + t_next * noise(x.shape)).astype(np.float32)
    return x


@dataclass
class Guidance:
    """Combine conditional and unconditional velocities; holds APG's momentum across steps.

    ``scale`` is the user-facing guidance scale (1 = off). ``mode`` "apg": diffusers'
    ``normalized_guidance(cond, uncond, scale - 1, MomentumBuffer(-0.75), eta=0,
    norm_threshold=2.5, use_original_formulation=True, norm_dim=(1,))``; "cfg": plain
    classifier-free guidance ``uncond + scale * (cond - uncond)``; "cfg_star" (ACE-Step v1's
    CFG-Zero*): ``alpha * uncond + scale * (cond - alpha * uncond)`` with ``alpha`` the
    least-squares scale of uncond onto cond, and zero velocity for the first evaluations.
    ``axes``: where APG takes its norms and projection: (1,) for 1.5's [B, T, C] velocities, the
    last two axes (16, F) for v1's [B, 8, 16, F]. Guidance applies only where
    ``interval[0] <= 1 - t <= interval[1]`` (v1 counts evaluations: :class:`GuidanceWindow`).
    """

    scale: float = 7.0
    mode: str = "apg"
    interval: tuple[float, float] = (0.0, 1.0)
    momentum: float = APG_MOMENTUM
    norm_threshold: float = APG_NORM_THRESHOLD
    eta: float = APG_ETA
    axes: tuple[int, ...] = (1,)
    _running: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in V1_GUIDANCE_MODES:
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

    def combine(
        self, cond: np.ndarray, uncond: np.ndarray, scale: float | None = None, index: int = 0
    ) -> np.ndarray:
        """The guided velocity; ``scale`` overrides :attr:`scale` for this evaluation (v1's
        decay), ``index`` is the evaluation's number (CFG-Zero*'s zero start)."""
        scale = self.scale if scale is None else scale
        if self.mode == "cfg":
            return (uncond + np.float32(scale) * (cond - uncond)).astype(np.float32)
        if self.mode == "cfg_star":
            return _cfg_star(cond, uncond, scale, index)
        return self._apg(cond, uncond, scale)

    def _apg(self, cond: np.ndarray, uncond: np.ndarray, scale: float) -> np.ndarray:
        axes = self.axes
        diff = (cond - uncond).astype(np.float32)
        if self._running is None:
            self._running = diff
        else:
            self._running = (diff + np.float32(self.momentum) * self._running).astype(np.float32)
        diff = self._running
        if self.norm_threshold > 0:
            norm = np.sqrt(np.sum(diff * diff, axis=axes, keepdims=True, dtype=np.float32))
            with np.errstate(divide="ignore"):
                factor = np.minimum(np.float32(1.0), np.float32(self.norm_threshold) / norm)
            diff = (diff * factor).astype(np.float32)
        v0 = diff.astype(np.float64)
        v1 = cond.astype(np.float64)
        v1 = v1 / np.maximum(np.sqrt(np.sum(v1 * v1, axis=axes, keepdims=True)), 1e-12)
        parallel = np.sum(v0 * v1, axis=axes, keepdims=True) * v1
        orthogonal = (v0 - parallel).astype(np.float32)
        update = orthogonal + np.float32(self.eta) * parallel.astype(np.float32)
        return (cond + np.float32(scale - 1.0) * update).astype(np.float32)


def _cfg_star(cond: np.ndarray, uncond: np.ndarray, scale: float, index: int) -> np.ndarray:
    if index <= CFG_STAR_ZERO_STEPS:
        return np.zeros_like(cond, dtype=np.float32)
    batch = cond.shape[0]
    c, u = cond.reshape(batch, -1), uncond.reshape(batch, -1)
    dot = np.sum(c * u, axis=1, keepdims=True, dtype=np.float32)
    alpha = dot / (np.sum(u * u, axis=1, keepdims=True, dtype=np.float32) + np.float32(1e-8))
    alpha = alpha.reshape((batch,) + (1,) * (cond.ndim - 1)).astype(np.float32)
    return (uncond * alpha + np.float32(scale) * (cond - uncond * alpha)).astype(np.float32)


@dataclass(frozen=True)
class GuidanceWindow:
    """ACE-Step v1's guidance interval, counted in model evaluations.

    Evaluations ``start <= i < end`` with ``start = int(steps * (1 - interval) / 2)`` and
    ``end = int(steps * (interval / 2 + 0.5))`` are guided (two passes); the others make one
    conditional pass. ``steps`` is the step count the pipeline was asked for, also for Heun
    (whose 2N - 1 evaluations then run past the window's end unguided), as the original counts.
    Within the window the scale falls linearly by ``decay`` toward ``min_scale``.
    """

    steps: int
    interval: float = 0.5
    decay: float = 0.0
    min_scale: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.interval <= 1.0:
            raise UsageError(f"guidance interval must be between 0 and 1, got {self.interval:g}")
        if not 0.0 <= self.decay <= 1.0:
            raise UsageError(f"guidance decay must be between 0 and 1, got {self.decay:g}")

    @property
    def start(self) -> int:
        return int(self.steps * ((1 - self.interval) / 2))

    @property
    def end(self) -> int:
        return int(self.steps * (self.interval / 2 + 0.5))

    def scale(self, index: int, scale: float) -> float | None:
        """The guidance scale of evaluation ``index``; None outside the window."""
        if not self.start <= index < self.end:
            return None
        if self.decay <= 0:
            return scale
        # The original divides by (end - start - 1): a one-evaluation window has no slope.
        span = max(self.end - self.start - 1, 1)
        progress = (index - self.start) / span
        return scale - (scale - self.min_scale) * progress * self.decay
