"""MPRIS on the session D-Bus: media keys and desktop shells drive lofi and show what it plays.

lofi owns ``org.mpris.MediaPlayer2.lofi`` (``org.mpris.MediaPlayer2.lofi.instance<pid>`` when
another lofi has it) and serves ``/org/mpris/MediaPlayer2`` with the two interfaces of the MPRIS
2.2 specification:

- ``org.mpris.MediaPlayer2``: Identity ``lofi``, DesktopEntry ``lofi``, Quit; no Raise (a
  terminal cannot be raised from here), no track list, no URI schemes.
- ``org.mpris.MediaPlayer2.Player``: PlayPause, Play, Pause, Stop (pauses: a station has no
  stopped state to start again from), Next (skip), Previous (back, when the app has it);
  PlaybackStatus, Metadata (the prompt as ``xesam:title``, ``engine · model`` as
  ``xesam:artist``, ``mpris:length``), Position, Volume (lofi's volume, read and written; mute
  stays lofi's own), Rate 1.0 and the Can* flags. Seeking is not offered (CanSeek is false: a
  track may still be being generated), so Seek and SetPosition do nothing, as the specification
  asks, and Seeked is never sent.

The state comes from the scheduler's :class:`~lofitui.events.NowPlaying` events, which carry the
playing job, the pause state and the position (job, station and progress events change nothing
MPRIS shows: a new station's prompt is shown once its first track plays, as in the app).
PropertiesChanged goes out when the playback status, the track or the volume changes; never for
Position, which clients ask for. Everything runs on the app's asyncio loop, the thread the
scheduler's events arrive on. No session bus (a headless box, a bus that does not answer) is not
an error: one debug log line, and lofi plays on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from typing import Annotated, Protocol

from dbus_fast import DBusError, ErrorType, NameFlag, PropertyAccess, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusDict,
    DBusDouble,
    DBusInt64,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
)
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from lofitui.events import JobInfo, NowPlaying, SchedulerEvent

BUS_NAME = "org.mpris.MediaPlayer2.lofi"
OBJECT_PATH = "/org/mpris/MediaPlayer2"
ROOT_INTERFACE = "org.mpris.MediaPlayer2"
PLAYER_INTERFACE = "org.mpris.MediaPlayer2.Player"
IDENTITY = "lofi"
DESKTOP_ENTRY = "lofi"
NO_TRACK = "/org/mpris/MediaPlayer2/TrackList/NoTrack"
TRACK_PATH = "/org/lofi/track/"
CONNECT_TIMEOUT_S = 3.0  # a bus that accepts the connection but never answers is no bus
CLOSE_TIMEOUT_S = 1.0

DBusStrings = Annotated[list[str], DBusSignature("as")]

log = logging.getLogger(__name__)


class Controls(Protocol):
    """The player's own actions, as the MPRIS methods call them (the app provides them)."""

    async def toggle_pause(self) -> None: ...
    async def skip(self) -> None: ...
    async def back(self) -> None: ...
    async def set_volume(self, volume: float) -> None: ...
    def quit(self) -> None:
        """Start quitting and return at once (the reply must go out before the bus closes)."""

    @property
    def can_go_back(self) -> bool: ...


