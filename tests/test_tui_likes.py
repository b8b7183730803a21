"""The like, dislike and likes keys: on the real scheduler with the built-in synth (silent
playback), with the fake scheduler for the likes view's keys, and a snapshot of the view."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_tui import SIZE, make_app, started, text_of
from test_tui_live import wait_for
from textual.widgets import OptionList
from tui_fakes import TUI_PROMPT, FakeBackend, FakeScheduler, tui_job, tui_playing_events

from lofitui.config import Config, build_settings
from lofitui.engines.base import TrackRequest
from lofitui.events import JobChanged
from lofitui.library.likes import Likes
from lofitui.tui import backend as backend_module
from lofitui.tui.app import create_app
from lofitui.tui.history import PromptHistory
from lofitui.tui.screens import LikesScreen
from lofitui.tui.widgets import NowPlayingView, QueuePanel


async def test_like_likes_view_and_dislike_on_the_real_scheduler(tui_env, monkeypatch):
    monkeypatch.setattr(backend_module, "open_player", lambda _: (None, "test: no audio device"))
    settings = build_settings(Config(engine="synth", duration=5.0, lookahead=1), {})
    app = create_app(settings, history=PromptHistory())
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(NowPlayingView)
        await wait_for(lambda: view.job is not None)
        first = view.job
        key = first.request.key
        await pilot.press("l")
        await wait_for(lambda: view.job is not None and view.job.liked)
        assert "♥ liked · synth · builtin" in text_of(app.query_one("#np-meta"))
        queue = text_of(app.query_one(QueuePanel).query_one("#queue-rows"))
        assert f"♥ seed {first.request.seed}" in queue
        assert Likes.load().is_liked(key), "saved at once, in the state directory"
        await wait_for(lambda: view.job.path is not None)  # complete, in the cache

        await pilot.press("L")
        assert isinstance(app.screen, LikesScreen)
        options = app.screen.query_one(OptionList)
        assert options.option_count == 1 and options.highlighted_option.id == key
        await pilot.press("enter")  # play it again: it takes over from the cache
        await wait_for(lambda: view.job and view.job.id != first.id and view.job.request.key == key)
        assert not isinstance(app.screen, LikesScreen) and view.job.liked
        replay = view.job

        await pilot.press("x")
        await wait_for(lambda: view.job is not None and view.job.id != replay.id)
        assert view.job.request.seed != first.request.seed
        store = Likes.load()
        assert not store.is_liked(key) and first.request.seed in store.disliked_seeds(TUI_PROMPT)
        await pilot.press("L")
        empty = app.screen.query_one("#likes-empty")
        assert "No liked tracks on this station yet: press l" in text_of(empty)
        await pilot.press("q", "q")  # the view, then the app
    assert app.scheduler is None


def _likes_file(where: Path) -> Likes:
    """Two likes of the test station, made at fixed times (UTC), read back as a restart would."""
    likes = [
        (TrackRequest(TUI_PROMPT, 30.0, 4821, "musicgen", "musicgen-small", {}), 1764536640.0),
        (
            TrackRequest(TUI_PROMPT, 45.0, 90210, "musicgen", "musicgen-small", {"top_k": 50}),
            1764623400.0,
        ),
    ]
    data = {
        "version": 1,
        "stations": {
            TUI_PROMPT: {
                "liked": [
                    {
                        "key": r.key,
                        "request": r.to_dict(),
                        "params": dict(r.params),
                        "liked_at": at,
                    }
                    for r, at in likes
                ],
                "disliked": [],
            }
        },
    }
    where.mkdir(parents=True)
    (where / "likes.json").write_text(json.dumps(data))
    return Likes(where)


async def test_likes_view_keys(tui_env):
    fake = FakeScheduler()
    fake.likes = _likes_file(tui_env / "likes")
    newest, oldest = fake.likes.liked(TUI_PROMPT)
    app = make_app(FakeBackend(fake))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        fake.calls.clear()
        await pilot.press("l", "x", "L")
        assert fake.calls == [("like_current",), ("dislike_current",)]
        assert isinstance(app.screen, LikesScreen)
        await pilot.press("delete")
        assert fake.calls[-1] == ("unlike", newest.key)
        await pilot.press("enter")
        assert fake.calls[-1] == ("play_liked", oldest.key)
        assert not isinstance(app.screen, LikesScreen)
        await pilot.press("L", "L")  # the same key closes it
        assert not isinstance(app.screen, LikesScreen)


@pytest.fixture
def utc():
    """Local time is UTC (the likes view shows when each like was made)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_snapshot_likes(tui_env, snap_compare, utc):
    fake = FakeScheduler()
    fake.likes = _likes_file(tui_env / "likes")
    app = create_app(config=Config(), backend=FakeBackend(fake), history=PromptHistory([]))

    async def run_before(pilot) -> None:
        await started(pilot, app)
        fake.emit(*tui_playing_events(position=12.0))
        fake.emit(JobChanged(replace(tui_job(1, "playing"), liked=True)))  # ♥ in the queue
        await pilot.press("L")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
