"""Flow-matching schedules, samplers and guidance against their closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from lofitui.engines.flow import (
    TURBO_TABLES,
    Guidance,
    evaluations,
    sample,
    shifted_schedule,
)
from lofitui.errors import UsageError


@pytest.mark.parametrize("shift", [1.0, 2.0, 3.0])
def test_turbo_tables_are_the_shifted_schedule(shift):
    schedule = shifted_schedule(8, shift)
    assert schedule.dtype == np.float32
    assert schedule.shape == (9,)
    np.testing.assert_allclose(schedule[:-1], TURBO_TABLES[shift], rtol=0, atol=1e-7)
    assert schedule[-1] == 0.0


def test_default_turbo_schedule_matches_the_published_values():
    expected = [1.0, 0.95455, 0.9, 0.83333, 0.75, 0.64286, 0.5, 0.3, 0.0]
    np.testing.assert_allclose(shifted_schedule(8, 3.0), expected, atol=5e-6)


@pytest.mark.parametrize(("steps", "shift"), [(1, 3.0), (5, 1.0), (27, 3.0), (60, 2.5), (8, 0.5)])
def test_schedule_closed_form(steps, shift):
    s = np.linspace(1.0, 0.0, steps + 1)
    expected = shift * s / (1 + (shift - 1) * s)
    schedule = shifted_schedule(steps, shift)
    np.testing.assert_allclose(schedule, expected, atol=2e-7)
    assert schedule[0] == 1.0 and schedule[-1] == 0.0
    assert np.all(np.diff(schedule) < 0)


@pytest.mark.parametrize(("steps", "shift"), [(0, 3.0), (8, 0.0), (8, -1.0)])
def test_schedule_rejects_bad_arguments(steps, shift):
    with pytest.raises(UsageError):
        shifted_schedule(steps, shift)


def _straight_field(x0: np.ndarray):
    """The exact velocity of straight noise->x0 paths: every sampler must land on x0."""
    calls = []

    def velocity(x, t):
        calls.append(t)
        return (x - x0) / np.float32(t)

    return velocity, calls


@pytest.mark.parametrize("scheduler", ["euler", "heun", "pingpong"])
def test_samplers_land_on_the_data_for_straight_paths(scheduler):
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((1, 9, 4)).astype(np.float32)
    noise = rng.standard_normal((1, 9, 4)).astype(np.float32)
    velocity, calls = _straight_field(x0)
    out = sample(noise, shifted_schedule(8, 3.0), velocity, scheduler, np.random.default_rng(1))
    np.testing.assert_allclose(out, x0, atol=1e-5)
    assert len(calls) == evaluations(scheduler, 8)


def test_evaluation_counts():
    assert evaluations("euler", 8) == 8
    assert evaluations("pingpong", 8) == 8
    assert evaluations("heun", 8) == 15
    assert evaluations("heun", 1) == 1
    with pytest.raises(UsageError, match="scheduler"):
        evaluations("ddim", 8)


def test_euler_step_is_x_plus_dt_v():
    seen = []

    def velocity(x, t):
        seen.append((x.copy(), t))
        return np.full_like(x, 2.0)

    schedule = shifted_schedule(4, 1.0)
    out = sample(np.zeros((1, 2, 1), np.float32), schedule, velocity, "euler")
    # x(0) = x(1) + sum(dt) * 2 = -2
    np.testing.assert_allclose(out, -2.0, atol=1e-6)
    assert [t for _, t in seen] == pytest.approx([1.0, 0.75, 0.5, 0.25])


def test_heun_is_second_order():
    # dx/dt = x from t = 1 to 0: x(0) = x(1) / e. Euler errors halve, Heun's quarter.
    def velocity(x, t):
        return x

    start = np.ones((1, 1, 1), np.float32)

    def error(scheduler, steps):
        out = sample(start, shifted_schedule(steps, 1.0), velocity, scheduler)
        return abs(float(out.ravel()[0]) - np.exp(-1.0))

    # Heun's last step is Euler (t_next = 0): compare on the whole trajectory anyway.
    assert error("heun", 32) < error("euler", 32) / 4
    assert error("euler", 16) / error("euler", 32) == pytest.approx(2.0, rel=0.15)


def test_pingpong_is_seeded():
    x0 = np.zeros((1, 6, 2), np.float32)

    def velocity(x, t):  # a field that does not point at the data: noise matters
        return (x - x0) / np.float32(t) * np.float32(0.5)

    noise = np.ones((1, 6, 2), np.float32)
    sched = shifted_schedule(6, 3.0)
    a = sample(noise, sched, velocity, "pingpong", np.random.default_rng(7))
    b = sample(noise, sched, velocity, "pingpong", np.random.default_rng(7))
    c = sample(noise, sched, velocity, "pingpong", np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    with pytest.raises(ValueError):
        sample(noise, sched, velocity, "pingpong", None)


def test_cfg_formula():
    rng = np.random.default_rng(0)
    cond, uncond = rng.standard_normal((2, 1, 5, 3)).astype(np.float32)
    g = Guidance(4.0, "cfg")
    np.testing.assert_allclose(g.combine(cond, uncond), uncond + 4.0 * (cond - uncond), atol=1e-6)


def _apg_reference(cond, uncond, scale, running):
    """APG written out in float64 from the formula (momentum, norm clip, projection, eta 0)."""
    diff = cond.astype(np.float64) - uncond
    running = diff if running is None else diff - 0.75 * running
    norm = np.linalg.norm(running, axis=1, keepdims=True)
    clipped = running * np.minimum(1.0, 2.5 / norm)
    unit = cond / np.linalg.norm(cond.astype(np.float64), axis=1, keepdims=True)
    orthogonal = clipped - np.sum(clipped * unit, axis=1, keepdims=True) * unit
    return cond + (scale - 1.0) * orthogonal, running


def test_apg_matches_its_formula_over_several_steps():
    rng = np.random.default_rng(3)
    g = Guidance(7.0, "apg")
    running = None
    for step in range(4):
        cond = rng.standard_normal((1, 11, 4)).astype(np.float32)
        # Large and small differences: the norm clip is active on some steps, not others.
        uncond = cond - rng.standard_normal((1, 11, 4)).astype(np.float32) * (0.05 + step)
        expected, running = _apg_reference(cond, uncond, 7.0, running)
        np.testing.assert_allclose(g.combine(cond, uncond), expected, atol=2e-5)


def test_apg_update_is_orthogonal_to_cond_and_clipped():
    rng = np.random.default_rng(5)
    cond = rng.standard_normal((1, 20, 3)).astype(np.float32)
    uncond = cond + 10 * rng.standard_normal((1, 20, 3)).astype(np.float32)
    out = Guidance(3.0, "apg").combine(cond, uncond)
    update = (out - cond) / 2.0
    assert np.all(np.abs(np.sum(update * cond, axis=1)) < 1e-3)
    assert np.all(np.linalg.norm(update, axis=1) <= 2.5 + 1e-4)


def test_guidance_interval_and_scale():
    g = Guidance(5.0, "apg", (0.05, 0.45))
    assert not g.applies(1.0)  # 1 - t = 0 < 0.05
    assert g.applies(0.9) and g.applies(0.55)
    assert not g.applies(0.5)
    assert not Guidance(1.0).enabled and not Guidance(1.0).applies(0.5)
    assert Guidance(1.5).applies(0.5)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "magic"}, {"scale": -1.0}, {"interval": (0.6, 0.4)}, {"interval": (0.0, 1.5)}],
)
def test_guidance_rejects_bad_settings(kwargs):
    with pytest.raises(UsageError):
        Guidance(**{"scale": 5.0, **kwargs})
