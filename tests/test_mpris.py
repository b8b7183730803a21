"""MPRIS through a real bus: a private dbus-daemon, the real app, a real D-Bus client.

The client (dbus-fast's MessageBus, a separate connection) calls the methods and reads the
properties of the app under Pilot, as a desktop shell or a media key daemon would, and
listens for PropertiesChanged. dbus-daemon comes from the Debian package ``dbus-daemon``
(``.ci/run`` installs it); without it these tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, NameFlag, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from tui_fakes import TUI_PROMPT, FakeBackend, FakeScheduler, tui_playing_events

from lofitui.config import Config, build_settings, parse_config
from lofitui.desktop.mpris import (
    BUS_NAME,
    NO_TRACK,
    OBJECT_PATH,
    PLAYER_INTERFACE,
    ROOT_INTERFACE,
    track_path,
)
from lofitui.events import NowPlaying
from lofitui.tui import app as app_module
from lofitui.tui import backend as backend_module
from lofitui.tui.app import LofiApp, create_app
from lofitui.tui.history import PromptHistory
from lofitui.tui.widgets import StatusBar

SIZE = (100, 30)

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@contextlib.contextmanager
def private_bus() -> Iterator[str]:
    """A session dbus-daemon of its own (in a short directory: socket paths are limited)."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.fail("dbus-daemon is needed (Debian package dbus-daemon; .ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="lofi-bus-") as directory:
        config = Path(directory) / "session.conf"
        config.write_text(BUS_CONFIG.format(socket=Path(directory) / "bus"))
        process = subprocess.Popen(
            [daemon, f"--config-file={config}", "--nofork", "--print-address"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            address = process.stdout.readline().strip() if process.stdout else ""
            if not address:
                process.wait(5)
                pytest.fail(f"dbus-daemon did not start: {process.stderr.read().strip()}")
            yield address
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def session_bus(lofi_home, monkeypatch) -> Iterator[str]:
    """A private session bus for this test, in DBUS_SESSION_BUS_ADDRESS; its address."""
    with private_bus() as address:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        yield address


@contextlib.asynccontextmanager
async def bus_client() -> AsyncIterator[MessageBus]:
    client = await MessageBus().connect()
    try:
        yield client
    finally:
        client.disconnect()
        await client.wait_for_disconnect()


async def until(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def plain(value: Any) -> Any:
    """D-Bus values without their Variant wrappers."""
    if isinstance(value, Variant):
        return plain(value.value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


async def bus_call(client: MessageBus, member: str, signature: str = "", *body: Any) -> Any:
    reply = await client.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member=member,
            signature=signature,
            body=list(body),
        )
    )
    return reply.body[0]


async def mpris_of(client: MessageBus, name: str = BUS_NAME) -> tuple[Any, Any, Any]:
    """The root, player and properties interfaces of the player owning ``name``, once it does."""
    await until(lambda: bus_call(client, "NameHasOwner", "s", name), f"{name} on the bus")
    node = await client.introspect(name, OBJECT_PATH)
    proxy = client.get_proxy_object(name, OBJECT_PATH, node)
    return (
        proxy.get_interface(ROOT_INTERFACE),
        proxy.get_interface(PLAYER_INTERFACE),
        proxy.get_interface("org.freedesktop.DBus.Properties"),
    )


class BackApp(LofiApp):
    """The real app, plus a stand-in for the track history's ``back`` action (merged apart)."""

    CSS_PATH = Path(app_module.__file__).with_name("lofi.tcss")  # not relative to this file
    backs = 0

    def action_back(self) -> None:
        self.backs += 1


async def test_mpris_drives_the_real_player(tui_env, session_bus, monkeypatch):
    monkeypatch.setattr(backend_module, "open_player", lambda _: (None, "test: no audio device"))
    settings = build_settings(Config(engine="synth", lookahead=1, duration=30.0), {})
    app = BackApp(settings, history=PromptHistory())
    async with bus_client() as client:
        async with app.run_test(size=SIZE) as pilot:
            root, player, properties = await mpris_of(client)
            changes: list[dict[str, Any]] = []

            def changed(interface: str, values: dict[str, Variant], _: list[str]) -> None:
                if interface == PLAYER_INTERFACE:
                    changes.append(plain(values))

            properties.on_properties_changed(changed)

            about = plain(await properties.call_get_all(ROOT_INTERFACE))
            assert about == {
                "CanQuit": True,
                "CanRaise": False,
                "HasTrackList": False,
                "Identity": "lofi",
                "DesktopEntry": "lofi",
                "SupportedUriSchemes": [],
                "SupportedMimeTypes": [],
            }
            await until(lambda: _is(player.get_playback_status(), "Playing"), "Playing")
            scheduler = app.scheduler
            assert scheduler is not None and scheduler.current is not None
            first_id = scheduler.current.id
            first = track_path(first_id)
            reached: dict[str, float] = {}  # how far each track played, from the scheduler
            scheduler.subscribe(
                lambda e: (
                    reached.update({e.track_id: e.position_s})
                    if isinstance(e, NowPlaying) and e.track_id
                    else None
                )
            )
            assert plain(await player.get_metadata()) == {
                "mpris:trackid": first,
                "mpris:length": 30_000_000,
                "xesam:title": settings.prompt,
                "xesam:artist": ["synth · builtin"],
            }
            state = plain(await properties.call_get_all(PLAYER_INTERFACE))
            assert {k: v for k, v in state.items() if k.startswith("Can")} == {
                "CanControl": True,
                "CanGoNext": True,
                "CanGoPrevious": True,  # BackApp has a back action
                "CanPause": True,
                "CanPlay": True,
                "CanSeek": False,
            }
            assert state["Rate"] == state["MinimumRate"] == state["MaximumRate"] == 1.0
            start = await player.get_position()
            assert 0 <= start <= 30_000_000
            await until(
                lambda: _later(player.get_position(), start), "Position to move on while playing"
            )

            # transport: each call answers once the app has acted on it
            statuses = _statuses(changes)
            script = [
                ("play_pause", "Paused"),
                ("play", "Playing"),
                ("pause", "Paused"),
                ("play_pause", "Playing"),
                ("stop", "Paused"),  # a station has no stop: Play resumes
                ("play", "Playing"),
            ]
            for method, status in script:
                await getattr(player, f"call_{method}")()
                assert await player.get_playback_status() == status, method
                assert scheduler.paused == (status == "Paused"), method
            await until(lambda: len(_statuses(changes)) >= len(statuses) + 6, "6 status signals")
            assert _statuses(changes)[len(statuses) :] == [status for _, status in script]

            # volume: written from the bus, and signalled when the keys change it
            assert await player.get_volume() == pytest.approx(0.8)
            await player.set_volume(0.5)
            assert scheduler.volume == 0.5 and app.query_one(StatusBar).volume == 0.5
            await pilot.press("plus")
            await until(
                lambda: [c["Volume"] for c in changes if "Volume" in c] == [0.5, 0.55],
                "Volume signals for the bus and the key",
            )

            # Next skips: PropertiesChanged carries the new track
            await player.call_next()
            await until(lambda: _new_track(changes, first), "Metadata of the next track")
            track = _new_track(changes, first)
            assert track["mpris:trackid"] == track_path(scheduler.current.id)
            assert track["xesam:title"] == settings.prompt
            assert reached[first_id] < 25.0, "the first track was cut short, not played out"

            await player.call_previous()
            assert app.backs == 1

            await root.call_quit()
            await until(lambda: app.scheduler is None, "the app to quit")
        assert app.return_value == 0
        await until(lambda: _gone(client, BUS_NAME), "the name to leave with lofi")


async def _later(position: Awaitable[int], than: int) -> bool:
    return await position > than


async def _is(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def _gone(client: MessageBus, name: str) -> bool:
    return not await bus_call(client, "NameHasOwner", "s", name)


def _statuses(changes: list[dict[str, Any]]) -> list[str]:
    return [c["PlaybackStatus"] for c in changes if "PlaybackStatus" in c]


def _new_track(changes: list[dict[str, Any]], old: str) -> dict[str, Any] | None:
    """The first Metadata signalled for a track other than ``old`` (and than no track)."""
    for change in changes:
        meta = change.get("Metadata", {})
        if meta.get("mpris:trackid") not in (None, old, NO_TRACK):
            return meta
    return None


async def _started(app: LofiApp) -> FakeScheduler:
    await until(lambda: app.scheduler is not None, "the scheduler to attach")
    return app.scheduler  # type: ignore[return-value]


async def test_a_second_lofi_and_mpris_off(tui_env, session_bus):
    """The name taken: an instance name; ``mpris = false``: not on the bus at all."""
    async with bus_client() as client:
        taken = await client.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)  # "another lofi"
        assert taken is RequestNameReply.PRIMARY_OWNER
        app = create_app(config=Config(), backend=FakeBackend(), history=PromptHistory())
        async with app.run_test(size=SIZE) as pilot:
            fake = await _started(app)
            instance = f"{BUS_NAME}.instance{os.getpid()}"
            _, player, _ = await mpris_of(client, instance)
            fake.emit(*tui_playing_events(position=12.0))
            await until(lambda: _is(player.get_playback_status(), "Playing"), "Playing")
            assert plain(await player.get_metadata()) == {
                "mpris:trackid": "/org/lofi/track/job_1",
                "mpris:length": 30_000_000,
                "xesam:title": TUI_PROMPT,
                "xesam:artist": ["musicgen · musicgen-small"],
            }
            assert await player.get_position() == 12_000_000
            # Previous is offered exactly when lofi has a back action (Textual's closes dialogs)
            assert await player.get_can_go_previous() == ("action_back" in vars(LofiApp))
            await pilot.press("q")
        await until(lambda: _gone(client, instance), "the instance name to leave with lofi")
        before = await bus_call(client, "ListNames")
        off = create_app(config=Config(mpris=False), backend=FakeBackend(), history=PromptHistory())
        async with off.run_test(size=SIZE) as pilot:
            await _started(off)
            await pilot.pause()
            assert off._desktop is None
            assert await bus_call(client, "ListNames") == before
            await pilot.press("q")


@pytest.mark.parametrize("bus", ["unset", "no socket", "never answers"])
async def test_without_a_session_bus_lofi_plays_on(tui_env, monkeypatch, caplog, bus):
    caplog.set_level(logging.DEBUG, logger="lofitui.desktop")
    # lofi's own logging (set up by an in-process `lofi` run of another test) stops at "lofitui"
    monkeypatch.setattr(logging.getLogger("lofitui"), "propagate", True)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with tempfile.TemporaryDirectory(prefix="lofi-bus-") as directory, silent:
        if bus == "unset":
            monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
            monkeypatch.delenv("DISPLAY", raising=False)
        elif bus == "no socket":
            monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={directory}/none")
        else:  # a socket that takes the connection, then says nothing
            silent.bind(f"{directory}/silent")
            silent.listen(4)
            monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={directory}/silent")
        app = create_app(config=Config(), backend=FakeBackend(), history=PromptHistory())
        async with app.run_test(size=SIZE) as pilot:
            fake = await _started(app)
            fake.emit(*tui_playing_events())
            await pilot.press("space", "n")
            assert fake.calls[-2:] == [("toggle_pause",), ("skip",)]
            if bus != "never answers":
                await until(lambda: "MPRIS off" in caplog.text, "the debug line")
            await pilot.press("q")  # while connecting, too: quitting does not wait for the bus
        assert fake.closed and app.return_value == 0
        if bus == "never answers":  # quitting mid-connect hung up: what lofi sent, then EOF
            peer, _ = silent.accept()
            with peer:
                peer.settimeout(10)
                while peer.recv(4096):
                    pass
        assert all(r.levelno == logging.DEBUG for r in caplog.records if "desktop" in r.name)
        assert not [n for n in app._notifications if "bus" in n.message.lower()]


def test_mpris_option_in_config():
    assert Config().mpris and build_settings(Config(), {}).mpris
    config, warnings = parse_config({"mpris": False})
    assert not config.mpris and warnings == [] and not build_settings(config, {}).mpris
    config, warnings = parse_config({"mpris": "no"})
    assert config.mpris and warnings == [
        "config.toml: mpris must be true or false; using the default"
    ]
