"""A private PulseAudio null sink for playback tests and CI (a script and an importable module).

The sink gives PortAudio a real, clocked output (1 s of audio takes ~1 s) on machines without a
sound card; its monitor source is the default input, so a test can record what was played.
All server state lives in one private directory; the server is stopped by its PID, never by name.

Usage::

    python tests/soundserver.py start   # starts (or reuses) the server, prints `export ...` lines
    python tests/soundserver.py env     # prints the `export ...` lines for a running server
    python tests/soundserver.py stop    # stops it by the PID in its state directory

so ``eval "$(python tests/soundserver.py start)"`` points the current shell at the server.
The CLI keeps its state in ``$LOFI_SOUND_DIR`` (default: a per-user directory under the system
temp dir); the pytest fixture uses a fresh temp dir per session instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SINK = "ci_sink"
RATE = 48000
CHANNELS = 2

# Loaded instead of the default script (-n): a socket without auth, the null sink, defaults.
# norewinds=1: without it the monitor loses the first 35-60 ms of each stream.
_CONFIG = f"""\
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name={SINK} rate={RATE} channels={CHANNELS} \
format=float32le norewinds=1
set-default-sink {SINK}
set-default-source {SINK}.monitor
"""

# Clients must never start a server of their own (autospawn) when ours is down.
_CLIENT_CONFIG = "autospawn = no\n"


class SoundServerError(RuntimeError):
    """The sound server could not be started or stopped; the message says why in one line."""


@dataclass(frozen=True)
class SoundServer:
    """A PulseAudio server whose whole state lives in ``directory``."""

    directory: Path

    @property
    def pid_file(self) -> Path:
        return self.directory / "pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "pulse.log"

    @property
    def env(self) -> dict[str, str]:
        """The variables that point libpulse clients (pactl, ALSA's pulse plugin) at us."""
        return {
            "PULSE_RUNTIME_PATH": str(self.directory),
            "PULSE_SERVER": f"unix:{self.directory / 'native'}",
            "PULSE_STATE_PATH": str(self.directory / "state"),
            "PULSE_CLIENTCONFIG": str(self.directory / "client.conf"),
        }

    def pid(self) -> int | None:
        """The server's PID if its PID file names a live process."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by someone else
        return pid

    def answers(self) -> bool:
        """True when ``pactl info`` gets an answer from the server."""
        try:
            result = subprocess.run(
                ["pactl", "info"],
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0

    def start(self, timeout_s: float = 15.0) -> None:
        """Start the server (or keep the one already running here) and wait until it answers."""
        if self.pid() is not None and self.answers():
            return
        exe = shutil.which("pulseaudio")
        if exe is None or shutil.which("pactl") is None:
            raise SoundServerError(
                "pulseaudio/pactl not found: install the Debian packages pulseaudio, "
                "pulseaudio-utils, libportaudio2 and libasound2-plugins"
            )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.directory / "state").mkdir(mode=0o700, exist_ok=True)
        config = self.directory / "ci.pa"
        config.write_text(_CONFIG)
        (self.directory / "client.conf").write_text(_CLIENT_CONFIG)
        cmd = [
            exe,
            "--daemonize=yes",
            "-n",
            "-F",
            str(config),
            "--exit-idle-time=-1",
            "--disable-shm=yes",
            "--use-pid-file=yes",
            f"--log-target=file:{self.log_file}",
        ]
        try:
            result = subprocess.run(
                cmd,
                env={**os.environ, **self.env},
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SoundServerError(
                f"pulseaudio did not daemonize within {timeout_s:.0f} s"
            ) from exc
        if result.returncode != 0:
            raise SoundServerError(
                f"pulseaudio failed to start (exit {result.returncode}): {self._why(result.stderr)}"
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.answers():
                return
            time.sleep(0.1)
        self.stop()
        raise SoundServerError(
            f"pulseaudio started but did not answer `pactl info` within {timeout_s:.0f} s: "
            f"{self._why('')}"
        )

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the server by its PID: SIGTERM, wait, then SIGKILL as a fallback."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid() is None:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return

    def _why(self, stderr: str) -> str:
        """The last meaningful line of stderr or of the server log, for error messages."""
        lines = [line for line in stderr.splitlines() if line.strip()]
        if not lines and self.log_file.exists():
            lines = [line for line in self.log_file.read_text().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no output (see the server log)"


def default_directory() -> Path:
    """The CLI's state directory: ``$LOFI_SOUND_DIR`` or a per-user one in the temp dir."""
    override = os.environ.get("LOFI_SOUND_DIR")
    if override:
        return Path(override)
    return Path(tempfile.gettempdir()) / f"lofi-soundserver-{os.getuid()}"


def start_private(timeout_s: float = 15.0) -> SoundServer:
    """Start a server in a fresh private temp dir (what the test fixture uses)."""
    server = SoundServer(Path(tempfile.mkdtemp(prefix="lofi-sound-")))
    try:
        server.start(timeout_s)
    except BaseException:
        shutil.rmtree(server.directory, ignore_errors=True)
        raise
    return server


@contextlib.contextmanager
def serving(server: SoundServer) -> Iterator[SoundServer]:
    """Point this process's environment at ``server`` meanwhile; then stop it and remove it."""
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(server.directory, ignore_errors=True)


def _exports(server: SoundServer) -> str:
    return "\n".join(f"export {key}={value}" for key, value in server.env.items())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in {"start", "stop", "env"}:
        print("usage: python tests/soundserver.py start|stop|env", file=sys.stderr)
        return 2
    server = SoundServer(default_directory())
    command = args[0]
    try:
        if command == "start":
            server.start()
            print(_exports(server))
        elif command == "env":
            if server.pid() is None:
                print(f"no sound server running in {server.directory}", file=sys.stderr)
                return 1
            print(_exports(server))
        else:
            server.stop()
    except SoundServerError as exc:
        print(f"soundserver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
