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
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_error_line, run_lofi
from musicgen_fixture import require_fixture

from lofitui.audio.types import Audio
from lofitui.audio.wav import read_wav
from lofitui.cli import main
from lofitui.engines.base import TrackRequest
from lofitui.engines.musicgen import MusicGenEngine
from lofitui.engines.onnx_signature import read_signature
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import ModelError
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
            "the track before it is kept"
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
            "the track before it is kept"
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


def test_cache_on_a_full_disk_evicts_then_keeps_in_memory(tmp_path: Path) -> None:
    """Room for one track: the next evicts it; with that one pinned, the third stays in memory."""
    rate = 32000
    tone = Audio(np.sin(np.arange(rate, dtype=np.float32) / 7)[:, None] * 0.3, rate)
    requests = [TrackRequest("piano", 1.0, seed, model="tiny") for seed in (1, 2, 3)]
    size = (pages(44 + rate * 4) + 3) * PAGE
    with tmpfs(tmp_path / "cache", size) as root:
        cache = TrackCache(root)
        first = cache.put(requests[0], tone, {})
        assert first.stored and cache.write_problem is None
        second = cache.put(requests[1], tone, {})  # the disk is full: the first makes room
        assert second.stored and cache.keys() == [second.key] and cache.write_problem is None
        cache.pin(second.key)  # playing: never evicted
        third = cache.put(requests[2], tone, {})
        assert not third.stored and cache.write_problem == f"disk full: {root}"
        assert np.array_equal(cache.load_audio(third).samples, tone.samples)
        assert cache.keys() == [second.key]
        assert listing(root) == sorted([f"{second.key}.json", f"{second.key}.wav", "index.json"])
        assert set(TrackCache(root).keys()) == {second.key}  # the index on disk agrees


def test_cache_that_cannot_be_created_keeps_tracks_in_memory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    root = tmp_path / "file" / "cache"
    cache = TrackCache(root)  # the player still starts
    rate = 32000
    tone = Audio(np.zeros((rate, 1), np.float32), rate)
    track = cache.put(TrackRequest("piano", 1.0, 1, model="tiny"), tone, {})
    assert not track.stored and cache.load_audio(track) is tone
    assert cache.write_problem == f"cannot write to {root}: Not a directory"
    assert listing(tmp_path) == ["file"]


# ---- item 8: a model whose configs disagree with its graphs ----------------------------------


def _musicgen_with(tmp_path: Path, name: str, section: str | None, key: str, value: object) -> Path:
    """A copy of the tiny MusicGen fixture with one field of ``name`` changed."""
    model = tmp_path / "model"
    shutil.copytree(require_fixture(), model, ignore=shutil.ignore_patterns("fp16", "*.npz"))
    data = json.loads((model / name).read_text())
    (data[section] if section else data)[key] = value
    (model / name).write_text(json.dumps(data))
    return model


@pytest.mark.parametrize(
    ("name", "section", "key", "value", "message"),
    [
        ("config.json", "decoder", "num_codebooks", 8,
         "config.json: decoder.num_codebooks is 8, but {model}/encodec_decode.onnx has 4 "),
        ("config.json", "decoder", "vocab_size", 1024,
         "config.json: decoder.vocab_size is 1024, but {model}/decoder_model.onnx has 2048 logits"),
        ("config.json", "decoder", "num_attention_heads", 4,
         "config.json: decoder.num_attention_heads is 4, but {model}/decoder_model.onnx has 3 "
         "attention heads"),
        ("config.json", "decoder", "hidden_size", 48,
         "config.json: decoder.hidden_size / decoder.num_attention_heads is 16 per head, but "
         "{model}/decoder_model.onnx has 8"),
        ("config.json", "decoder", "num_hidden_layers", 5,
         "config.json: decoder.num_hidden_layers is 5, but {model}/decoder_model.onnx has 2 "),
        ("config.json", "text_encoder", "d_model", 64,
         "config.json: text_encoder.d_model is 64, but {model}/decoder_model.onnx has 32 text"),
        ("config.json", "audio_encoder", "sampling_rate", 0,
         "config.json: audio_encoder.sampling_rate must be a whole number >= 1 (got 0)"),
        ("generation_config.json", None, "top_k", "lots",
         "generation_config.json: top_k must be a whole number >= 0 (got 'lots')"),
        ("generation_config.json", None, "guidance_scale", -3,
         "generation_config.json: guidance_scale must be a number >= 0 (got -3)"),
        ("generation_config.json", None, "top_k", 5000,
         "generation_config.json: top_k is 5000, more than the 2048 tokens of the vocabulary"),
    ],
)  # fmt: skip
def test_musicgen_config_against_its_graphs(
    tmp_path: Path, cli_env: dict, name: str, section: str | None, key: str, value: object,
    message: str,
) -> None:  # fmt: skip
    model = _musicgen_with(tmp_path, name, section, key, value)
    result = run_lofi(*RENDER, "--model", str(model), "--out", "out", cwd=tmp_path, env=cli_env)
    line = one_error_line(result)
    assert f"lofi: error: {model}/{message.format(model=model)}" in line
    assert not (tmp_path / "out").exists() or listing(tmp_path / "out") == []


