"""Shared fixtures: isolated lofi directories, the fake hub, the test sound server, tiny models.

Nothing here reaches the internet (sockets are limited to localhost where downloads are tested),
and a missing sound server fails the playback tests in CI instead of skipping them.
"""

from __future__ import annotations

import os
import socket

import pytest
from tui_fakes import FakeBackend

_LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


# ---- isolated lofi directories --------------------------------------------------------------


@pytest.fixture
def lofi_home(tmp_path, monkeypatch):
    """Every lofi location (platformdirs through XDG, the models dir) inside tmp_path."""
    for var, sub in (
        ("XDG_CONFIG_HOME", "xdg-config"),
        ("XDG_STATE_HOME", "xdg-state"),
        ("XDG_CACHE_HOME", "xdg-cache"),
        ("XDG_DATA_HOME", "xdg-data"),
        ("XDG_MUSIC_DIR", "music"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("LOFI_MODELS_DIR", str(tmp_path / "models"))
    # the app joins the session bus (MPRIS): tests get a private one (test_mpris) or none
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-session-bus'}")
    return tmp_path


@pytest.fixture
def lofi_dirs(lofi_home):
    """The paths module, with every location inside tmp_path."""
    from lofitui import paths

    return paths


@pytest.fixture
def tui_env(lofi_home):
    return lofi_home


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    """Environment for a `lofi` subprocess: every location in tmp_path, the hub offline."""
    return {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "LOFI_MODELS_DIR": str(tmp_path / "models"),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
    }


# ---- models: fake hub, no internet ----------------------------------------------------------


def _guard_connect(original):
    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in _LOCAL_HOSTS:
            raise OSError(f"test tried to reach {address}: tests must stay off the internet")
        return original(sock, address)

    return connect


def _guard_getaddrinfo(original):
    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS and host is not None:
            raise OSError(f"test tried to resolve {host!r}: tests must stay off the internet")
        return original(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture
def models_env(lofi_home, monkeypatch):
    """Model dirs, HF caches and tokens inside tmp_path; sockets limited to localhost."""
    for var in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_ENDPOINT",
    ):
        monkeypatch.delenv(var, raising=False)
    env = {
        "HF_HOME": str(lofi_home / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "COLUMNS": "200",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(socket.socket, "connect", _guard_connect(socket.socket.connect))
    monkeypatch.setattr(socket, "getaddrinfo", _guard_getaddrinfo(socket.getaddrinfo))
    # huggingface_hub read these at import, maybe before this fixture: no user-agent "agent"
    # registry fetch from huggingface.co, whatever the environment of the test run.
    from huggingface_hub import constants as hf_constants
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)

    from lofitui.models import download

    monkeypatch.setattr(download, "RETRY_WAIT_S", 0.01)
    return lofi_home / "models"


@pytest.fixture
def fake_hub(models_env, monkeypatch):
    """A running tests/hubserver.FakeHub; HF_ENDPOINT points at it."""
    from hubserver import FakeHub

    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    yield hub
    hub.stop()


# ---- sound: a private PulseAudio null sink for playback tests --------------------------------
# Tests marked `sound` get it automatically. If it cannot start, they FAIL (always in CI, i.e.
# when $CI is set); locally LOFI_ALLOW_NO_SOUND=1 turns that into a skip.


@pytest.fixture(scope="session")
def sound_server():
    """A PulseAudio null sink (48 kHz stereo float32) for this test session; env points at it."""
    import soundserver

    try:
        server = soundserver.start_private()
    except soundserver.SoundServerError as exc:
        message = f"cannot start the test sound server: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (in CI this fails, never skips)", pytrace=False)
        if os.environ.get("LOFI_ALLOW_NO_SOUND") == "1":
            pytest.skip(message)
        pytest.fail(f"{message} (set LOFI_ALLOW_NO_SOUND=1 to skip)", pytrace=False)
    with soundserver.serving(server):
        _portaudio_rescan()
        yield server


def _portaudio_rescan() -> None:
    """PortAudio lists the devices of the environment it was initialised in: if an earlier test
    already loaded it, make it list this server's."""
    import sys

    if "sounddevice" in sys.modules:
        from lofitui.audio.output import rescan

        rescan(sys.modules["sounddevice"])


@pytest.fixture(autouse=True)
def _sound_marker_starts_server(request):
    """Every test marked `sound` runs with the session's sound server."""
    if request.node.get_closest_marker("sound") is not None:
        request.getfixturevalue("sound_server")


# ---- engines and the app ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_engine():
    """The tiny MusicGen fixture model on CPU, loaded once (generate is one-at-a-time)."""
    from musicgen_fixture import require_fixture

    from lofitui.engines.musicgen import MusicGenEngine
    from lofitui.engines.runtime import RuntimeOptions

    return MusicGenEngine.load(require_fixture(), RuntimeOptions("cpu", 1), model_name="tiny")


@pytest.fixture
def fake_backend():
    return FakeBackend()
