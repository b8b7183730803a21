"""Flow-matching schedules, samplers and guidance against their closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from lofitui.engines.flow import (
    TURBO_TABLES,
    Guidance,
    GuidanceWindow,
    evaluations,
    flowmatch_schedule,
    omega_factor,
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


def _apg_reference(cond, uncond, scale, running, axes=(1,)):
    """APG written out in float64 from the formula (momentum, norm clip, projection, eta 0)."""
    diff = cond.astype(np.float64) - uncond
    running = diff if running is None else diff - 0.75 * running
    norm = np.sqrt(np.sum(running**2, axis=axes, keepdims=True))
    clipped = running * np.minimum(1.0, 2.5 / norm)
    unit = cond / np.sqrt(np.sum(cond.astype(np.float64) ** 2, axis=axes, keepdims=True))
    orthogonal = clipped - np.sum(clipped * unit, axis=axes, keepdims=True) * unit
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


# -- ACE-Step v1's additions ---------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 4, 27, 60])
def test_v1_schedule_is_the_double_shifted_linspace(steps):
    sigma_min = 3 * 0.001 / (1 + 2 * 0.001)  # the constructor's shifted 1/1000
    u = np.linspace(1.0, sigma_min, steps)
    expected = np.append(3 * u / (1 + 2 * u), 0.0)
    schedule = flowmatch_schedule(steps)
    assert schedule.dtype == np.float32 and schedule.shape == (steps + 1,)
    np.testing.assert_allclose(schedule, expected, atol=1e-7, rtol=0)
    assert schedule[0] == 1.0 and schedule[-1] == 0.0


def test_v1_schedule_ends_nearer_zero_than_lofi_nvims():
    assert abs(flowmatch_schedule(60)[-2] - 0.00893) < 1e-5  # lofi.nvim's 1/N end: 0.0484


def test_omega_mean_shift_scales_only_the_deviation():
    assert omega_factor(0.0) == 1.0 and abs(omega_factor(10.0) - 1.0462117) < 1e-6
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 8, 16, 5)).astype(np.float32)
    v = rng.standard_normal(x.shape).astype(np.float32)
    schedule = np.array([1.0, 0.25, 0.0], np.float32)
    out = sample(x, schedule[:2], lambda _x, _t: v, "euler", omega=10.0)
    dx = (np.float32(0.25) - np.float32(1.0)) * v
    expected = x + dx.mean() + (dx - dx.mean()) * omega_factor(10.0)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    plain = sample(x, schedule[:2], lambda _x, _t: v, "euler", omega=0.0)
    np.testing.assert_allclose(plain, x + dx, atol=1e-6)


def test_pingpong_draws_from_the_given_noise_in_order():
    draws = iter([np.full((1, 2), 5.0, np.float32), np.full((1, 2), 7.0, np.float32)])
    x = np.zeros((1, 2), np.float32)
    clean = lambda x, t: x / np.float32(t)  # noqa: E731  (predicts x0 = 0)
    out = sample(x, np.array([1.0, 0.5, 0.0], np.float32), clean, "pingpong",
                 noise=lambda shape: next(draws))  # fmt: skip
    np.testing.assert_array_equal(out, np.zeros((1, 2)))  # the last draw is weighted by sigma 0
    draws = iter([np.full((1, 2), 5.0, np.float32), np.full((1, 2), 7.0, np.float32)])
    out = sample(x, np.array([1.0, 0.5], np.float32), clean, "pingpong",
                 noise=lambda shape: next(draws))  # fmt: skip
    np.testing.assert_array_equal(out, np.full((1, 2), 2.5))


def test_guidance_window_counts_evaluations_as_the_original():
    window = GuidanceWindow(60)
    assert (window.start, window.end) == (15, 45)
    assert window.scale(14, 15.0) is None and window.scale(45, 15.0) is None
    assert window.scale(15, 15.0) == window.scale(44, 15.0) == 15.0
    assert (GuidanceWindow(4).start, GuidanceWindow(4).end) == (1, 3)
    decaying = GuidanceWindow(60, decay=1.0, min_scale=3.0)
    assert decaying.scale(15, 15.0) == 15.0 and decaying.scale(44, 15.0) == 3.0
    assert GuidanceWindow(2, interval=0.5, decay=1.0).scale(0, 9.0) == 9.0  # one evaluation
    with pytest.raises(UsageError, match="interval"):
        GuidanceWindow(60, interval=1.5)


def test_apg_over_the_last_two_axes_and_a_scale_per_call():
    rng = np.random.default_rng(4)
    g = Guidance(15.0, "apg", axes=(-2, -1))
    running = None
    for step, scale in enumerate((15.0, 9.0, 3.0)):
        cond = rng.standard_normal((1, 8, 16, 6)).astype(np.float32)
        uncond = cond - rng.standard_normal(cond.shape).astype(np.float32) * (0.02 + step)
        expected, running = _apg_reference(cond, uncond, scale, running, axes=(-2, -1))
        np.testing.assert_allclose(g.combine(cond, uncond, scale), expected, atol=3e-5)


def test_cfg_star_zero_start_then_the_optimal_scale():
    rng = np.random.default_rng(6)
    cond, uncond = rng.standard_normal((2, 1, 8, 16, 4)).astype(np.float32)
    g = Guidance(5.0, "cfg_star")
    assert not g.combine(cond, uncond, index=1).any()
    alpha = np.sum(cond * uncond) / (np.sum(uncond * uncond) + 1e-8)
    expected = alpha * uncond + 5.0 * (cond - alpha * uncond)
    np.testing.assert_allclose(g.combine(cond, uncond, index=2), expected, atol=1e-5)
