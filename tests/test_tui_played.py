"""``b`` and ``h`` in the app: the real pipeline (built-in synth, track cache and history on disk,
silent playback) across two app instances, and a snapshot of the history screen."""

from __future__ import annotations

import numpy as np
from test_tui_live import wait_for
from textual.widgets import DataTable
from tui_fakes import TUI_PROMPT, FakeBackend, FakeScheduler

from lofitui.audio.wav import read_wav
from lofitui.config import Config, build_settings
from lofitui.engines.base import TrackRequest
from lofitui.tui import backend as backend_module
from lofitui.tui.app import LofiApp, create_app
from lofitui.tui.history import PromptHistory
from lofitui.tui.screens import ConfirmScreen, PlayedScreen
from lofitui.tui.widgets import NowPlayingView

SIZE = (100, 30)
TIMEOUT = 60.0  # generous: the suite shares a busy machine


def synth_app() -> LofiApp:
    settings = build_settings(Config(engine="synth", lookahead=1, crossfade=0.0), {"duration": 5})
    return create_app(settings, history=PromptHistory())


def toasts(app: LofiApp) -> list[str]:
    return [n.message for n in app._notifications]


def rows(app: LofiApp) -> list[str]:
    """The history screen's rows: their track keys, top to bottom."""
    table = app.screen.query_one(DataTable)
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


def key_of(app: LofiApp) -> str | None:
    current = app.scheduler.current if app.scheduler is not None else None
    return current.request.key if current is not None else None


async def test_back_and_history_on_the_real_pipeline_survive_a_restart(tui_env, monkeypatch):
    monkeypatch.setattr(backend_module, "open_player", lambda _: (None, "test: silent playback"))
    app = synth_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: key_of(app) is not None, TIMEOUT)  # the first track
        a = key_of(app)
        await pilot.press("space")  # paused: tracks change only when asked
        await pilot.press("b")
        assert "this is the start of the history: there is no earlier track" in toasts(app)
        assert key_of(app) == a

        scheduler = app.scheduler
        await wait_for(
            lambda: scheduler.upcoming and scheduler.upcoming[0].state == "ready", TIMEOUT
        )  # the next track
        await pilot.press("n")
        await wait_for(lambda: key_of(app) not in (None, a), TIMEOUT)  # n: the next track
        b = key_of(app)
        await pilot.press("b")
        await wait_for(lambda: key_of(app) == a, TIMEOUT)  # b: back to the first track
        assert app.query_one(NowPlayingView).job.request.key == a

        await pilot.press("h")
        assert isinstance(app.screen, PlayedScreen)
        assert rows(app) == [a, b], "newest first"
        await pilot.press("down", "enter")  # the second row: B, from the cache
        assert not isinstance(app.screen, PlayedScreen)
        await wait_for(lambda: key_of(app) == b, TIMEOUT)  # Enter: B again

        await pilot.press("h")
        assert rows(app) == [b, a]
        await pilot.press("down", "s")  # saves A (not the one playing) to the music folder
        await pilot.pause()
        (saved,) = (tui_env / "music" / "lofi").glob("*.wav")
        audio_a = read_wav(scheduler.cache.wav_path(a)).samples
        assert np.array_equal(read_wav(saved).samples, audio_a)
        assert str(saved) in toasts(app)
        assert "saved" in str(app.screen.query_one(DataTable).get_row_at(1)[-1])
        assert isinstance(app.screen, PlayedScreen), "s keeps the list open"
        await pilot.press("escape", "q")

    app = synth_app()  # a new session: the same cache and state directory
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: key_of(app) is not None, TIMEOUT)  # the new session's first track
        first = key_of(app)
        await pilot.press("space")
        await pilot.press("b")
        await wait_for(lambda: key_of(app) == b, TIMEOUT)  # b: the last track of the last session
        scheduler = app.scheduler
        assert scheduler.current.state == "playing"
        await pilot.press("h")
        assert rows(app) == [b, first, a], "this session's and the last one's"
        assert "saved" in str(app.screen.query_one(DataTable).get_row_at(2)[-1])

        scheduler.cache.remove(a)  # evicted
        app.screen.fill()
        assert "not cached" in str(app.screen.query_one(DataTable).get_row_at(2)[-1])
        await pilot.press("down", "down", "enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # Generate
        await wait_for(lambda: key_of(app) == a, TIMEOUT)  # A generated again
        await wait_for(lambda: scheduler.cached(a), TIMEOUT)  # A complete
        assert np.array_equal(read_wav(scheduler.cache.wav_path(a)).samples, audio_a)
        await pilot.press("q")


# -- snapshot ----------------------------------------------------------------------------------

NOW = 1_764_000_000.0


def history_scene() -> FakeScheduler:
    fake = FakeScheduler()
    scene = [
        # (prompt, seed, duration, seconds ago, cached, saved, liked)
        (TUI_PROMPT, 4821, 30.0, 30, True, False, None),
        ("rainy jazz guitar, " * 12, 77, 60.0, 1500, True, True, True),
        ("ambient drone", 12, 120.0, 5400, False, False, None),
        ("slow piano, night", 905, 30.0, 3 * 86400, True, False, False),
    ]
    for prompt, seed, duration, ago_s, cached, saved, liked in reversed(scene):
        request = TrackRequest(prompt, duration, seed, model="musicgen-small")
        fake.played.record(request, played_at=NOW - ago_s)
        if saved:
            fake.played.mark_saved(request.key)
        fake.played.set_liked(request.key, liked)
        if cached:
            fake.cached_keys.add(request.key)
    return fake


def test_snapshot_history(tui_env, snap_compare):
    fake = history_scene()
    app = create_app(
        config=Config(), backend=FakeBackend(fake), history=PromptHistory(["older prompt"])
    )

    async def run_before(pilot) -> None:
        await wait_for(lambda: app.scheduler is not None, TIMEOUT)  # the fake scheduler
        await pilot.pause()
        await app.push_screen(PlayedScreen(fake, now=NOW))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_an_empty_history_says_so(tui_env):
    fake = FakeScheduler()
    app = create_app(config=Config(), backend=FakeBackend(fake), history=PromptHistory())
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.scheduler is not None, TIMEOUT)
        await pilot.press("h")
        assert isinstance(app.screen, PlayedScreen)
        assert not app.screen.query_one(DataTable).display
        assert app.screen.query_one("#played-empty").display
        await pilot.press("enter", "s", "h")  # nothing to play or save; h closes it again
        assert not isinstance(app.screen, PlayedScreen)
        assert not [c for c in fake.calls if c[0] in ("play", "save_played", "save_current")]
