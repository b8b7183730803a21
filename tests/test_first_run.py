"""The first minute on a fresh machine: the built-in synth plays at once, online or not, and the
model downloads behind it (from the local hub server) until the station hands over to it at a
track boundary. Real parts throughout: the real `lofi` in tmux into the test sound server, and
the app's real backend, scheduler, engines and downloader under Pilot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.capture_analysis import AUDIBLE_DBFS
from bench.streambench import Monitor
from hubserver import FakeHub
from musicgen_fixture import require_fixture
from test_tui_live import _pane, _wait_pane

from lofitui.config import Config, build_settings
from lofitui.events import JobState, NowPlaying, StationChanged
from lofitui.models import store
from lofitui.models.catalog import DEFAULT_MODELS, get_entry
from lofitui.tui import backend as backend_module
from lofitui.tui.app import create_app
from lofitui.tui.history import PromptHistory
from lofitui.tui.screens import FirstRunScreen
from lofitui.tui.widgets import StatusBar

ROOT = Path(__file__).resolve().parent.parent
# Issue #14 asks for music within 2 s of launch; this guard is looser so that a loaded CI
# machine does not fail it by chance (the figure printed is the one to compare with 2 s).
FIRST_SOUND_LIMIT_S = 6.0


@pytest.mark.tmux
@pytest.mark.sound
def test_a_fresh_home_without_network_plays_the_synth_within_two_seconds(tmp_path, sound_server):
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "HF_", "LOFI_"))},
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_MUSIC_DIR": str(home / "Music"),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there: no network
        "PYTHONPATH": str(ROOT),
        "TERM": "xterm-256color",
        **sound_server.env,
    }
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    session = f"lofi-first-{os.getpid()}"
    command = f"cd {ROOT} && exec {sys.executable} -m lofitui"
    with Monitor(tmp_path) as monitor:  # the session's sound server (marker `sound`)
        launched = time.monotonic()
        subprocess.run(
            [*tmux, "new-session", "-d", "-s", session, "-x", "110", "-y", "32", command],
            env=env,
            check=True,
        )
        try:
            heard = monitor.wait_audible(launched, 20.0, AUDIBLE_DBFS)
            screen = _wait_pane(tmux, session, "built-in synth")
            assert DEFAULT_MODELS["musicgen"] in screen, screen
            subprocess.run([*tmux, "send-keys", "-t", session, "y"], check=True)
            screen = _wait_pane(tmux, session, "by hand")  # no network: how to install it
            assert "--model" in screen and "Traceback" not in screen, screen
            time.sleep(1.0)
            still = monitor.wait_audible(time.monotonic() - 0.5, 5.0, AUDIBLE_DBFS)
            assert still, "the synth plays on after the failed download"
            subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True)
            deadline = time.monotonic() + 15
            while subprocess.run([*tmux, "has-session", "-t", session]).returncode == 0:
                assert time.monotonic() < deadline, _pane(tmux, session)
                time.sleep(0.1)
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True)
    first_sound = heard - launched
    print(f"fresh home, no network: launch → first sound {first_sound:.2f} s")
    assert first_sound <= FIRST_SOUND_LIMIT_S
    models = home / ".local/share/lofi/models"
    assert not [p for p in models.rglob("*") if p.is_file() and p.stat().st_size > 0]


def _fixture_file(model: str, name: str) -> Path:
    """The tiny MusicGen fixture's file ``name`` in ``model``'s precision (fp16 graphs for an
    fp16 entry, the configs and tokenizer from the fixture's root)."""
    fixture = require_fixture()
    half = fixture / "fp16" / name
    return half if "fp16" in model and half.exists() else fixture / name


def _serve_fixture_as(hub: FakeHub, model: str) -> None:
    """Serve the tiny MusicGen fixture under the catalog entry ``model``'s file names."""
    entry = get_entry(model)
    files = {f.remote: _fixture_file(model, f.local).read_bytes() for f in entry.files}
    hub.add_repo_at(entry.repo, files, entry.revision)


async def _until(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_the_download_completes_behind_the_synth_and_hands_over_at_a_boundary(
    fake_hub: FakeHub, monkeypatch
):
    model = DEFAULT_MODELS["musicgen"]
    _serve_fixture_as(fake_hub, model)
    monkeypatch.setattr(backend_module, "open_player", lambda _: (None, "test: silent playback"))
    # no crossfade: a track that plays to its end reaches its full length
    config = Config(lookahead=1, crossfade=0.0)
    settings = build_settings(config, {"duration": 5.0, "threads": 1})
    app = create_app(settings, history=PromptHistory())
    seen: list = []
    async with app.run_test(size=(110, 32)) as pilot:
        await _until(lambda: app.scheduler and app.scheduler.station, "the synth to start")
        scheduler = app.scheduler
        scheduler.subscribe(seen.append)
        assert scheduler.station.engine == "synth"
        await _until(lambda: isinstance(app.screen, FirstRunScreen), "the offer")
        status = app.query_one(StatusBar)
        shown: list[str] = []

        async def sample() -> None:  # what the status bar says, every few milliseconds
            while True:
                if not shown or shown[-1] != status.download:
                    shown.append(status.download)
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        await pilot.press("y")
        await _until(lambda: scheduler.station.engine == "musicgen", "the hand-over")
        await _until(
            lambda: (
                scheduler.current is not None and scheduler.current.station.engine == "musicgen"
            ),
            "the first MusicGen track to play",
        )
        sampler.cancel()
        assert status.download == ""
        assert any(t.startswith(f"↓ {model}") for t in shown), shown
        assert f"↻ preparing {model}" in shown, shown
        changed = [e.station.engine for e in seen if isinstance(e, StationChanged)]
        assert changed[-1] == "musicgen"
        # the synth track before it played to its end: the switch fell on a track boundary
        played = [
            j
            for j in scheduler.history
            if j.station.engine == "synth" and j.state is JobState.PLAYED
        ]
        assert played, "a synth track played while the model downloaded"
        last = played[-1]
        positions = [
            e.position_s for e in seen if isinstance(e, NowPlaying) and e.track_id == last.id
        ]
        reached = max(positions, default=0.0)
        assert reached >= last.request.duration_s - 0.3, f"cut at {reached:.2f} s"
        await pilot.press("q")
    installed = store.model_dir(model)
    for f in get_entry(model).files:
        served = _fixture_file(model, f.local).read_bytes()
        assert (installed / f.local).read_bytes() == served, f.local
