"""Snapshots of the main screen in its key states, fed deterministic scheduler events.

Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and
look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from tui_fakes import TUI_LONG_PROMPT, FakeBackend, FakeScheduler, tui_job, tui_playing_events

from lofitui.config import Config
from lofitui.engines.base import Progress
from lofitui.errors import ModelError
from lofitui.events import JobChanged, JobProgress, NowPlaying, StationChanged
from lofitui.tui.app import LofiApp, create_app
from lofitui.tui.history import PromptHistory

SIZE = (100, 30)


def app_with(scheduler: FakeScheduler | None = None, **backend_kw) -> LofiApp:
    return create_app(
        config=Config(),
        backend=FakeBackend(scheduler, **backend_kw),
        history=PromptHistory(["older prompt"]),
    )


async def _attached(pilot) -> None:
    for _ in range(200):
        if pilot.app.scheduler is not None:
            break
        await asyncio.sleep(0.01)
    await pilot.pause()


def test_snapshot_empty(tui_env, snap_compare):
    assert snap_compare(app_with(), terminal_size=SIZE, run_before=_attached)


def test_snapshot_generating(tui_env, snap_compare):
    fake = FakeScheduler()

    async def run_before(pilot) -> None:
        await _attached(pilot)
        fake.emit(
            JobChanged(tui_job(1, "failed", error="engine error: the decoder ran out of memory")),
            JobChanged(tui_job(2, "generating")),
            JobProgress("job-2", Progress(312, 1500, "token", eta_s=19.5, rate=61.0)),
            JobChanged(tui_job(3, "queued")),
            NowPlaying(None, 0.0, 0.0, False),
        )
        await pilot.pause()

    assert snap_compare(app_with(fake), terminal_size=SIZE, run_before=run_before)


def _playing(fake: FakeScheduler, *keys: str, **scene):
    async def run_before(pilot) -> None:
        await _attached(pilot)
        fake.emit(*tui_playing_events(**{"position": 12.0, **scene}))
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
            await pilot.pause()

    return run_before


def test_snapshot_playing(tui_env, snap_compare):
    fake = FakeScheduler()
    assert snap_compare(app_with(fake), terminal_size=SIZE, run_before=_playing(fake))


def test_snapshot_streaming(tui_env, snap_compare):
    """The playing track is 18 s generated of 30, played to 0:12: a three-part bar."""
    fake = FakeScheduler()
    run_before = _playing(fake, generated=18.0)
    assert snap_compare(app_with(fake), terminal_size=SIZE, run_before=run_before)


def test_snapshot_buffering(tui_env, snap_compare):
    """Playback reached the frontier (0:18 of 0:30 generated) and waits for it."""
    fake = FakeScheduler()
    run_before = _playing(fake, position=18.0, generated=18.0, buffering=True)
    assert snap_compare(app_with(fake), terminal_size=SIZE, run_before=run_before)


def test_snapshot_help(tui_env, snap_compare):
    fake = FakeScheduler()
    assert snap_compare(
        app_with(fake), terminal_size=SIZE, run_before=_playing(fake, "question_mark")
    )


def test_snapshot_error(tui_env, snap_compare):
    failure = ModelError(
        "cannot load /models/musicgen-small/decoder_model.onnx: Protobuf parsing failed"
    )

    async def run_before(pilot) -> None:
        for _ in range(200):
            if (
                pilot.app.screen.id != "_default"
                or pilot.app.screen is not pilot.app.screen_stack[0]
            ):
                break
            await asyncio.sleep(0.01)
        await pilot.pause()

    assert snap_compare(app_with(fail=failure), terminal_size=SIZE, run_before=run_before)


def _long_prompt_playing(fake: FakeScheduler, *keys: str):
    """The steady playing scene, on a station whose prompt is 5000 characters long."""

    async def run_before(pilot) -> None:
        await _attached(pilot)
        assert fake.station is not None
        fake.emit(StationChanged(replace(fake.station, prompt=TUI_LONG_PROMPT)))
        fake.emit(*tui_playing_events(prompt=TUI_LONG_PROMPT))
        await pilot.pause()
        if keys:
            pilot.app.animation_level = "none"  # scrolls land at once
            await pilot.press(*keys)
            pilot.app.clear_notifications()  # "theme: paper" would cover the panels
            await pilot.pause()

    return run_before


@pytest.mark.parametrize("theme", ["lofi", "midnight", "paper"])
@pytest.mark.parametrize(
    "size", [(60, 20), (80, 24), (200, 50)], ids=lambda s: "x".join(map(str, s))
)
def test_snapshot_sizes(tui_env, snap_compare, size, theme):
    """Every panel in place at each size and theme (reached with ``t`` while playing, so every
    row is restyled on the way); the long prompt clamped everywhere."""
    fake = FakeScheduler()
    presses = ("t",) * ("lofi", "midnight", "paper").index(theme)
    run_before = _long_prompt_playing(fake, *presses)
    assert snap_compare(app_with(fake), terminal_size=size, run_before=run_before)


def test_snapshot_help_small_scrolled(tui_env, snap_compare):
    """At 60x20 the help card fits, scrolled to its end; the closing hint stays in view."""
    fake = FakeScheduler()
    run_before = _long_prompt_playing(fake, "question_mark", "end")
    assert snap_compare(app_with(fake), terminal_size=(60, 20), run_before=run_before)
