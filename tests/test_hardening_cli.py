"""Hardening of the ``lofi`` command (issue #13): the last line of defence, absurd thread counts,
a closed stdout, simultaneous saves, signals during ``--render``. Real ``lofi`` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cli_helpers import one_error_line, run_lofi
from musicgen_fixture import require_fixture

from lofitui.atomic import atomic_new, atomic_path, sweep_stale_parts
from lofitui.audio.wav import read_wav
from lofitui.cli import main
from lofitui.config import THREADS_PER_CORE, max_threads, parse_config
from lofitui.library import unique_path


def _crashing_module(tmp_path: Path, fault: str) -> str:
    """A module that runs the real ``lofi`` main with one function replaced by ``fault``.

    A bug cannot be provoked through a real input (that would be a bug to fix), so the
    unexpected exception is injected at the first step of ``--render`` after parsing.
    """
    (tmp_path / "crashing_lofi.py").write_text(
        textwrap.dedent(
            f"""
            import lofitui.render

            def fault(*args, **kwargs):
                {fault}

            lofitui.render.check_writable = fault
            from lofitui.cli import main

            raise SystemExit(main())
            """
        )
    )
    return "crashing_lofi"


def test_unexpected_exception_is_one_line_and_logged(tmp_path: Path, cli_env: dict) -> None:
    module = _crashing_module(tmp_path, "raise RuntimeError('injected fault\\nsecond line')")
    result = run_lofi("--render", "piano", "--out", "out", cwd=tmp_path, env=cli_env, module=module)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lofi: internal error: RuntimeError: injected fault (")
    assert "full traceback in" in lines[0] and "lofi.log" in lines[0]
    logged_at = Path(lines[0].split("full traceback in ", 1)[1].rstrip(")"))
    text = logged_at.read_text()
    assert "Traceback" in text and "injected fault" in text and "def fault" not in text
    assert logged_at.is_relative_to(tmp_path / "state")  # the log file in the state dir


def test_unexpected_exception_without_message(tmp_path: Path, cli_env: dict) -> None:
    module = _crashing_module(tmp_path, "raise AssertionError()")
    result = run_lofi("--render", "piano", "--out", "out", cwd=tmp_path, env=cli_env, module=module)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("lofi: internal error: AssertionError (full traceback in ")


def test_user_errors_stay_exit_2(tmp_path: Path, cli_env: dict) -> None:
    module = _crashing_module(
        tmp_path, "from lofitui.errors import UsageError; raise UsageError('your fault')"
    )
    result = run_lofi("--render", "piano", "--out", "out", cwd=tmp_path, env=cli_env, module=module)
    assert result.returncode == 2
    assert result.stderr.strip() == "lofi: error: your fault"


# ---- item 1: threads bound ------------------------------------------------------------------


def _limit() -> int:
    return THREADS_PER_CORE * (os.cpu_count() or 1)


@pytest.mark.parametrize("offset", [1, 1000, 10**12])
def test_threads_past_the_limit_are_refused(tmp_path: Path, cli_env: dict, offset: int) -> None:
    args = ("--render", "piano", "--out", "out", "--threads", str(_limit() + offset))
    line = one_error_line(run_lofi(*args, cwd=tmp_path, env=cli_env))
    assert line == (
        f"lofi: error: threads must be at most {_limit()} "
        f"({THREADS_PER_CORE} x {os.cpu_count()} CPU cores) (got {_limit() + offset})"
    )
    assert max_threads() == _limit()
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_threads_at_the_limit_render(tmp_path: Path, cli_env: dict) -> None:
    model = str(require_fixture())
    args = ("--render", "piano", "--duration", "1", "--seed", "1", "--model", model)
    result = run_lofi(*args, "--out", "out", "--threads", str(_limit()), cwd=tmp_path, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "out").glob("*.wav")] == ["piano-1.wav"]


def test_config_threads_past_the_limit_are_clamped(tmp_path: Path, cli_env: dict) -> None:
    config = tmp_path / "config" / "lofi" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("threads = 10000\n")
    model = str(require_fixture())
    args = ("--render", "piano", "--duration", "1", "--seed", "1", "--model", model)
    result = run_lofi(*args, "--out", "out", cwd=tmp_path, env=cli_env)
    assert result.returncode == 0, result.stderr
    warning = (
        "lofi: warning: config.toml: threads = 10000"
        f" is more than {_limit()} "
        f"({THREADS_PER_CORE} x {os.cpu_count()} CPU cores); using {_limit()}"
    )
    assert warning in result.stderr.splitlines()
    assert (tmp_path / "out" / "piano-1.wav").exists()
    loaded, warnings = parse_config({"threads": _limit() + 1})
    assert loaded.threads == _limit() and len(warnings) == 1
    assert parse_config({"threads": _limit()}) == (replace(loaded, threads=_limit()), [])


# ---- item 9: stdout closed, full or gone ----------------------------------------------------


def _render_with_stdout(tmp_path: Path, env: dict, how: str) -> subprocess.CompletedProcess:
    """The real ``lofi --render`` with stdout full (/dev/full), closed, or a pipe nobody reads."""
    args = [sys.executable, "-m", "lofitui", "--render", "piano", "--duration", "1"]
    args += ["--seed", "3", "--model", str(require_fixture()), "--out", "out"]
    kwargs: dict = {"cwd": tmp_path, "env": {**os.environ, **env}, "stdin": subprocess.DEVNULL}
    kwargs.update(stderr=subprocess.PIPE, text=True, timeout=120)
    if how == "full":
        with open("/dev/full", "w") as full:
            return subprocess.run(args, stdout=full, **kwargs)
    if how == "closed":
        return subprocess.run(args, preexec_fn=lambda: os.close(1), **kwargs)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: EPIPE (Python ignores SIGPIPE)
    try:
        return subprocess.run(args, stdout=write_end, **kwargs)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("how", ["full", "closed", "gone"])
def test_stdout_unwritable_after_render(tmp_path: Path, cli_env: dict, how: str) -> None:
    result = _render_with_stdout(tmp_path, cli_env, how)
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert result.returncode == 2, result.stderr
    errors = [  # the first render builds the fast decoder: its stage lines end in "..."
        line
        for line in result.stderr.splitlines()
        if line.startswith("lofi: ") and not line.endswith("...")
    ]
    reason = {
        "full": "No space left on device",
        "closed": "stdout is closed",
        "gone": "Broken pipe",
    }[how]
    assert errors == [
        f"lofi: error: cannot print to stdout ({reason}); the 1 track(s) were written to out"
    ]
    # The file was still written, with its sidecar.
    assert (tmp_path / "out" / "piano-3.wav").exists()
    assert (tmp_path / "out" / "piano-3.json").exists()


def test_stream_to_closed_stdout_is_refused(tmp_path: Path, cli_env: dict) -> None:
    args = [sys.executable, "-m", "lofitui", "--render", "piano", "--out", "-"]
    result = subprocess.run(
        args,
        cwd=tmp_path,
        env={**os.environ, **cli_env},
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(1),
    )
    assert result.returncode == 2
    message = "lofi: error: --out - writes WAV audio to stdout, but stdout is closed"
    assert result.stderr == message + "\n"


# ---- item 7: simultaneous saves under one name ----------------------------------------------


def test_simultaneous_saves_of_one_name_each_get_a_file(tmp_path: Path) -> None:
    """Eight writers all offered the same name at the same moment (forced: each one's first
    choice is ``x.wav``, taken after every writer has its temp file ready)."""
    writers = 8
    ready = threading.Barrier(writers)
    finals: list[Path] = []

    def save(n: int) -> None:
        offers = iter([tmp_path / "x.wav"])

        def choose() -> Path:
            return next(offers, None) or unique_path(tmp_path, "x", ".wav")

        with atomic_new(choose) as written:
            written[0].write_bytes(f"writer {n}".encode())
            ready.wait(timeout=30)
        finals.append(written[0])

    threads = [threading.Thread(target=save, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(set(finals)) == writers
    contents = sorted(p.read_bytes() for p in tmp_path.glob("x*.wav"))
    assert contents == sorted(f"writer {n}".encode() for n in range(writers))
    assert not list(tmp_path.glob(".*"))  # no temp file left


def test_simultaneous_renders_of_one_name_keep_both(tmp_path: Path, cli_env: dict) -> None:
    args = [sys.executable, "-m", "lofitui", "--render", "piano", "--duration", "1"]
    args += ["--seed", "5", "--model", str(require_fixture()), "--out", "out"]
    env = {**os.environ, **cli_env}
    procs = [
        subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    printed = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert printed == [str(Path("out") / "piano-5-2.wav"), str(Path("out") / "piano-5.wav")]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["piano-5-2.json", "piano-5-2.wav", "piano-5.json", "piano-5.wav"]


# ---- item 6: signals and stale temp files during --render -----------------------------------


def _start_long_render(tmp_path: Path, env: dict) -> subprocess.Popen:
    args = [sys.executable, "-m", "lofitui", "--render", "ambient drone", "--duration", "120"]
    args += ["--count", "3", "--model", str(require_fixture()), "--out", "out"]
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "out").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # generation under way
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_takes_the_ctrl_c_path(tmp_path: Path, cli_env: dict, sig: int) -> None:
    proc = _start_long_render(tmp_path, cli_env)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert stderr.strip().splitlines()[-1] == "lofi: interrupted; no partial file was left behind"
    assert "Traceback" not in stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_stale_parts_of_a_killed_render_are_swept(tmp_path: Path, cli_env: dict) -> None:
    proc = _start_long_render(tmp_path, cli_env)
    proc.kill()  # SIGKILL: nothing can clean up
    proc.communicate(timeout=60)
    out = tmp_path / "out"
    # Killed mid-write (the write of a track is simulated: the fixture's long track is not
    # written yet when killed; its temp file is what a kill during the write leaves).
    stale = out / f".ambient-drone-1.wav.{proc.pid}-0123abcd.part"
    stale.write_bytes(b"half a wav")
    live = out / f".other.wav.{os.getpid()}-0123abcd.part"  # a live process's write: kept
    live.write_bytes(b"")
    foreign = out / ".notes.part"  # not lofi's naming: kept
    foreign.write_bytes(b"")
    model = str(require_fixture())
    args = ("--render", "piano", "--duration", "1", "--seed", "1", "--model", model)
    result = run_lofi(*args, "--out", "out", cwd=tmp_path, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [live.name, foreign.name, "piano-1.json", "piano-1.wav"]
    )
    assert sweep_stale_parts(out) == []


def test_interrupt_while_the_temp_file_is_created_leaves_nothing(tmp_path: Path) -> None:
    """KeyboardInterrupt at the first moment after the temp file exists (raised from the
    chmod that follows its creation): the cleanup still knows the name and removes it."""
    original = os.chmod

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    os.chmod = interrupted  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "a.wav"):
            pass
    finally:
        os.chmod = original
    assert list(tmp_path.iterdir()) == []


def _complete_pairs(out: Path) -> set[str]:
    """The stems of ``out``'s tracks, each checked complete: a readable WAV with its sidecar."""
    stems = {p.stem for p in out.glob("*.wav")}
    assert {p.stem for p in out.glob("*.json")} <= stems  # a sidecar never outlives its WAV
    for stem in stems:
        assert read_wav(out / f"{stem}.wav").frames == 32000
    return stems


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signals_at_a_spread_of_moments(tmp_path: Path, cli_env: dict, sig: int) -> None:
    """Many short tracks, so that the signal lands while tracks are generated and written."""
    model = str(require_fixture())
    # The fixture's fast decoder is built (into lofi's cache) by a first run, not under signals.
    warm = [sys.executable, "-m", "lofitui", "--render", "piano", "--duration", "1"]
    warm += ["--model", model, "--out", str(tmp_path / "warm")]
    subprocess.run(warm, cwd=tmp_path, env={**os.environ, **cli_env}, check=True, timeout=120)
    for n, delay in enumerate((0.0, 0.15, 0.4, 0.8, 1.5)):
        out = tmp_path / f"out{n}"
        args = [sys.executable, "-m", "lofitui", "--render", "piano", "--duration", "1"]
        # enough tracks that the last signal (1.5 s in) still lands mid-render on a fast machine
        args += ["--count", "300", "--seed", "1", "--model", model, "--out", str(out)]
        proc = subprocess.Popen(
            args,
            cwd=tmp_path,
            env={**os.environ, **cli_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:  # the handlers are set
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        assert "Traceback" not in stderr
        stems = _complete_pairs(out)
        if sig == signal.SIGKILL:
            assert proc.returncode == -sig
            sweep_stale_parts(out)  # what the next render does first
            assert not list(out.glob(".*")), sorted(out.iterdir())
        else:
            assert proc.returncode in (0, 128 + sig), stderr
            assert {p.stem for p in out.glob("*.json")} == stems  # both files or neither
            assert not list(out.glob(".*")), sorted(out.iterdir())  # no temp file


def test_render_in_process_restores_the_signal_handlers(
    tmp_path: Path, cli_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in cli_env.items():
        monkeypatch.setenv(key, value)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    args = ["--render", "piano", "--duration", "1", "--seed", "2", "--out", str(tmp_path / "o")]
    assert main([*args, "--model", str(require_fixture())]) == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before
    assert (tmp_path / "o" / "piano-2.wav").exists()
