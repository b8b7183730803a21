"""The visualiser in the app: ``v`` cycles spectrum → level meter → off and the choice is
remembered; the spectrum draws what the scheduler says is heard and falls back when nothing is;
a snapshot of it on a fixed signal. (The analysis itself: tests/test_spectrum.py.)"""

from __future__ import annotations

import asyncio

import numpy as np
from tui_fakes import FakeBackend, FakeScheduler, tui_playing_events

from lofitui.audio.spectrum import SpectrumBands
from lofitui.audio.types import Audio
from lofitui.config import Config, load_config
from lofitui.tui.app import LofiApp, create_app
from lofitui.tui.history import PromptHistory
from lofitui.tui.widgets import LevelMeter
from lofitui.tui.widgets.spectrum import Spectrum
from lofitui.tui.widgets.visualiser import Visualiser

SIZE = (100, 30)
RATE = 48000
TONES = ((55.0, 0.25), (220.0, 0.12), (880.0, 0.08), (3500.0, 0.03), (11000.0, 0.01))


def tones(gain: float = 1.0, frames: int = 8192) -> Audio:
    """A fixed stereo window of a few tones across the range (the same every time)."""
    t = np.arange(frames) / RATE
    x = sum(amp * np.sin(2 * np.pi * freq * t) for freq, amp in TONES)
    x = (gain * x).astype(np.float32)
    return Audio(np.stack([x, x], axis=1), RATE)


async def attached(pilot) -> FakeScheduler:
    for _ in range(200):
        if pilot.app.scheduler is not None:
            await pilot.pause()
            return pilot.app.scheduler
        await asyncio.sleep(0.01)
    raise AssertionError("the app never attached its scheduler")


def rows_of(spectrum: Spectrum) -> list[str]:
    return [spectrum.render_line(y).text for y in range(spectrum.size.height)]


async def test_v_cycles_the_visualiser_draws_what_is_heard_and_is_remembered(tui_env):
    config_path = tui_env / "config" / "lofi" / "config.toml"
    fake = FakeScheduler()
    app = create_app(backend=FakeBackend(fake), config_path=config_path, history=PromptHistory())
    async with app.run_test(size=SIZE) as pilot:
        await attached(pilot)
        visualiser = app.query_one(Visualiser)
        spectrum, meter = app.query_one(Spectrum), app.query_one(LevelMeter)
        assert visualiser.mode == "spectrum" and spectrum.display and spectrum.running
        assert not meter.display
        assert 2 <= spectrum.size.height <= 6  # a few rows of the panel, not most of the screen

        # each tone lights its own bar (the bottom row at its band's column), nothing else does
        fake.output = tones()
        spectrum.frame(0.0)
        bottom = rows_of(spectrum)[-1]
        bands = SpectrumBands(Spectrum.band_count(spectrum.size.width), RATE)
        offset = (spectrum.size.width - (2 * bands.count - 1)) // 2
        lit = {offset + 2 * bands.band_of(freq) for freq, _ in TONES}
        assert all(bottom[x] != " " for x in lit), bottom
        assert bottom[offset + 2 * (bands.count - 1)] == " "  # 16 kHz: no tone there
        assert bottom[offset + 2 * bands.band_of(1800)] == " "  # between two tones
        assert max(lit) < len(bottom)

        # nothing heard (paused, no output): the bars and their peaks fall to nothing
        fake.output = None
        for _ in range(40):
            spectrum.frame(1 / 30)
        assert not "".join(rows_of(spectrum)).strip()

        await pilot.press("v")
        assert visualiser.mode == "meter" and meter.display and not spectrum.display
        assert not spectrum.running and 1 <= meter.size.height <= 2
        await pilot.press("v")
        assert visualiser.mode == "off" and not visualiser.display and not spectrum.running
        await pilot.press("v")
        assert visualiser.mode == "spectrum" and spectrum.display and spectrum.running
        await pilot.press("v", "t")  # two settings saved at once: neither is lost
        assert visualiser.mode == "meter" and app.theme == "midnight"
        await app.workers.wait_for_complete()
    saved = load_config(config_path).config
    assert saved.visualiser == "meter" and saved.theme == "midnight"
    assert "# engine = " in config_path.read_text()  # the commented defaults are kept

    again = create_app(backend=FakeBackend(), config_path=config_path, history=PromptHistory())
    async with again.run_test(size=SIZE) as pilot:
        await attached(pilot)
        assert again.query_one(Visualiser).mode == "meter"
        assert not again.query_one(Spectrum).running


def test_snapshot_spectrum(tui_env, snap_compare):
    """The now-playing view with the spectrum of fixed tones; they were 12 dB louder half a
    second ago, so the peak markers hang above the bars on their way down. Frames are stepped
    by hand (the timer is stopped), so the picture does not depend on timing."""
    fake = FakeScheduler()
    app: LofiApp = create_app(
        config=Config(), backend=FakeBackend(fake), history=PromptHistory(["older prompt"])
    )

    async def run_before(pilot) -> None:
        await attached(pilot)
        fake.emit(*tui_playing_events(position=12.0))
        spectrum = pilot.app.query_one(Spectrum)
        spectrum.stop()
        fake.output = tones(gain=4.0)
        spectrum.frame(0.0)
        fake.output = tones()
        for _ in range(5):
            spectrum.frame(0.1)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
