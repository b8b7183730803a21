"""The app on the real pipeline: tiny MusicGen fixture → scheduler → cache → player.

One headless Pilot test (no audio device: the scheduler plays silently) that also checks the
UI answers keys quickly while a generation runs, and one test of the real ``lofi`` command in a
real terminal (tmux) playing into the test sound server, recorded from the sink's monitor.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from musicgen_fixture import require_fixture
from textual import events

from lofitui.cli import build_parser
from lofitui.config import Config, build_settings
from lofitui.tui import backend as backend_module
from lofitui.tui.app import create_app
from lofitui.tui.history import PromptHistory
from lofitui.tui.widgets import NowPlayingView, QueuePanel, StatusBar

LOFI = Path(sys.executable).with_name("lofi")


async def wait_for(predicate, timeout: float = 20.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


async def test_real_pipeline_plays_and_keys_stay_responsive(tui_env, monkeypatch):
    monkeypatch.setattr(backend_module, "open_player", lambda _: (None, "test: no audio device"))
    args = build_parser().parse_args(["--model", str(require_fixture()), "--duration", "3"])
    settings = build_settings(Config(lookahead=1), vars(args))
    app = create_app(settings, history=PromptHistory())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(lambda: app.query_one(NowPlayingView).job is not None)
        assert app.query_one(StatusBar).state in ("playing", "tuning in")
        assert not app.query_one(StatusBar).audio
        scheduler = app.scheduler
        assert scheduler is not None and not scheduler.has_audio_output
        # a long track keeps the engine busy; volume keys must still land at once
        scheduler.set_station(
            type(scheduler.station)(**{**scheduler.station.__dict__, "duration_s": 600.0})
        )
        queue = app.query_one(QueuePanel)
        await wait_for(lambda: any(j.progress and j.progress.done > 0 for j in scheduler.jobs))
        latencies = []
        for i in range(20):
            key = "minus" if i % 2 else "plus"
            before = app.query_one(StatusBar).volume
            t0 = time.perf_counter()
            app.post_message(events.Key(key, None))  # as the terminal driver does
            await wait_for(lambda b=before: app.query_one(StatusBar).volume != b, 5.0, 0.001)
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)
        assert any(str(j.state) == "generating" or j.streaming for j in queue.jobs.values())
        median = statistics.median(latencies)
        print(
            f"keypress → screen while generating: median {median * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
        assert median < 0.25
        await pilot.press("n", "q")
    assert app.scheduler is None
    leftovers = [p for p in (tui_env / "cache").rglob("*") if p.suffix in (".part", ".tmp")]
    assert leftovers == []


# -- a real terminal --------------------------------------------------------------------------


def _pane(tmux: list[str], session: str) -> str:
    return subprocess.run(
        [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


def _wait_pane(tmux: list[str], session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _pane(tmux, session)
        if text in screen:
            return screen
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")


@pytest.mark.tmux
@pytest.mark.sound
def test_lofi_in_tmux_plays_audio(tui_env, sound_server):
    if shutil.which("tmux") is None or shutil.which("parec") is None:
        pytest.fail("tmux and parec (pulseaudio-utils) are needed: .ci/run installs them")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TMUX")},
        "XDG_CONFIG_HOME": str(tui_env / "config"),
        "XDG_STATE_HOME": str(tui_env / "state"),
        "XDG_CACHE_HOME": str(tui_env / "cache"),
        "XDG_DATA_HOME": str(tui_env / "data"),
        "XDG_MUSIC_DIR": str(tui_env / "music"),
        "LOFI_MODELS_DIR": str(tui_env / "models"),
        "TERM": "xterm-256color",
        **sound_server.env,
    }
    session = f"lofi-test-{os.getpid()}"
    socket = str(tui_env / "tmux.sock")
    tmux = ["tmux", "-S", socket]
    command = f"{LOFI} --model {require_fixture()} --duration 4"
    recording = tui_env / "monitor.f32"
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command],
        env=env,
        check=True,
    )
    recorder = None
    try:
        _wait_pane(tmux, session, "♫ lofi")
        with recording.open("wb") as out:
            recorder = subprocess.Popen(
                [
                    "parec",
                    "--device=ci_sink.monitor",
                    "--format=float32le",
                    "--rate=48000",
                    "--channels=2",
                    "--raw",
                ],
                stdout=out,
                env=env,
            )
            screen = _wait_pane(tmux, session, "·  playing", timeout=40)
            assert "▶ playing" in screen and "seed" in screen
            time.sleep(1.5)
            subprocess.run([*tmux, "send-keys", "-t", session, "space"], check=True)
            _wait_pane(tmux, session, "·  paused")
            subprocess.run([*tmux, "send-keys", "-t", session, "space", "+"], check=True)
            _wait_pane(tmux, session, "85%")
            subprocess.run([*tmux, "send-keys", "-t", session, "n"], check=True)
            time.sleep(1.0)
            recorder.terminate()
            recorder.wait(5)
        subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alive = subprocess.run([*tmux, "has-session", "-t", session], capture_output=True)
            if alive.returncode != 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"lofi did not quit on q:\n{_pane(tmux, session)}")
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    audio = np.frombuffer(recording.read_bytes(), dtype=np.float32)
    assert audio.size > 48000 * 2  # over a second recorded
    windows = audio[: audio.size // 4800 * 4800].reshape(-1, 4800)  # 50 ms windows
    loud = np.sqrt((windows**2).mean(axis=1)) > 1e-3
    assert loud.sum() >= 10, "no audio reached the sound server"
