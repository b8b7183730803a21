"""Signals and input bursts to the real ``lofi`` in a real terminal (tmux).

SIGTERM and SIGHUP give the same clean exit as ``q``: the pane runs ``lofi`` then prints its exit
status, and tmux's own view of the terminal afterwards shows it out of the alternate screen with
mouse reporting off, nothing half-written. Keys typed in one burst after ``/`` are prompt text.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from musicgen_fixture import require_fixture

LOFI = Path(sys.executable).with_name("lofi")


def _tmux_env(home: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "PULSE"))},
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_MUSIC_DIR": str(home / "music"),
        "LOFI_MODELS_DIR": str(home / "models"),
        "PULSE_SERVER": "unix:/nonexistent",  # no sound: lofi plays silently
        "TERM": "xterm-256color",
    }


def _wait(check, what: str, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} never happened")


@pytest.mark.tmux
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_restores_the_terminal_and_exits_128_plus_n(tui_env, signum):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed: .ci/run installs it")
    pid_file = tui_env / "lofi.pid"
    session = f"lofi-signal-{os.getpid()}"
    tmux = ["tmux", "-S", str(tui_env / "tmux.sock")]
    command = (
        f"sh -c 'echo $$ > {pid_file}; exec {LOFI} --model {require_fixture()} --duration 30'; "
        "echo EXIT=$?; sleep 60"
    )

    def pane(fmt: str | None = None) -> str:
        cmd = ["display", "-p", "-t", session] if fmt else ["capture-pane", "-p", "-t", session]
        cmd += [fmt] if fmt else []
        return subprocess.run([*tmux, *cmd], capture_output=True, text=True).stdout

    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command],
        env=_tmux_env(tui_env),
        check=True,
    )
    try:
        _wait(lambda: "♫ lofi" in pane(), "the player's screen")
        assert pane("#{alternate_on}").strip() == "1"
        # mid-generation: a long track is being made when the signal lands
        _wait(lambda: any((tui_env / "cache").rglob("*")) or "generating" in pane(), "a job")
        time.sleep(1.0)
        os.kill(int(pid_file.read_text()), signum)
        screen = _wait(lambda: next((s for s in [pane()] if "EXIT=" in s), ""), "the exit", 20)
        assert f"EXIT={128 + signum}" in screen, screen
        assert "Traceback" not in screen, screen
        flags = "#{alternate_on} #{mouse_any_flag} #{mouse_button_flag} #{mouse_standard_flag}"
        assert pane(flags).split() == ["0", "0", "0", "0"]
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    leftovers = [p for p in (tui_env / "cache").rglob("*") if p.suffix in (".part", ".tmp")]
    assert leftovers == []


@pytest.mark.tmux
def test_keys_typed_in_one_burst_after_slash_are_prompt_text(tui_env):
    """``tmux send-keys -l`` writes ``/tango`` in one go, as a fast typist or a paste would."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed: .ci/run installs it")
    session = f"lofi-burst-{os.getpid()}"
    tmux = ["tmux", "-S", str(tui_env / "tmux.sock")]
    command = f"{LOFI} --model {require_fixture()} --duration 30; echo EXIT=$?; sleep 60"

    def pane() -> str:
        capture = [*tmux, "capture-pane", "-p", "-t", session]
        return subprocess.run(capture, capture_output=True, text=True).stdout

    def send(*keys: str, literal: bool = False) -> None:
        flags = ["-l"] if literal else []
        subprocess.run([*tmux, "send-keys", "-t", session, *flags, *keys], check=True)

    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command],
        env=_tmux_env(tui_env),
        check=True,
    )
    try:
        _wait(lambda: "·  playing" in pane(), "playback")
        send("/tango", literal=True)
        _wait(lambda: "tango" in pane(), "the prompt text")
        time.sleep(0.5)
        screen = pane()
        assert "theme:" not in screen and "EXIT=" not in screen, screen
        send("Escape")
        time.sleep(0.5)
        send("/qn", literal=True)  # would quit at once if q reached the player
        _wait(lambda: "qn" in pane(), "the second burst")
        time.sleep(0.5)
        assert "EXIT=" not in pane()
        config = (tui_env / "config" / "lofi" / "config.toml").read_text().splitlines()
        assert not [line for line in config if line.startswith("theme")]  # t never cycled it
        send("Escape")
        time.sleep(0.5)
        send("q")
        screen = _wait(lambda: next((s for s in [pane()] if "EXIT=" in s), ""), "the exit", 20)
        assert "EXIT=0" in screen, screen
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


@pytest.mark.tmux
def test_closed_terminal_quits_lofi_cleanly(tui_env):
    """A real hang-up (the terminal closes under lofi): lofi quits at once, nothing left behind.

    Textual's output thread used to die writing to the dead terminal and freeze the app for ever.
    """
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed: .ci/run installs it")
    pid_file = tui_env / "lofi.pid"
    session = f"lofi-hangup-{os.getpid()}"
    tmux = ["tmux", "-S", str(tui_env / "tmux.sock")]
    command = f"sh -c 'echo $$ > {pid_file}; exec {LOFI} --model {require_fixture()} --duration 30'"

    def pane() -> str:
        capture = [*tmux, "capture-pane", "-p", "-t", session]
        return subprocess.run(capture, capture_output=True, text=True).stdout

    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command],
        env=_tmux_env(tui_env),
        check=True,
    )
    pid = 0
    try:
        _wait(lambda: "·  playing" in pane(), "playback")
        pid = int(pid_file.read_text())
        time.sleep(1.0)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

    try:
        _wait(gone, "lofi's exit after the hang-up", 10)
    finally:
        if not gone():
            os.kill(pid, signal.SIGKILL)
    leftovers = [p for p in (tui_env / "cache").rglob("*") if p.suffix in (".part", ".tmp")]
    assert leftovers == []


def test_output_to_a_hung_up_terminal_is_dropped(tmp_path):
    from lofitui.tui.app import HangupSafeOutput

    stream = (tmp_path / "tty").open("w")
    out = HangupSafeOutput(stream)
    assert out.write("frame") == 5 and not out.gone
    stream.close()  # writes now fail, as on a hung-up tty
    assert out.write("next frame") == 10 and out.gone
    out.flush()
    assert (tmp_path / "tty").read_text() == "frame"
