"""The blocking start-up steps behind the app: find the model, download it, build the scheduler.

With no model installed the app plays the built-in engine (``build(None)``) while the model
downloads in the background; :meth:`Backend.station_for` then opens it for the hand-over.

Every method here may block (disk, network, ONNX session creation) and is called from a thread
worker, never on the event loop. Tests hand the app another :class:`Backend` (a fake scheduler,
no model) through :func:`lofitui.tui.app.create_app`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lofitui.config import Settings
from lofitui.errors import DeviceError, ModelError

if TYPE_CHECKING:
    from lofitui.audio.types import Audio
    from lofitui.engines.base import Engine, ParamValue
    from lofitui.events import JobInfo, SchedulerEvent, Station
    from lofitui.library.likes import Likes
    from lofitui.library.paces import Paces
    from lofitui.library.played import PlayHistory
    from lofitui.models.catalog import ModelEntry
    from lofitui.models.download import DownloadProgress
    from lofitui.session import OpenEngine


@dataclass(frozen=True)
class MissingModel:
    """The configured catalog model is not on disk yet (the first-run dialog offers it)."""

    entry: ModelEntry
    destination: Path
    reason: str


class SchedulerLike(Protocol):
    """The part of :class:`lofitui.scheduler.Scheduler` the app uses (fakes implement this)."""

    async def start(self) -> None: ...
    async def aclose(self) -> None: ...
    def subscribe(self, callback: Callable[[SchedulerEvent], None]) -> Callable[[], None]: ...
    def set_station(self, station: Station) -> None: ...
    def hand_over(self, station: Station) -> None: ...
    def skip(self) -> None: ...
    def regenerate(self, which: str = "current") -> None: ...
    def save_current(self) -> Path | None: ...
    def toggle_pause(self) -> bool: ...
    def set_volume(self, volume: float) -> None: ...
    def toggle_mute(self) -> bool: ...
    def retry_audio(self) -> None: ...
    def back(self) -> JobInfo: ...
    def play(self, key: str, *, save: bool = False) -> JobInfo: ...
    def cached(self, key: str) -> bool: ...
    def save_played(self, key: str) -> Path: ...
    def heard(self, frames: int) -> Audio | None: ...
    def like_current(self) -> bool: ...
    def unlike(self, key: str) -> None: ...
    def dislike_current(self) -> None: ...
    def play_liked(self, key: str) -> None: ...

    likes: Likes

    @property
    def played(self) -> PlayHistory: ...
    @property
    def station(self) -> Station | None: ...
    @property
    def handing_over_to(self) -> Station | None: ...
    @property
    def volume(self) -> float: ...
    @property
    def muted(self) -> bool: ...
    @property
    def has_audio_output(self) -> bool: ...


@dataclass
class Built:
    """A ready scheduler, plus why there is no sound if the audio output could not open."""

    scheduler: SchedulerLike
    station: Station
    audio_problem: str | None = None


DownloadCallback = Callable[["DownloadProgress"], None]


class Backend:
    """The real thing: catalog models, ONNX engines, the track cache and the audio player."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engines: dict[tuple[str, ...], OpenEngine] = {}
        self._lock = threading.Lock()
        self._paces: Paces | None = None  # the scheduler's, loaded once (see _open)

    # -- model -------------------------------------------------------------------------------------

    def find_model(self) -> Path | MissingModel:
        """The model's directory, or what to download; never touches the network."""
        from lofitui import session
        from lofitui.engines.registry import engine_class
        from lofitui.models import catalog, locate_model, store

        model = self.settings.model
        if getattr(engine_class(self.settings.engine), "model_free", False):
            return session.locate(self.settings.engine, model, offline=True, consent=None)
        try:
            return locate_model(model)
        except ModelError as exc:
            entry = catalog.find_entry(model)
            if entry is None or entry.is_export:
                raise  # made by `lofi models export`, not downloadable: the error says how
            return MissingModel(entry, store.model_dir(entry.name), str(exc))

    def download(
        self, entry: ModelEntry, progress: DownloadCallback, cancel: threading.Event
    ) -> Path:
        """Fetch ``entry`` (the user said yes in the dialog)."""
        from lofitui import session

        return session.locate(
            entry.engine,
            entry.name,
            offline=self.settings.offline,
            consent=lambda _plan: True,
            progress=progress,
            cancel=cancel,
        )

    # -- engines -----------------------------------------------------------------------------------

    def engine_for(self, station: Station) -> Engine:
        """The loaded engine for ``station``'s lane (engine, model and the parameters the model
        is loaded with), opening it on first use."""
        return self._open(station.lane, station.engine, station.model, station.params).engine

    def _open(
        self,
        key: tuple[str, ...],
        engine: str,
        model: str,
        params: Mapping[str, ParamValue],
    ) -> OpenEngine:
        from lofitui import session
        from lofitui.events import Station

        with self._lock:
            opened = self._engines.get(key)
            if opened is None:
                s = self.settings
                opened = session.open_engine(
                    engine, model, device=s.device, threads=s.threads, offline=True, params=params
                )
                loaded = Station("", engine, model, params={**opened.defaults, **params})
                if not self.paces.slowdown(loaded.lane):
                    # Nothing learned yet on this machine: the first track's start rule needs
                    # how the model slows within a track, measured now (under a second, once).
                    opened.engine.measure_pace()
                self._engines[key] = opened
            return opened

    @property
    def paces(self) -> Paces:
        """The learned slowdowns (state directory), shared with the scheduler."""
        if self._paces is None:
            from lofitui.library.paces import Paces

            self._paces = Paces.load()
        return self._paces

    def station_for(self, model_dir: Path | None) -> Station:
        """Open the configured engine (the built-in one when ``model_dir`` is None: no model is
        installed yet) and return the station the settings ask for on it.

        ``model_dir`` is where :meth:`find_model` or the download put the model: the engine is
        opened through the same session step as every front-end's (never downloading here).
        """
        from lofitui.engines.registry import BUILTIN_ENGINE
        from lofitui.events import Station
        from lofitui.models.catalog import DEFAULT_MODELS

        s = self.settings
        if model_dir is None:
            name, model, params = BUILTIN_ENGINE, DEFAULT_MODELS[BUILTIN_ENGINE], {}
        else:
            name, model, params = s.engine, s.model, dict(s.params)
        asked = Station(s.prompt, name, model, params=params)
        opened = self._open(asked.lane, name, model, params)
        engine = opened.engine
        lo, hi = engine.min_duration_s, engine.max_duration_s
        station = Station(
            prompt=s.prompt,
            engine=name,
            model=model,
            duration_s=min(max(s.duration, lo), hi),
            params={**opened.defaults, **params},
        )
        with self._lock:  # the defaults name what was loaded (compute type auto: int8)
            self._engines.setdefault(station.lane, opened)
        return station

    def build(self, model_dir: Path | None) -> Built:
        """Open the engine (see :meth:`station_for`), the cache and the audio output; return a
        scheduler for them."""
        from lofitui.audio.loudness import Loudness
        from lofitui.library import PlayHistory, TrackCache
        from lofitui.library.likes import Likes
        from lofitui.scheduler import Scheduler

        s = self.settings
        station = self.station_for(model_dir)
        cache = TrackCache(cap_bytes=int(s.cache_max_gb * 1_000_000_000))
        player, problem = open_player(s.crossfade)
        scheduler = Scheduler(
            self.engine_for,
            cache,
            player,
            lookahead=s.lookahead,
            crossfade_s=s.crossfade,
            flow=s.flow,
            played=PlayHistory.load(cache=cache),
            likes=Likes.load(),
            paces=self.paces,
            loudness=Loudness(s.loudness),
        )
        return Built(scheduler, station, problem)


def open_player(crossfade_s: float) -> tuple[Any, str | None]:
    """Start the audio player, and why it has no output if it has none (it plays on unheard and
    retries); (None, why) if PortAudio is missing."""
    try:
        from lofitui.audio.player import Player

        player = Player(crossfade_s=crossfade_s)
        player.start()
    except DeviceError as exc:
        return None, str(exc)
    except OSError as exc:  # PortAudio missing entirely
        return None, f"no audio output: {exc}"
    return player, player.output_error