def _acestep_with(tmp_path: Path, key: str, value: object) -> Path:
    model = tmp_path / "ace"
    shutil.copytree(ACESTEP_TURBO, model, ignore=shutil.ignore_patterns("reference.*"))
    config = json.loads((model / "acestep.json").read_text())
    config[key] = value
    (model / "acestep.json").write_text(json.dumps(config))
    return model


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("latent_channels", 16, "latent_channels is 16, but {model}/transformer.onnx has 8 latent"),
        ("audio_channels", 1, "audio_channels is 1, but {model}/vae_decoder.onnx has 2 audio"),
        ("text_hidden_size", 64, "text_hidden_size is 64, but {model}/text_encoder.onnx has 32"),
        ("encoder_hidden_size", 48, "encoder_hidden_size is 48, but {model}/condition_encoder"),
        ("hop_length", 960, "latent_rate is 25, but sample_rate / hop_length is 50"),
        ("sample_rate", 0, "sample_rate must be a whole number >= 1 (got 0)"),
    ],
)
def test_acestep_config_against_its_graphs(
    tmp_path: Path, cli_env: dict, key: str, value: object, message: str
) -> None:
    model = _acestep_with(tmp_path, key, value)
    args = ("--render", "rain", "--engine", "ace-step", "--duration", "5", "--model", str(model))
    line = one_error_line(run_lofi(*args, "--out", "out", cwd=tmp_path, env=cli_env))
    assert f"lofi: error: {model}/acestep.json: {message.format(model=model)}" in line


def test_acestep_hop_length_against_the_vae(tmp_path: Path, cli_env: dict) -> None:
    """hop_length and latent_rate changed together still disagree with the VAE's 1920*frames."""
    model = _acestep_with(tmp_path, "hop_length", 960)
    config = json.loads((model / "acestep.json").read_text())
    (model / "acestep.json").write_text(json.dumps({**config, "latent_rate": 50.0}))
    args = ("--render", "rain", "--engine", "ace-step", "--duration", "5", "--model", str(model))
    line = one_error_line(run_lofi(*args, "--out", "out", cwd=tmp_path, env=cli_env))
    assert line == (
        f"lofi: error: {model}/acestep.json: hop_length is 960, but {model}/vae_decoder.onnx "
        "has 1920 samples per latent frame"
    )


@pytest.mark.parametrize(
    "graph", sorted(p for p in (ROOT / "tests" / "fixtures").rglob("*.onnx")), ids=str
)
def test_graph_signatures_read_without_loading_match_onnxruntime(graph: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    signature = read_signature(graph)
    assert signature.inputs == {a.name: tuple(a.shape) for a in session.get_inputs()}
    assert signature.outputs == {a.name: tuple(a.shape) for a in session.get_outputs()}


def test_a_graph_that_is_not_onnx_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "decoder_model.onnx"
    bogus.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelError, match=f"^{bogus} is not an ONNX model"):
        read_signature(bogus)


# ---- the tidy list: odd output directories ------------------------------------------------


