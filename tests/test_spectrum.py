"""The visualiser's analysis and its input: log-frequency bands, falling bars and peaks, the
output tap, and the real player's tap holding what it played (into the test null sink)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lofitui.audio.player import Player
from lofitui.audio.spectrum import (
    BAR_FALL_PER_S,
    PEAK_HOLD_S,
    SILENT_DB,
    FallingBars,
    SpectrumBands,
)
from lofitui.audio.tap import OutputTap
from lofitui.audio.types import Audio


def sine(freq: float, rate: int, frames: int, amp: float = 0.05, phase: float = 0.7) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(frames) / rate + phase)).astype(np.float32)


@pytest.mark.parametrize(("count", "rate"), [(12, 48000), (40, 48000), (96, 48000), (60, 44100)])
def test_a_sine_lights_the_band_it_is_in(count: int, rate: int) -> None:
    """Across the whole range (the long FFT's bass bands and the short FFT's), a sine a quarter,
    half or three quarters into a band (in log frequency) is loudest in that band, at its level."""
    bands = SpectrumBands(count, rate)
    lo, hi = bands.edges[:-1], bands.edges[1:]
    for i in range(0, count, max(1, count // 12)):
        for where in (0.25, 0.5, 0.75):
            freq = lo[i] * (hi[i] / lo[i]) ** where
            x = sine(freq, rate, bands.window)
            db = bands.decibels(np.stack([x, x], axis=1))
            assert int(np.argmax(db)) == i == bands.band_of(freq), f"{freq:.1f} Hz"
            assert db[i] == pytest.approx(20 * np.log10(0.05), abs=0.5), f"{freq:.1f} Hz"
            assert int(np.argmax(bands.levels(x))) == i, f"{freq:.1f} Hz"


def test_two_tones_light_two_bands_and_silence_none() -> None:
    bands = SpectrumBands(48, 48000)
    x = sine(60, 48000, bands.window) + sine(6000, 48000, bands.window)
    levels = bands.levels(x)
    lit = {bands.band_of(60), bands.band_of(6000)}
    assert set(np.argsort(levels)[-2:]) == lit and levels[sorted(lit)].min() > 0.4
    far = [i for i in range(bands.count) if min(abs(i - j) for j in lit) > 2]
    assert levels[far].max() < 0.05  # a tone reaches two bands either side at most
    assert (bands.decibels(np.zeros(bands.window)) == SILENT_DB).all()
    assert not bands.levels(np.zeros((100, 2), np.float32)).any()
    # a window shorter than the FFT is padded with silence: the tone still shows where it is
    short = bands.decibels(sine(1000, 48000, 3000))
    assert int(np.argmax(short)) == bands.band_of(1000)


def test_bars_fall_and_peaks_hold_then_fall_faster_and_faster() -> None:
    motion = FallingBars(3)
    motion.update(np.array([1.0, 0.5, 0.0]), 0.0)
    assert motion.bars.tolist() == [1.0, 0.5, 0.0] and motion.peaks.tolist() == [1.0, 0.5, 0.0]
    dt = 1 / 30
    bars, peaks = [], []
    for _ in range(60):  # two seconds of silence
        motion.update(np.zeros(3), dt)
        bars.append(motion.bars[0])
        peaks.append(motion.peaks[0])
        assert (motion.peaks >= motion.bars).all()
    assert bars[0] == pytest.approx(1.0 - BAR_FALL_PER_S * dt)
    assert np.all(np.diff(bars) <= 0) and bars[-1] == 0.0
    held = int(PEAK_HOLD_S / dt) - 1
    assert peaks[:held] == [1.0] * held  # held...
    drops = -np.diff(peaks)
    falling = drops[drops > 0]
    assert falling.size > 3 and np.all(np.diff(falling[:-1]) > 0)  # ...then accelerating
    assert peaks[-1] == 0.0 and motion.at_rest
    # a louder level lifts a falling bar at once, and its peak with it
    motion.update(np.array([0.2, 0.9, 0.0]), dt)
    assert motion.bars.tolist() == [0.2, 0.9, 0.0] and not motion.at_rest


def test_output_tap_keeps_the_latest_frames_across_the_wrap() -> None:
    tap = OutputTap(1000, 2)
    assert tap.read(10) is None  # nothing written yet
    frames = np.arange(2 * 2600, dtype=np.float32).reshape(-1, 2)
    for start in range(0, 2600, 300):  # blocks of 300 frames, wrapping the ring twice
        tap.write(frames[start : start + 300])
    assert tap.written == 2600
    np.testing.assert_array_equal(tap.read(500), frames[2100:2600])
    np.testing.assert_array_equal(tap.read(400, delay=250), frames[1950:2350])
    with pytest.raises(ValueError):
        tap.read(900, delay=200)  # longer than the ring holds


@pytest.mark.sound
def test_the_player_taps_what_it_sends_out_after_volume_and_pause() -> None:
    """A 1 kHz sine through the real player at volume 0.5: what ``heard`` returns is that sine
    at half its level (the output after the gain), the spectrum peaks in its band; paused, the
    tap holds silence."""
    rate, freq, amp = 48000, 1000.0, 0.5
    player = Player(crossfade_s=0.0, samplerate=rate)
    player.volume = 0.5
    player.start()
    try:
        assert player.has_output, player.output_error
        player.enqueue("sine", Audio(sine(freq, rate, 3 * rate, amp)[:, None], rate))
        deadline = time.monotonic() + 5
        while (now := player.now_playing) is None or now.position_s < 0.6:
            assert time.monotonic() < deadline, "the sine never started playing"
            time.sleep(0.02)
        heard = player.heard(8192)
        assert heard is not None and heard.samples.shape == (8192, 2)
        assert heard.sample_rate == rate
        left = heard.samples[:, 0].astype(np.float64)
        t = np.arange(left.size) / rate
        level = 2 * np.abs(np.sum(left * np.exp(-2j * np.pi * freq * t))) / left.size
        assert level == pytest.approx(amp * 0.5, rel=0.03)
        bands = SpectrumBands(40, rate)
        assert int(np.argmax(bands.levels(heard.samples))) == bands.band_of(freq)
        player.pause()
        time.sleep(0.6)  # the fade and the output latency
        paused = player.heard(8192)
        assert paused is not None and not paused.samples.any()
    finally:
        player.close()
    assert player.heard(2048) is None  # closed: nothing is heard
