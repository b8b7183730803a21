"""Fault injection for issue #13: full disks, models whose configs disagree with their graphs, odd
output directories, a crash inside the app. Each case runs the real ``lofi`` (a subprocess, or
``main()`` where the moment of the fault must be observed) and checks the exit status, the one
line, no traceback, and what is left on disk afterwards.

A full disk is real: a tmpfs of a few hundred KB is mounted for the test (the kernel then
answers ``ENOSPC`` to the very write that does not fit). Mounting needs root; CI runs as root
(``.ci/run`` installs its packages with apt-get), and elsewhere these tests fail saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_helpers import run_lofi
from musicgen_fixture import require_fixture

from lofitui.audio.wav import read_wav
from lofitui.cli import main
from lofitui.engines.musicgen import MusicGenEngine
from lofitui.engines.runtime import RuntimeOptions
from lofitui.library import TrackCache, files
from lofitui.scheduler import JobInfo, JobState, Notice, Scheduler, Station

ROOT = Path(__file__).resolve().parent.parent
ACESTEP_TURBO = ROOT / "tests" / "fixtures" / "acestep-tiny" / "turbo"
PAGE = os.sysconf("SC_PAGE_SIZE")
RENDER = ("--render", "piano", "--duration", "5", "--seed", "1")


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A real tmpfs of ``size`` bytes (whole pages) mounted on ``path`` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "lofi-test", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.fail(
            f"cannot mount a test tmpfs ({mount.stderr.strip()}): the disk-full tests need "
            "root, as CI has",
            pytrace=False,
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def pages(size: int) -> int:
    return math.ceil(size / PAGE)


def listing(directory: Path) -> list[str]:
    """Every name in ``directory``, hidden temp files included."""
    return sorted(os.listdir(directory))


def the_error(stderr: str) -> str:
    """The one ``lofi:`` line of a failed render (the progress bars are the other lines)."""
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("lofi:")]
    assert len(lines) == 1, stderr
    assert stderr.rstrip().endswith(lines[0]), stderr  # and it is the last word
    return lines[0]


@pytest.fixture(scope="module")
def track_sizes(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int]:
    """The bytes of one rendered track (WAV, sidecar), measured by rendering it."""
    home = tmp_path_factory.mktemp("calibration")
    env = {"XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "config")}
    result = run_lofi(*RENDER, "--model", str(require_fixture()), "--out", "out", cwd=home, env=env)
    assert result.returncode == 0, result.stderr
    return (home / "out" / "piano-1.wav").stat().st_size, (
        home / "out" / "piano-1.json"
    ).stat().st_size


def assert_pair(out: Path, stem: str, seed: int) -> None:
    """``stem.wav`` is a whole, readable track and ``stem.json`` its sidecar."""
    audio = read_wav(out / f"{stem}.wav")
    sidecar = json.loads((out / f"{stem}.json").read_text())
    assert sidecar["seed"] == seed and sidecar["frames"] == audio.frames


# ---- item 2: disk full during --render ---------------------------------------------------------


def test_render_disk_full_while_writing_a_wav(tmp_path: Path, cli_env: dict, track_sizes) -> None:
    """Room for one track and half of the next: the second WAV's write fails."""
    wav, sidecar = track_sizes
    size = (pages(wav) + pages(sidecar) + pages(wav) // 2) * PAGE
    with tmpfs(tmp_path / "disk", size) as out:
        args = (*RENDER, "--count", "3", "--model", str(require_fixture()), "--out", str(out))
        result = run_lofi(*args, cwd=tmp_path, env=cli_env)
        assert result.returncode == 2
        assert the_error(result.stderr) == (
            f"lofi: error: no space left on {out}: track 2 of 3 was not written; "
            "the 1 finished before it are kept"
        )
        assert result.stdout == ""
        assert listing(out) == ["piano-1.json", "piano-1.wav"]  # no temp file, no half track
        assert_pair(out, "piano-1", 1)


def test_render_disk_full_between_the_wav_and_its_sidecar(
    tmp_path: Path, lofi_home: Path, monkeypatch, capsys, track_sizes
) -> None:
    """Room for one track and exactly the next WAV: its sidecar is what does not fit, and the
    WAV already under its final name is removed with it (both files or neither)."""
    wav, sidecar = track_sizes
    attempts: list[tuple[str, bool]] = []
    real_write_json = files.write_json_atomic

    def observed(target: Path, data: object) -> None:  # the real write, watched
        attempts.append((target.name, target.with_suffix(".wav").is_file()))
        real_write_json(target, data)

    monkeypatch.setattr(files, "write_json_atomic", observed)
    size = (pages(wav) + pages(sidecar) + pages(wav)) * PAGE
    with tmpfs(tmp_path / "disk", size) as out:
        args = [*RENDER, "--count", "2", "--model", str(require_fixture()), "--out", str(out)]
        assert main(args) == 2
        captured = capsys.readouterr()
        assert the_error(captured.err) == (
            f"lofi: error: no space left on {out}: track 2 of 2 was not written; "
            "the 1 finished before it are kept"
        )
        assert attempts == [("piano-1.json", True), ("piano-2.json", True)]
        assert listing(out) == ["piano-1.json", "piano-1.wav"]
        assert_pair(out, "piano-1", 1)


def test_render_disk_full_at_the_first_track(tmp_path: Path, cli_env: dict) -> None:
    with tmpfs(tmp_path / "disk", 16 * PAGE) as out:
        args = (*RENDER, "--count", "2", "--model", str(require_fixture()), "--out", str(out))
        result = run_lofi(*args, cwd=tmp_path, env=cli_env)
        assert result.returncode == 2
        line = the_error(result.stderr)
        assert line == f"lofi: error: no space left on {out}: track 1 of 2 was not written"
        assert listing(out) == []


# ---- item 3: disk full under the track cache while the player runs ----------------------------


@pytest.fixture(scope="module")
def engine() -> MusicGenEngine:
    return MusicGenEngine.load(require_fixture(), RuntimeOptions("cpu", 1), model_name="tiny")


async def until(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_cache_disk_full_plays_from_memory_and_saves(
    tmp_path: Path, lofi_home: Path, engine: MusicGenEngine
) -> None:
    """The cache's disk holds one track: the later ones play from memory, one notice says so,
    generation goes on, and ``s`` saves a playing track the cache never held."""
    one_track = 44 + round(1.0 * engine.sample_rate) * 4  # a 1 s float WAV
    size = (pages(one_track) + 3) * PAGE  # and its sidecar and the index
    with tmpfs(tmp_path / "cache", size) as root:
        cache = TrackCache(root)
        scheduler = Scheduler(lambda _: engine, cache, None, lookahead=2)
        notices: list[str] = []
        scheduler.subscribe(lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
        scheduler.set_station(Station("calm lofi piano", model="tiny", duration_s=1.0))
        await scheduler.start()

        def cached(job: JobInfo | None) -> bool:
            return job is not None and (root / f"{job.request.key}.wav").is_file()

        try:
            await until(
                lambda: (
                    len([j for j in scheduler.history if j.state is JobState.PLAYED]) >= 2
                    and len([j for j in scheduler.upcoming if j.state is JobState.READY]) == 2
                    and scheduler.current is not None
                    and not cached(scheduler.current)
                ),
                "two tracks played, one playing from memory and two more ready",
            )
            jobs = [*scheduler.history, scheduler.current, *scheduler.upcoming]
            assert not scheduler.halted
            assert all(j is not None and j.state is not JobState.FAILED for j in jobs)
            assert len([j for j in jobs if not cached(j)]) >= 4
            assert [n for n in notices if "disk full" in n] == [
                f"disk full: {root}: new tracks play from memory and s still saves them"
            ]
            playing = scheduler.current
            saved = scheduler.save_current()
            assert saved is not None and saved.is_relative_to(lofi_home / "music")
            sidecar = json.loads(saved.with_suffix(".json").read_text())
            assert sidecar["key"] == playing.request.key
            assert read_wav(saved).frames == round(1.0 * engine.sample_rate)
            assert not any(name.endswith((".part", ".tmp")) for name in listing(root))
        finally:
            await scheduler.aclose()