def _text(value: str) -> str:
    """``value`` as a D-Bus string: valid UTF-8 without NUL (a prompt may hold anything)."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\0", "")


def track_path(job_id: str) -> str:
    """The ``mpris:trackid`` of a job: an object path (only letters, digits and ``_``)."""
    return TRACK_PATH + re.sub(r"[^A-Za-z0-9_]", "_", job_id)


def track_metadata(job: JobInfo | None) -> dict[str, Variant]:
    """MPRIS Metadata for the playing job: its prompt, engine and model, and its length."""
    if job is None:
        return {"mpris:trackid": Variant("o", NO_TRACK)}
    return {
        "mpris:trackid": Variant("o", track_path(job.id)),
        "mpris:length": Variant("x", round(job.duration_s * 1_000_000)),
        "xesam:title": Variant("s", _text(job.station.prompt)),
        "xesam:artist": Variant("as", [_text(job.station.label)]),
    }


# D-Bus methods carry no ``-> None``: dbus-fast reads annotations as D-Bus signatures, and a
# method that returns nothing has none.


class MediaPlayer2(ServiceInterface):
    """``org.mpris.MediaPlayer2``: who lofi is, and Quit."""

    def __init__(self, controls: Controls) -> None:
        super().__init__(ROOT_INTERFACE)
        self._controls = controls

    @dbus_method(name="Raise")
    def raise_(self):
        """CanRaise is false: a terminal's window is not lofi's to raise."""

    @dbus_method(name="Quit")
    def quit(self):
        self._controls.quit()

    @dbus_property(PropertyAccess.READ, name="CanQuit")
    def can_quit(self) -> DBusBool:
        return True

    @dbus_property(PropertyAccess.READ, name="CanRaise")
    def can_raise(self) -> DBusBool:
        return False

    @dbus_property(PropertyAccess.READ, name="HasTrackList")
    def has_track_list(self) -> DBusBool:
        return False

    @dbus_property(PropertyAccess.READ, name="Identity")
    def identity(self) -> DBusStr:
        return IDENTITY

    @dbus_property(PropertyAccess.READ, name="DesktopEntry")
    def desktop_entry(self) -> DBusStr:
        return DESKTOP_ENTRY

    @dbus_property(PropertyAccess.READ, name="SupportedUriSchemes")
    def supported_uri_schemes(self) -> DBusStrings:
        return []

    @dbus_property(PropertyAccess.READ, name="SupportedMimeTypes")
    def supported_mime_types(self) -> DBusStrings:
        return []


class Player(ServiceInterface):
    """``org.mpris.MediaPlayer2.Player``: what plays, and the transport keys."""

    def __init__(self, controls: Controls, volume: float) -> None:
        super().__init__(PLAYER_INTERFACE)
        self._controls = controls
        self._job: JobInfo | None = None
        self._paused = False
        self._position_s = 0.0
        self._volume = volume

    # -- state, from the scheduler -----------------------------------------------------------------

    def now_playing(self, now: NowPlaying[JobInfo]) -> None:
        """Take ``now`` in; PropertiesChanged for what changed (the position alone is silent)."""
        job = now.job if now.track_id is not None else None
        self._position_s = now.position_s
        old_id = self._job.id if self._job is not None else None
        new_id = job.id if job is not None else None
        if new_id == old_id and now.paused == self._paused:
            return
        status = self.playback_status
        self._job, self._paused = job, now.paused
        changed: dict[str, object] = {}
        if self.playback_status != status:
            changed["PlaybackStatus"] = self.playback_status
        if new_id != old_id:
            changed["Metadata"] = self.metadata
            if (old_id is None) != (new_id is None):
                changed.update(CanPlay=self.can_play, CanPause=self.can_pause)
                changed["CanGoNext"] = self.can_go_next
        if changed:
            self.emit_properties_changed(changed)

    def volume_changed(self, volume: float) -> None:
        if volume != self._volume:
            self._volume = volume
            self.emit_properties_changed({"Volume": volume})

    # -- methods -----------------------------------------------------------------------------------

    @dbus_method(name="Next")
    async def next(self):
        if self.can_go_next:
            await self._controls.skip()

    @dbus_method(name="Previous")
    async def previous(self):
        if self.can_go_previous:
            await self._controls.back()

    @dbus_method(name="Pause")
    async def pause(self):
        await self._pause()

    @dbus_method(name="PlayPause")
    async def play_pause(self):
        if self._job is not None or self._paused:  # resuming needs no track (space does that)
            await self._controls.toggle_pause()

    @dbus_method(name="Stop")
    async def stop(self):
        """Pauses: a station plays on for ever, so Play resumes where it stopped."""
        await self._pause()

    @dbus_method(name="Play")
    async def play(self):
        if self._paused:
            await self._controls.toggle_pause()

    async def _pause(self) -> None:
        # (a dbus_method cannot be called from Python: its wrapper drops what it returns)
        if self._job is not None and not self._paused:
            await self._controls.toggle_pause()

    @dbus_method(name="Seek")
    def seek(self, offset: DBusInt64):
        """CanSeek is false: no effect."""

    @dbus_method(name="SetPosition")
    def set_position(self, track_id: DBusObjectPath, position: DBusInt64):
        """CanSeek is false: no effect."""

    @dbus_method(name="OpenUri")
    def open_uri(self, uri: DBusStr):
        raise DBusError(ErrorType.NOT_SUPPORTED, "lofi plays only what it generates")

    # -- properties --------------------------------------------------------------------------------

    @dbus_property(PropertyAccess.READ, name="PlaybackStatus")
    def playback_status(self) -> DBusStr:
        if self._job is None:
            return "Stopped"
        return "Paused" if self._paused else "Playing"

    @dbus_property(PropertyAccess.READ, name="Metadata")
    def metadata(self) -> DBusDict:
        return track_metadata(self._job)

    @dbus_property(PropertyAccess.READ, name="Position")
    def position(self) -> DBusInt64:
        return round(self._position_s * 1_000_000) if self._job is not None else 0

    @dbus_property(name="Volume")
    def volume(self) -> DBusDouble:
        return self._volume

    @volume.setter
    async def volume(self, value: DBusDouble) -> None:
        # PropertiesChanged follows from the app (volume_changed), as for the volume keys
        await self._controls.set_volume(min(1.0, max(0.0, value)))

    @dbus_property(name="Rate")
    def rate(self) -> DBusDouble:
        return 1.0

    @rate.setter
    def rate(self, value: DBusDouble) -> None:
        """MinimumRate = MaximumRate = 1.0: there is no other rate to set."""

    @dbus_property(PropertyAccess.READ, name="MinimumRate")
    def minimum_rate(self) -> DBusDouble:
        return 1.0

    @dbus_property(PropertyAccess.READ, name="MaximumRate")
    def maximum_rate(self) -> DBusDouble:
        return 1.0

    @dbus_property(PropertyAccess.READ, name="CanGoNext")
    def can_go_next(self) -> DBusBool:
        return self._job is not None

    @dbus_property(PropertyAccess.READ, name="CanGoPrevious")
    def can_go_previous(self) -> DBusBool:
        return self._controls.can_go_back

    @dbus_property(PropertyAccess.READ, name="CanPlay")
    def can_play(self) -> DBusBool:
        return self._job is not None

    @dbus_property(PropertyAccess.READ, name="CanPause")
    def can_pause(self) -> DBusBool:
        return self._job is not None

    @dbus_property(PropertyAccess.READ, name="CanSeek")
    def can_seek(self) -> DBusBool:
        return False

    @dbus_property(PropertyAccess.READ, name="CanControl")
    def can_control(self) -> DBusBool:
        return True


class MprisService:
    """lofi on the session bus: :meth:`start` connects in the background, :meth:`on_event` takes
    every scheduler event, :meth:`volume_changed` the app's volume, :meth:`aclose` leaves."""

    def __init__(self, controls: Controls, *, volume: float) -> None:
        self._root = MediaPlayer2(controls)
        self._player = Player(controls, volume)
        self._bus: MessageBus | None = None
        self._task: asyncio.Task[None] | None = None
        self.bus_name: str | None = None  # the name owned, once on the bus

    def start(self) -> None:
        """Connect and take the name in a task of the running loop (events are kept meanwhile)."""
        self._task = asyncio.get_running_loop().create_task(self._connect(), name="mpris")

    async def _connect(self) -> None:
        try:
            self._bus = await asyncio.wait_for(MessageBus().connect(), CONNECT_TIMEOUT_S)
            self._bus.export(OBJECT_PATH, self._root)
            self._bus.export(OBJECT_PATH, self._player)
            for name in (BUS_NAME, f"{BUS_NAME}.instance{os.getpid()}"):
                reply = await self._bus.request_name(name, NameFlag.DO_NOT_QUEUE)
                if reply in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
                    self.bus_name = name
                    log.debug("MPRIS: %s on the session bus", name)
                    return
            raise LookupError(f"{BUS_NAME} and its instance name are taken")
        except Exception as exc:  # whatever the bus did, lofi plays on without it
            log.debug("MPRIS off: no usable D-Bus session bus (%s: %s)", type(exc).__name__, exc)
            await self._disconnect()

    def on_event(self, event: SchedulerEvent) -> None:
        if isinstance(event, NowPlaying):
            self._player.now_playing(event)

    def volume_changed(self, volume: float) -> None:
        self._player.volume_changed(volume)

    async def aclose(self) -> None:
        """Leave the bus (its name goes with the connection); idempotent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        await self._disconnect()

    async def _disconnect(self) -> None:
        bus, self._bus = self._bus, None
        self.bus_name = None
        if bus is None:
            return
        bus.disconnect()
        with contextlib.suppress(Exception):  # a bus that went away first says so here
            await asyncio.wait_for(bus.wait_for_disconnect(), CLOSE_TIMEOUT_S)
