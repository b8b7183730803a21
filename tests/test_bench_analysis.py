"""The benchmarks' capture analysis (tests/bench/capture_analysis.py) on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest
from bench.capture_analysis import (
    Gap,
    amplitude,
    find_gaps,
    first_audible,
    level_dbfs,
    nearest,
    predicted_gap_s,
    window_levels,
)

RATE = 48000


def noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Stereo white noise at an RMS of ``dbfs`` (like a random-weight model's output)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((round(seconds * RATE), 2))
    return (x / np.sqrt(np.mean(x**2)) * amplitude(dbfs)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros((round(seconds * RATE), 2), np.float32)


def test_levels_match_the_signal() -> None:
    assert level_dbfs(noise(1.0, -20.0)) == pytest.approx(-20.0, abs=0.01)
    assert level_dbfs(silence(0.1)) == float("-inf")
    levels = window_levels(np.concatenate([noise(0.3, -30.0), silence(0.25)]), RATE)
    assert levels.shape == (5,)  # the 50 ms tail is dropped
    assert levels[:3] == pytest.approx([-30.0] * 3, abs=0.2)
    assert np.all(np.isneginf(levels[3:]))


def test_first_audible_finds_the_first_loud_sample_on_any_channel() -> None:
    x = silence(1.0)
    x[:1000] = 0.0005  # -66 dBFS: not audible
    x[30_000, 1] = 0.01  # one loud sample on the right channel
    assert first_audible(x) == 30_000
    assert first_audible(x[:, 0]) is None
    assert first_audible(silence(0.5)) is None


def test_gaps_are_merged_runs_of_silent_windows() -> None:
    x = np.concatenate(
        [noise(1.0, -25.0), silence(0.35), noise(1.0, -25.0, 1), silence(0.2), noise(0.5, -25.0)]
    )
    gaps = find_gaps(x, RATE)
    # 0.35 s of silence from 1.0 s covers the whole windows 1.0-1.3; the next starts at 2.35
    # and its silence covers the windows 2.4-2.5 wholly (2.35-2.4 and 2.5-2.55 are mixed)
    assert gaps == [Gap(1.0, pytest.approx(1.3)), Gap(pytest.approx(2.4), pytest.approx(2.5))]
    assert gaps[0].duration_s == pytest.approx(0.3)


def test_quiet_music_is_not_a_gap_but_very_quiet_windows_are() -> None:
    x = np.concatenate([noise(0.5, -55.0), noise(0.5, -65.0, 1), noise(0.5, -55.0, 2)])
    assert find_gaps(x, RATE) == [Gap(pytest.approx(0.5), pytest.approx(1.0))]
    assert find_gaps(x, RATE, threshold_dbfs=-70.0) == []


def test_gaps_outside_the_range_are_not_counted() -> None:
    x = np.concatenate([silence(1.0), noise(2.0, -20.0), silence(0.5), noise(1.0, -20.0)])
    x = np.concatenate([x, silence(1.0)])
    assert len(find_gaps(x, RATE)) == 3
    assert find_gaps(x, RATE, start_s=1.0, end_s=4.5) == [
        Gap(pytest.approx(3.0), pytest.approx(3.5))
    ]


def test_nearest_mark_and_offset() -> None:
    assert nearest(31.2, [0.0, 30.0, 58.0]) == (30.0, pytest.approx(1.2))
    assert nearest(57.5, [0.0, 30.0, 58.0]) == (58.0, pytest.approx(-0.5))
    assert nearest(1.0, []) is None


def test_predicted_gap_follows_the_rate() -> None:
    assert predicted_gap_s(30.0, 1.5) == 0.0
    assert predicted_gap_s(30.0, 0.5) == pytest.approx(30.0)
    assert predicted_gap_s(10.0, 0.8) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        predicted_gap_s(30.0, 0.0)
