"""The app with a fake scheduler: every binding, the prompt, themes, help, errors, first run."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import threading
from pathlib import Path

import pytest
from rich.console import Console
from rich.style import Style
from textual import events
from textual.color import Color
from textual.widgets import Input, Static
from tui_fakes import (
    TUI_PROMPT,
    FakeBackend,
    FakeScheduler,
    tui_job,
    tui_playing_events,
)

from lofitui.config import Config, load_config
from lofitui.engines.base import Progress
from lofitui.errors import ModelError
from lofitui.events import JobChanged, JobProgress, Notice, NowPlaying, StationChanged
from lofitui.keymap import BINDING_IDS, KEYS
from lofitui.models.catalog import get_entry
from lofitui.models.download import DownloadProgress
from lofitui.tui.app import LofiApp, create_app
from lofitui.tui.backend import MissingModel
from lofitui.tui.history import PromptHistory
from lofitui.tui.messages import SchedulerUpdate
from lofitui.tui.screens import ErrorScreen, FirstRunScreen, HelpScreen
from lofitui.tui.widgets import NowPlayingView, PromptInput, QueuePanel, StatusBar
from lofitui.tui.widgets.format import bar, stream_bar
from lofitui.tui.widgets.now_playing import TrackProgress

SIZE = (100, 30)


def make_app(backend: FakeBackend | None = None, config: Config | None = None, **kw) -> LofiApp:
    return create_app(
        config=config or Config(),
        backend=backend or FakeBackend(),
        history=PromptHistory(["older prompt", "newer prompt"]),
        **kw,
    )


async def started(pilot, app: LofiApp) -> FakeScheduler:
    """Wait for the start-up pipeline to attach the (fake) scheduler."""
    for _ in range(200):
        if app.scheduler is not None:
            await pilot.pause()
            return app.scheduler  # type: ignore[return-value]
        await asyncio.sleep(0.01)
    raise AssertionError("the app never attached its scheduler")


def text_of(widget, width: int = 400) -> str:
    """What a widget shows, as plain text."""
    content = widget.content if isinstance(widget, Static) else widget.render()
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(content)
    return capture.get()


def toasts(app: LofiApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_startup_attaches_scheduler_and_tunes_in(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        assert fake.started
        assert fake.calls[0] == ("set_volume", 0.8)
        assert fake.calls[1][0] == "set_station"
        assert app.focused is None  # keys drive the player, not the prompt
        assert "on air" in text_of(app.query_one("#station-prompt"))


async def test_player_bindings_call_the_scheduler(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.calls.clear()
        await pilot.press("space", "n", "r", "m")
        await pilot.pause()
        assert fake.calls == [
            ("toggle_pause",),
            ("skip",),
            ("regenerate", "current"),
            ("toggle_mute",),
        ]
        assert app.query_one(StatusBar).muted


async def test_volume_keys_step_and_clamp(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        await pilot.press("plus", "equals_sign")
        assert fake.volume == pytest.approx(0.9)
        await pilot.press(*["plus"] * 5)
        assert fake.volume == 1.0
        await pilot.press("minus", "minus")
        assert fake.volume == pytest.approx(0.9)
        assert app.query_one(StatusBar).volume == pytest.approx(0.9)


async def test_save_shows_where_in_a_toast(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        await pilot.press("s")
        await pilot.pause()
        assert ("save_current",) in fake.calls
        assert any("lofi-hip-hop-beat-4821.wav" in t for t in toasts(app))


async def test_save_with_nothing_playing_says_why(tui_env):
    from lofitui.errors import LofiError

    class NothingPlaying(FakeScheduler):
        def save_current(self):
            raise LofiError("nothing is playing: there is no track to save")

    app = make_app(FakeBackend(NothingPlaying()))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("s")
        assert any("nothing is playing" in t for t in toasts(app))


async def test_prompt_focus_submit_and_history(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        await pilot.press("slash")
        assert isinstance(app.focused, PromptInput)
        # player keys typed into the prompt are text, not actions
        await pilot.press(*"jazz n q")
        assert app.query_one(PromptInput).value == "jazz n q"
        assert ("skip",) not in fake.calls and app.is_running
        await pilot.press("enter")
        await pilot.pause()
        assert fake.calls[-1] == ("set_station", "jazz n q")
        assert app.focused is None
        assert "jazz n q" in text_of(app.query_one("#station-prompt"))
        # i focuses too; Up/Down walk the history, Down past the newest restores the draft
        await pilot.press("i", *"dr", "up")
        prompt = app.query_one(PromptInput)
        assert prompt.value == "jazz n q"
        await pilot.press("up")
        assert prompt.value == "newer prompt"
        await pilot.press("down", "down")
        assert prompt.value == "dr"
        await pilot.press("escape")
        assert app.focused is None


def burst(app: LofiApp, *keys: str) -> None:
    """Queue ``keys`` at once, as the terminal driver does for one read of typed input."""
    for key in keys:
        char = {"slash": "/", "space": " "}.get(key, key if len(key) == 1 else None)
        app.post_message(events.Key(key, char))


@pytest.mark.parametrize("opener", ["slash", "i"])
async def test_keys_in_the_same_burst_as_the_prompt_key_are_text(tui_env, opener):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.calls.clear()
        theme = app.theme
        burst(app, opener, *"tango", "space", *"q/nsi")
        await pilot.pause()
        await pilot.pause()
        assert app.query_one(PromptInput).value == "tango q/nsi"
        assert isinstance(app.focused, PromptInput)
        assert app.theme == theme and fake.calls == [] and app.is_running
        await pilot.press("escape")
        burst(app, "slash", "q")  # "/q" in one read: text, not quit
        await pilot.pause()
        await pilot.pause()
        assert app.query_one(PromptInput).value == "q"  # focusing selects the old text
        assert app.is_running
        await pilot.press("escape", "n")  # after Esc the keys drive the player again
        await pilot.pause()
        assert fake.calls == [("skip",)]
        # pilot's own key sequence, one key at a time
        await pilot.press("slash", "t", "a", "n", "g", "o")
        assert app.query_one(PromptInput).value == "tango"
        assert app.theme == theme and fake.calls == [("skip",)]


async def test_remapped_prompt_key_also_takes_the_burst(tui_env):
    app = make_app(config=Config(keymap={"lofi.prompt": "p"}))
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.calls.clear()
        burst(app, "p", "n", "q")
        await pilot.pause()
        await pilot.pause()
        assert app.query_one(PromptInput).value == "nq"
        assert fake.calls == [] and app.is_running


async def test_prompt_key_is_plain_text_in_dialogs(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("slash")
        await pilot.pause()
        assert app.query_one(PromptInput).value == "" and not isinstance(app.focused, PromptInput)


async def test_theme_cycles_and_persists(tui_env):
    config_path = tui_env / "config" / "lofi" / "config.toml"
    app = create_app(backend=FakeBackend(), config_path=config_path, history=PromptHistory())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.theme == "lofi"
        await pilot.press("t")
        assert app.theme == "midnight"
        await app.workers.wait_for_complete()
    assert load_config(config_path).config.theme == "midnight"
    assert "# engine = " in config_path.read_text()  # the commented defaults are kept
    again = create_app(backend=FakeBackend(), config_path=config_path, history=PromptHistory())
    async with again.run_test(size=SIZE) as pilot:
        assert again.theme == "midnight"
        await pilot.press("t", "t")
        assert again.theme == "lofi"


async def test_help_lists_every_binding(tui_env):
    app = make_app(config=Config(keymap={"lofi.skip": "k"}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = text_of(app.screen.query_one("#help-keys"))
        for spec in KEYS:
            assert spec.id in text and spec.help in text
        assert "k " in text  # the remapped key is shown
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_keymap_remaps_by_id(tui_env):
    app = make_app(config=Config(keymap={"lofi.skip": "k,right"}))
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.calls.clear()
        await pilot.press("n", "k", "right")
        assert fake.calls == [("skip",), ("skip",)]


async def test_bindings_have_unique_ids_and_keys():
    assert len(set(BINDING_IDS)) == len(BINDING_IDS)
    keys = [k for spec in KEYS for k in spec.keys.split(",")]
    assert len(set(keys)) == len(keys)


async def test_quit_closes_the_scheduler(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        await pilot.press("q")
    assert fake.closed
    assert app.return_value == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
async def test_quit_signals_take_the_quit_path(tui_env, signum):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        os.kill(os.getpid(), signum)
        for _ in range(300):
            if fake.closed:
                break
            await asyncio.sleep(0.01)
    assert fake.closed
    assert app.return_value == 128 + signum
    assert signal.getsignal(signum) == signal.SIG_DFL  # handed back when the app ends


async def test_events_reach_the_widgets(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.emit(*tui_playing_events(position=12.0))
        await pilot.pause()
        now = app.query_one(NowPlayingView)
        assert now.job is not None and now.job.id == "job-1"
        assert "seed 5932" in text_of(app.query_one("#np-meta"))
        assert len(app.query_one("LevelMeter").levels) == 120
        queue = app.query_one(QueuePanel)
        assert [j.id for j in queue.ordered()] == ["job-1", "job-2", "job-3"]
        rows = text_of(queue.query_one("#queue-rows"))
        assert "42%" in rows and "61 tok/s" in rows and "0:14 left" in rows
        assert app.query_one(StatusBar).state == "playing"
        # a failure shows why; played and cancelled jobs leave the panel
        fake.emit(
            JobChanged(tui_job(2, "failed", error="engine error: out of memory")),
            JobChanged(tui_job(3, "cancelled")),
            Notice("track failed: out of memory", "error"),
        )
        await pilot.pause()
        rows = text_of(queue.query_one("#queue-rows"))
        assert "engine error: out of memory" in rows
        assert [j.id for j in queue.ordered()] == ["job-1", "job-2"]
        assert any("out of memory" in t for t in toasts(app))


def test_progress_and_playback_messages_coalesce():
    a = SchedulerUpdate(JobProgress("job-1", Progress(1, 10, "token")))
    b = SchedulerUpdate(JobProgress("job-1", Progress(2, 10, "token")))
    other = SchedulerUpdate(JobProgress("job-2", Progress(2, 10, "token")))
    assert a.can_replace(b) and not a.can_replace(other)
    p = SchedulerUpdate(NowPlaying(None, 0.0, 0.0, False))
    assert p.can_replace(SchedulerUpdate(NowPlaying(None, 0.1, 0.0, False)))


async def test_no_audio_output_is_said_and_app_keeps_going(tui_env):
    backend = FakeBackend(audio_problem="no audio output device found")
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        assert not app.query_one(StatusBar).audio
        assert any("no audio output device found" in t for t in toasts(app))
        await pilot.press("s")
        assert ("save_current",) in fake.calls


async def test_startup_failure_shows_error_and_quits(tui_env):
    app = make_app(FakeBackend(fail=ModelError("model 'x' not found: no such directory")))
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            if isinstance(app.screen, ErrorScreen):
                break
            await asyncio.sleep(0.01)
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)
        assert "no such directory" in text_of(app.screen.query_one("#error-message"))
        await pilot.press("q")
    assert app.return_value == 1


async def test_config_warnings_are_shown(tui_env):
    path = tui_env / "config.toml"
    path.write_text('volume = 3\ntheme = "nope"\n')
    app = create_app(backend=FakeBackend(), config_path=path, history=PromptHistory())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        shown = " ".join(toasts(app))
        assert "volume must be" in shown and "theme 'nope' not found" in shown
        assert app.theme == "lofi"


# -- first run ------------------------------------------------------------------------------------


def missing_small(tmp: Path) -> MissingModel:
    entry = get_entry("musicgen-small")
    return MissingModel(entry, tmp / "models" / entry.name, "not installed")


async def first_run_screen(pilot, app) -> FirstRunScreen:
    for _ in range(200):
        if isinstance(app.screen, FirstRunScreen):
            await pilot.pause()
            return app.screen
        await asyncio.sleep(0.01)
    raise AssertionError("no first-run dialog")


async def until_true(pilot, predicate, what: str, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            await pilot.pause()
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_first_run_plays_the_synth_and_downloads_in_the_background(tui_env):
    gate = threading.Event()

    def download(entry, progress, cancel):
        total = entry.size
        for i in range(1, 5):
            progress(DownloadProgress("decoder_model.onnx", i, 4, total * i // 4, total))
            if i == 2:
                gate.wait(5)
        return tui_env / "models" / entry.name

    backend = FakeBackend(missing=missing_small(tui_env), download=download)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)  # the music starts before anything is asked
        assert backend.built_for is None
        assert fake.station.engine == "synth"
        screen = await first_run_screen(pilot, app)
        text = " ".join(text_of(s) for s in screen.query("Static"))
        assert "built-in synth" in text and "musicgen-small" in text
        assert "2.3 GB" in text  # its size
        assert str(tui_env / "models" / "musicgen-small") in text  # its destination
        await pilot.click("#download")
        assert not isinstance(app.screen, FirstRunScreen), "the dialog closes at once"
        status = app.query_one(StatusBar)
        await until_true(pilot, lambda: "50%" in status.download, "progress in the status bar")
        assert "↓ musicgen-small" in status.download
        gate.set()
        await until_true(
            pilot, lambda: ("hand_over", "musicgen", TUI_PROMPT) in fake.calls, "hand-over"
        )
        assert backend.downloaded == ["musicgen-small"]
        assert status.download == ""
        assert any("moves to it after this track" in t for t in toasts(app))
        fake.emit(StationChanged(fake.handing_over_to))
        await pilot.pause()
        assert any("now playing musicgen" in t for t in toasts(app))
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, FirstRunScreen)  # installed now: nothing to offer


async def test_first_run_no_network_says_how_to_install_by_hand(tui_env):
    attempts = []

    def download(entry, progress, cancel):
        attempts.append(1)
        raise ModelError(f"cannot download model {entry.name!r}: cannot reach huggingface.co")

    backend = FakeBackend(missing=missing_small(tui_env), download=download)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        await first_run_screen(pilot, app)
        await pilot.press("y")
        await until_true(pilot, lambda: any("by hand" in t for t in toasts(app)), "the failure")
        shown = " ".join(toasts(app))
        assert "--model DIR" in shown and str(tui_env / "models" / "musicgen-small") in shown
        assert "cannot reach huggingface.co" in shown and "press d" in shown
        assert shown.index("by hand") < shown.index("cannot reach"), "what to do comes first"
        assert fake.started and not fake.closed, "the synth plays on"
        await pilot.press("d")  # ask again: the dialog, then a second try
        await first_run_screen(pilot, app)
        await pilot.press("y")
        await until_true(pilot, lambda: len(attempts) == 2, "the retry")
        await pilot.press("q")
    assert app.return_value == 0


async def test_first_run_decline_is_remembered_until_asked_again(tui_env):
    backend = FakeBackend(missing=missing_small(tui_env), download=lambda *a: None)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        await first_run_screen(pilot, app)
        await pilot.press("escape")
        assert not isinstance(app.screen, FirstRunScreen)
        assert fake.started and not fake.closed, "declining keeps the synth playing"
    assert backend.downloaded == []

    again = make_app(FakeBackend(missing=missing_small(tui_env), download=lambda *a: None))
    async with again.run_test(size=SIZE) as pilot:
        await started(pilot, again)
        await pilot.pause(0.2)
        assert not isinstance(again.screen, FirstRunScreen), "not asked again at start-up"
        assert any("press d to download musicgen-small" in t for t in toasts(again))
        await pilot.press("d")
        await first_run_screen(pilot, again)


async def test_progress_flood_keeps_the_ui_current(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.emit(JobChanged(tui_job(2, "generating")))
        for i in range(1, 501):
            fake.emit(JobProgress("job-2", Progress(i, 500, "token", eta_s=0.0, rate=500.0)))
        await pilot.pause()
        assert app.query_one(QueuePanel).progress["job-2"].done == 500
        assert isinstance(app.query_one(PromptInput), Input)


# -- streaming: a track handed to the player while it is still being generated ------------------

BAR = re.compile(r"(━*)(╸?)(─*)(╌*)")


def progress_bar(app: LofiApp) -> tuple[str, str, str, str, str]:
    """The now-playing line split up: (line, played, generated-ahead, to-come, note)."""
    line = text_of(app.query_one(TrackProgress)).rstrip()
    match = max(BAR.finditer(line), key=lambda m: len(m.group(0)))
    played = match.group(1) + match.group(2)
    _total, *note = line[match.end() :].split(" · ", 1)  # "0:30 · 0:18 generated"
    return line, played, match.group(3), match.group(4), "".join(note)


def test_stream_bar_parts_and_glyphs():
    plain = Style()
    assert stream_bar(0.4, 0.6, 20, plain, plain, plain).plain == "━" * 8 + "─" * 4 + "╌" * 8
    assert stream_bar(0.425, 0.6, 20, plain, plain, plain).plain == "━" * 8 + "╸" + "───╌" + "╌" * 7
    # the playhead is never ahead of what exists; complete, it is the plain bar
    assert stream_bar(0.5, 0.3, 20, plain, plain, plain).plain == "━" * 10 + "╌" * 10
    assert stream_bar(0.4, 1.0, 20, plain, plain, plain).plain == bar(0.4, 20, plain, plain).plain
    # what is still to come shows until the very end (rounded down)
    assert stream_bar(0.5, 0.99, 20, plain, plain, plain).plain.endswith("─╌")
    styles = Style(color="red"), Style(color="green"), Style(color="blue")
    spans = {(s.start, s.end, str(s.style)) for s in stream_bar(0.4, 0.6, 20, *styles).spans}
    assert spans == {(8, 12, "green"), (12, 20, "blue")}


async def test_streaming_track_shows_what_is_generated_ahead(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.emit(*tui_playing_events(position=12.0, generated=18.0))
        await pilot.pause()
        line, played, ahead, to_come, note = progress_bar(app)
        width = len(played) + len(ahead) + len(to_come)
        assert line.startswith("▶") and "0:12" in line and "0:30" in line
        plain = Style()
        assert played and ahead and to_come and note == "0:18 generated"
        assert played + ahead + to_come == stream_bar(12 / 30, 18 / 30, width, *[plain] * 3).plain
        assert app.query_one(StatusBar).state == "playing"
        rows = text_of(app.query_one(QueuePanel).query_one("#queue-rows"))
        lines = rows.splitlines()
        assert "▶ playing" in lines[0]
        assert "∿ streaming" in lines[1] and "0:18 / 0:30" in lines[1] and "98 tok/s" in lines[1]
        assert "◐ generating" in lines[2] and "42%" in lines[3]
        assert rows.count("streaming") == 1
        # generation moves on: a JobChanged carries the playing job's new frontier
        fake.emit(JobChanged(tui_job(1, "playing", generated_s=24.0)))
        await pilot.pause()
        _, played, ahead, to_come, note = progress_bar(app)
        assert len(played + ahead) == width * 24 // 30 and note == "0:24 generated"
        assert "0:24 / 0:30" in text_of(app.query_one(QueuePanel).query_one("#queue-rows"))
        # an older playback snapshot does not take it back
        fake.emit(NowPlaying("job-1", 12.5, 30.0, False, tui_job(1, "playing", generated_s=18.0)))
        await pilot.pause()
        assert len(progress_bar(app)[1] + progress_bar(app)[2]) == width * 24 // 30
        # complete: the bar is the plain one again and the queue row just plays
        fake.emit(JobChanged(tui_job(1, "playing")))
        await pilot.pause()
        line, played, ahead, to_come, note = progress_bar(app)
        assert not to_come and not note
        assert played + ahead == bar(12.5 / 30, len(played + ahead), plain, plain).plain
        rows = text_of(app.query_one(QueuePanel).query_one("#queue-rows"))
        assert "streaming" not in rows and "▶ playing" in rows


async def test_buffering_replaces_playing(tui_env):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.emit(*tui_playing_events(position=18.0, generated=18.0, buffering=True))
        await pilot.pause()
        line, _played, ahead, to_come, note = progress_bar(app)
        assert line.startswith("◌") and note == "buffering…"
        assert not ahead and to_come  # the playhead is at the frontier
        assert app.query_one(StatusBar).state == "buffering"
        await pilot.press("space")  # pausing shows paused; resuming shows buffering again
        assert app.query_one(StatusBar).state == "paused"
        await pilot.press("space")
        assert app.query_one(StatusBar).state == "buffering"
        job = tui_job(1, "playing", generated_s=21.0)
        fake.emit(NowPlaying("job-1", 18.1, 30.0, False, job))
        await pilot.pause()
        line, *_, note = progress_bar(app)
        assert line.startswith("▶") and note == "0:21 generated"
        assert app.query_one(StatusBar).state == "playing"


async def test_stream_bar_is_legible_in_every_theme(tui_env):
    """Played, generated and to-come: each a clear step apart, in every built-in theme."""

    def contrast(a: Color, b: Color) -> float:
        def luminance(c: Color) -> float:
            def channel(v: int) -> float:
                v /= 255
                return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

            return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)

        high, low = sorted((luminance(a), luminance(b)), reverse=True)
        return (high + 0.05) / (low + 0.05)

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake = await started(pilot, app)
        fake.emit(*tui_playing_events(position=12.0, generated=18.0))
        assert set(app.loaded_themes.names) >= {"lofi", "midnight", "paper"}
        for theme in app.loaded_themes.names:
            app.theme = theme
            await pilot.pause()
            progress = app.query_one(TrackProgress)
            background = progress.background_colors[1]
            played, generated, ahead = (
                Color.from_rich_color(
                    progress.get_component_rich_style(f"track-progress--{p}").color
                )
                for p in ("filled", "generated", "ahead")
            )
            assert contrast(played, background) >= 4.5, theme
            assert contrast(played, generated) >= 1.4, theme
            assert contrast(generated, ahead) >= 1.4, theme
            assert contrast(ahead, background) >= 1.4, theme
