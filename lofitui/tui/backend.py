"""The blocking start-up steps behind the app: find the model, download it, build the scheduler.

Every method here may block (disk, network, ONNX session creation) and is called from a thread
worker, never on the event loop. Tests hand the app another :class:`Backend` (a fake scheduler,
no model) through :func:`lofitui.tui.app.create_app`.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lofitui.config import Config
from lofitui.errors import DeviceError, ModelError

if TYPE_CHECKING:
    from lofitui.engines.base import Engine
    from lofitui.events import SchedulerEvent, Station
    from lofitui.models.catalog import ModelEntry
    from lofitui.models.download import DownloadProgress


@dataclass(frozen=True)
class Settings:
    """What this run uses: the config file, overridden by command-line options."""

    prompt: str
    prompts: tuple[str, ...]
    engine: str
    model: str
    # No defaults here: Config holds them, from_config copies every one.
    device: str
    threads: int
    duration: float
    lookahead: int
    crossfade: float
    cache_max_gb: float
    volume: float
    theme: str
    keymap: Mapping[str, str]
    params: Mapping[str, Any] = field(default_factory=dict)
    offline: bool = False
    assume_yes: bool = False

    @classmethod
    def from_config(cls, config: Config, args: argparse.Namespace | None = None) -> Settings:
        """``config`` with every option given on the command line (not left at default) applied."""
        values: dict[str, Any] = {
            "prompt": config.prompt,
            "prompts": config.prompts,
            "engine": config.engine,
            "model": config.model,
            "device": config.device,
            "threads": config.threads,
            "duration": config.duration,
            "lookahead": config.lookahead,
            "crossfade": config.crossfade,
            "cache_max_gb": config.cache_max_gb,
            "volume": config.volume,
            "theme": config.theme,
            "keymap": dict(config.keymap),
        }
        if args is None:
            return cls(**values)
        from lofitui.cli import build_parser

        parser = build_parser()
        for name in ("engine", "model", "device", "threads", "duration"):
            given = getattr(args, name, None)
            if given is not None and given != parser.get_default(name):
                values[name] = given
        sampling = {
            "top_k": getattr(args, "top_k", None),
            "temperature": getattr(args, "temperature", None),
            "guidance": getattr(args, "guidance", None),
        }
        values["params"] = {k: v for k, v in sampling.items() if v is not None}
        values["offline"] = bool(getattr(args, "offline", False))
        values["assume_yes"] = bool(getattr(args, "yes", False))
        return cls(**values)

    @property
    def model_label(self) -> str:
        """The model as shown in the UI: a catalog name, or a directory's last component."""
        return Path(self.model).name if ("/" in self.model or "\\" in self.model) else self.model


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
    def skip(self) -> None: ...
    def regenerate(self, which: str = "current") -> None: ...
    def save_current(self) -> Path: ...
    def toggle_pause(self) -> bool: ...
    def set_volume(self, volume: float) -> None: ...
    def toggle_mute(self) -> bool: ...

    @property
    def station(self) -> Station | None: ...
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
        self._engines: dict[tuple[str, str], Engine] = {}
        self._lock = threading.Lock()

    # -- model -------------------------------------------------------------------------------------

    def find_model(self) -> Path | MissingModel:
        """The model's directory, or what to download; never touches the network."""
        from lofitui.models import catalog, locate_model, store

        model = self.settings.model
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
        from lofitui.models import ensure_model

        return ensure_model(
            entry.name,
            engine=entry.engine,
            assume_yes=True,
            offline=self.settings.offline,
            progress=progress,
            cancel=cancel,
        )

    # -- engines -----------------------------------------------------------------------------------

    def engine_for(self, station: Station) -> Engine:
        """The loaded engine for ``station``'s (engine, model), loading it on first use."""
        from lofitui.engines.registry import load_engine
        from lofitui.engines.runtime import RuntimeOptions
        from lofitui.models import locate_model

        key = (station.engine, station.model)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                options = RuntimeOptions(device=self.settings.device, threads=self.settings.threads)
                model_dir = locate_model(station.model)
                engine = load_engine(station.engine, model_dir, options, model_name=station.model)
                self._engines[key] = engine
            return engine

    def build(self, model_dir: Path) -> Built:
        """Load the engine, open the cache and the audio output; return a scheduler for them."""
        from lofitui.engines.registry import load_engine
        from lofitui.engines.runtime import RuntimeOptions
        from lofitui.events import Station
        from lofitui.library import TrackCache
        from lofitui.models.optimize import ensure_fast_decoder
        from lofitui.scheduler import Scheduler

        s = self.settings
        options = RuntimeOptions(device=s.device, threads=s.threads)
        on_cpu = options.providers()[0] == "CPUExecutionProvider"
        ensure_fast_decoder(model_dir, s.engine, on_cpu, on_stage=lambda _msg: None)
        engine = load_engine(s.engine, model_dir, options, model_name=s.model)
        self._engines[(s.engine, s.model)] = engine
        defaults = getattr(engine, "default_params", dict)()
        lo, hi = engine.min_duration_s, engine.max_duration_s
        duration = min(max(s.duration, lo), hi)
        station = Station(
            prompt=s.prompt,
            engine=s.engine,
            model=s.model,
            duration_s=duration,
            params={**defaults, **s.params},
        )
        cache = TrackCache(cap_bytes=int(s.cache_max_gb * 1_000_000_000))
        player, problem = open_player(s.crossfade)
        scheduler = Scheduler(self.engine_for, cache, player, lookahead=s.lookahead)
        return Built(scheduler, station, problem)


def open_player(crossfade_s: float) -> tuple[Any, str | None]:
    """Start the audio player; (None, why) if there is no usable output device."""
    try:
        from lofitui.audio.player import Player

        player = Player(crossfade_s=crossfade_s)
        player.start()
    except DeviceError as exc:
        return None, str(exc)
    except OSError as exc:  # PortAudio missing entirely
        return None, f"no audio output: {exc}"
    return player, None