@pytest.mark.parametrize(
    ("make", "out", "reason"),
    [
        (lambda d: None, "/proc", "it is not writable (creating a file there fails: "),
        (lambda d: (d / "loop").symlink_to("loop"), "loop", "loop is a loop of symbolic links"),
        (lambda d: (d / "loop").symlink_to("loop"), "loop/sub", "loop is a loop of symbolic"),
        (
            lambda d: (d / "gone").symlink_to("nowhere"),
            "gone",
            "gone is a symbolic link to nowhere",
        ),
        (lambda d: (d / "file").write_text(""), "file/sub", "file is a file, not a directory"),
    ],
)
def test_odd_output_directories_are_named(
    tmp_path: Path, cli_env: dict, make: Callable[[Path], object], out: str, reason: str
) -> None:
    make(tmp_path)
    args = (*RENDER, "--model", str(require_fixture()), "--out", out)
    line = one_error_line(run_lofi(*args, cwd=tmp_path, env=cli_env))
    assert line.startswith(f"lofi: error: cannot write to output directory {out}: {reason}")
    assert "File exists" not in line


# ---- item 11: a crash inside the app ----------------------------------------------------------


@pytest.mark.tmux
def test_crash_inside_the_app_is_one_line_and_restores_the_terminal(tui_env: Path) -> None:
    """A bug in a key's action (injected: the theme key raises) ends the app; the terminal is
    restored and lofi says what happened in one line, exit 1, with the traceback in its log."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed: .ci/run installs it")
    (tui_env / "crashing_app.py").write_text(
        textwrap.dedent(
            """
            from lofitui.tui.app import LofiApp

            def fault(self):
                raise RuntimeError("injected fault in the app")

            LofiApp.action_cycle_theme = fault
            from lofitui.cli import main

            raise SystemExit(main())
            """
        )
    )
    session = f"lofi-crash-{os.getpid()}"
    tmux = ["tmux", "-S", str(tui_env / "tmux.sock")]
    command = (
        f"cd {tui_env} && PYTHONPATH={ROOT} {sys.executable} -m crashing_app --model "
        f"{require_fixture()} --duration 30; echo EXIT=$?; sleep 60"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "PULSE"))},
        **{f"XDG_{d.upper()}_HOME": str(tui_env / d) for d in ("config", "state", "cache", "data")},
        "XDG_MUSIC_DIR": str(tui_env / "music"),
        "LOFI_MODELS_DIR": str(tui_env / "models"),
        "PULSE_SERVER": "unix:/nonexistent",
        "TERM": "xterm-256color",
    }

    def pane(fmt: str | None = None) -> str:
        cmd = (
            ["display", "-p", "-t", session, fmt] if fmt else ["capture-pane", "-p", "-t", session]
        )
        return subprocess.run([*tmux, *cmd], capture_output=True, text=True).stdout

    def wait(check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 40
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never happened: {pane()}")
            time.sleep(0.05)

    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "200", "-y", "30", command],
        env=env,
        check=True,
    )
    try:
        wait(lambda: "♫ lofi" in pane(), "the player's screen")
        subprocess.run([*tmux, "send-keys", "-t", session, "t"], check=True)
        wait(lambda: "EXIT=" in pane(), "the exit")
        screen = pane()
        flags = "#{alternate_on} #{mouse_any_flag} #{mouse_button_flag} #{mouse_standard_flag}"
        assert pane(flags).split() == ["0", "0", "0", "0"]
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    assert "Traceback" not in screen and "╭" not in screen, screen
    lines = [text for text in screen.splitlines() if text.strip()]
    log = tui_env / "state" / "lofi" / "log" / "lofi.log"
    assert lines == [
        f"lofi: internal error: RuntimeError: injected fault in the app (full traceback in {log})",
        "EXIT=1",
    ], screen
    assert "injected fault in the app" in log.read_text() and "Traceback" in log.read_text()


def test_stream_to_a_file_on_a_full_disk(tmp_path: Path, cli_env: dict) -> None:
    """``--out - > file`` where the file's disk fills up: one line, exit 2."""
    with tmpfs(tmp_path / "disk", 8 * PAGE) as disk:
        args = ["--render", "piano", "--duration", "5", "--model", str(require_fixture())]
        with (disk / "piano.wav").open("wb") as stdout:
            result = subprocess.run(
                [sys.executable, "-m", "lofitui", *args, "--out", "-"],
                cwd=tmp_path,
                env={**os.environ, **cli_env},
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
        assert result.returncode == 2
        assert the_error(result.stderr) == (
            "lofi: error: no space left on the disk stdout writes to (No space left on device): "
            "the WAV is cut short"
        )
