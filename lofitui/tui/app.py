"""The lofi app: routes scheduler events to widgets and keys to scheduler intents.

Start-up is a pipeline of thread workers and messages (nothing blocks the event loop):
find the model → load engine, cache and player → attach the scheduler. With no model installed
the built-in synth plays at once, the first-run dialog offers the model, and it downloads in the
background (:mod:`lofitui.tui.model_download`) until the station hands over to it.
Widgets never talk to the scheduler; the app holds no engine or playback logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, TextIO

from textual import on, work
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.driver import Driver
from textual.message import Message
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from lofitui.config import (
    Config,
    Settings,
    build_settings,
    load_config,
    save_setting,
    save_settings,
)
from lofitui.engines.registry import BUILTIN_ENGINE
from lofitui.errors import LofiError
from lofitui.events import (
    JobChanged,
    JobInfo,
    JobProgress,
    Level,
    Notice,
    NowPlaying,
    OutputChanged,
    SchedulerEvent,
    Station,
    StationChanged,
    TrackSaved,
)
from lofitui.keymap import KEYS
from lofitui.tui import messages as m
from lofitui.tui.backend import Backend, Built, MissingModel, SchedulerLike
from lofitui.tui.declined import DeclinedDownloads
from lofitui.tui.desktop import DesktopLink, link_desktop
from lofitui.tui.history import PromptHistory
from lofitui.tui.keys import app_bindings
from lofitui.tui.model_download import BackgroundDownload, by_hand, progress_text
from lofitui.tui.screens import (
    ErrorScreen,
    FirstRunScreen,
    HelpScreen,
    LikesScreen,
    PlayedScreen,
    StationEditor,
)
from lofitui.tui.station_form import StationEdit, default_settings
from lofitui.tui.themes import DEFAULT_THEME, LoadedThemes, load_themes, next_theme
from lofitui.tui.widgets import NowPlayingView, PromptBar, PromptInput, QueuePanel, StatusBar
from lofitui.tui.widgets.footer import PlayerFooter
from lofitui.tui.widgets.visualiser import Visualiser, next_visualiser

QUIT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)
"""Signals that quit the player the way ``q`` does (exit status 128 + the signal's number)."""

PLAYER_ACTIONS = frozenset(spec.action.split("(")[0] for spec in KEYS)
"""The actions of the player's keys (which are plain keys again in the station editor)."""


@dataclass
class ModelFound(Message):
    path: Path


@dataclass
class BackendBuilt(Message):
    built: Built


@dataclass
class StartupStep(Message):
    """What start-up is doing now (shown in the status bar)."""

    text: str


class LofiApp(App[int]):
    """A terminal radio that never runs out: generate ahead, play gaplessly."""

    CSS_PATH = "lofi.tcss"
    TITLE = "lofi"
    BINDINGS = app_bindings()
    AUTO_FOCUS = None  # keys drive the player until / or i focuses the prompt
    # screen classes for small terminals (the rules are in lofi.tcss)
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (80, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (24, "-tall")]
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        settings: Settings,
        *,
        backend: Any = None,
        themes: LoadedThemes | None = None,
        warnings: Iterable[str] = (),
        config_path: Path | None = None,
        history: PromptHistory | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.backend = backend if backend is not None else Backend(settings)
        self.loaded_themes = themes if themes is not None else load_themes()
        self.startup_warnings = [*warnings, *self.loaded_themes.warnings]
        self.config_path = config_path
        self.history = history if history is not None else PromptHistory(settings.prompts)
        self.keymap: dict[str, str] = dict(settings.keymap)
        self.scheduler: SchedulerLike | None = None
        self.audio_problem: str | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._shutting_down = False
        self._volume = settings.volume  # applied when the scheduler attaches; then it holds it
        self._muted = False  # likewise
        self._exit_code = 0
        self._saved_notices: set[str] = set()
        self._signals: list[signal.Signals] = []
        self._missing: m.ModelMissing | None = None  # the model the built-in synth stands in for
        self._download: BackgroundDownload | None = None
        self.declined = DeclinedDownloads()
        self._on_air: str | None = None  # the engine of the station on air
        self._persisting = threading.Lock()  # one config file write at a time
        self._remembered: dict[str, str] = {}  # the latest value of each setting to save
        self._desktop: DesktopLink | None = None  # MPRIS, while the scheduler is attached

    # -- layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Vertical(id="main"):
            yield NowPlayingView(id="now-playing")
            yield QueuePanel(id="queue")
        yield PromptBar(self.history, id="prompt-bar")
        yield PlayerFooter()

    def on_mount(self) -> None:
        for theme in self.loaded_themes.themes:
            self.register_theme(theme)
        self.theme = self._initial_theme()
        if self.keymap:
            self.set_keymap(self.keymap)
        self.query_one("#now-playing").border_title = "now playing"
        self.query_one("#queue").border_title = "up next"
        self.query_one("#prompt-bar").border_title = "station"
        self.query_one(Visualiser).mode = self.settings.visualiser
        queue = self.query_one(QueuePanel)
        queue.lookahead = self.settings.lookahead
        queue.redraw()
        status = self.query_one(StatusBar)
        status.volume = self._volume
        status.state = "starting"
        for warning in self.startup_warnings:
            self.notify(warning, title="config", severity="warning", timeout=12)
        self._handle_quit_signals()
        self.find_model()

    def _handle_quit_signals(self) -> None:
        """SIGTERM and SIGHUP take the ``q`` path: jobs cancelled, terminal restored."""
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            # not possible off the main thread (or on a loop without signal support)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._quit_on_signal, signum)
                self._signals.append(signum)

    def _quit_on_signal(self, signum: int) -> None:
        self._exit_code = 128 + signum
        self.call_later(self.action_quit)

    def _initial_theme(self) -> str:
        wanted = self.settings.theme
        if wanted in self.available_themes:
            return wanted
        choices = ", ".join(self.loaded_themes.names) or DEFAULT_THEME
        self.startup_warnings.append(
            f"theme {wanted!r} not found (available: {choices}); using {DEFAULT_THEME}"
        )
        return DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"

    # -- start-up pipeline -------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="startup", name="find-model")
    def find_model(self) -> None:
        found = self.backend.find_model()
        if isinstance(found, MissingModel):
            self.post_message(m.ModelMissing(found.entry, found.destination, found.reason))
        else:
            self.post_message(ModelFound(found))

    @work(thread=True, exclusive=True, exit_on_error=False, group="startup", name="load")
    def load_backend(self, model_dir: Path | None) -> None:
        self.post_message(StartupStep("loading the model" if model_dir else "starting the synth"))
        self.post_message(BackendBuilt(self.backend.build(model_dir)))

    def on_model_found(self, message: ModelFound) -> None:
        self.load_backend(message.path)

    def on_model_missing(self, message: m.ModelMissing) -> None:
        self._missing = message
        self.load_backend(None)

    # -- the model the built-in synth stands in for ------------------------------------------------

    def _offer_model(self, asked: bool) -> None:
        """Offer the missing model: the dialog, unless declined before and not ``asked`` now."""
        missing = self._missing
        if missing is None or self._download is not None:
            return
        name = missing.entry.name
        if self.settings.offline:
            self.notify(
                f"{by_hand(missing)}\nlofi is offline (--offline): the built-in synth plays.",
                title=f"{name} is not installed",
                timeout=30,
            )
            return
        if not asked and name in self.declined:
            self.notify(f"the built-in synth plays; press d to download {name}", timeout=8)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.declined.discard(name)
                self._start_download(missing)
            else:
                self.declined.add(name)
                self.notify(f"the built-in synth plays on; press d to download {name}", timeout=8)

        self.push_screen(FirstRunScreen(missing.entry, missing.destination), answered)

    def _start_download(self, missing: m.ModelMissing) -> None:
        self._download = BackgroundDownload(
            self.backend,
            MissingModel(missing.entry, missing.destination, missing.reason),
            self.post_message,
        )
        self._status_bar().download = f"↓ {missing.entry.name}"
        self._download.start()

    def action_download_model(self) -> None:
        if self._download is not None:
            self.notify("the model is downloading (see the status bar)", timeout=3)
        elif self._missing is None:
            self.notify("the model is installed", timeout=3)
        else:
            self._offer_model(asked=True)

    def on_download_progressed(self, message: m.DownloadProgressed) -> None:
        if self._download is not None:
            text = progress_text(self._download.missing.entry.name, message.progress)
            self._status_bar().download = text

    def on_model_stage(self, message: m.ModelStage) -> None:
        self._status_bar().download = message.text

    def on_model_ready(self, message: m.ModelReady) -> None:
        self._download = None
        self._missing = None
        self._status_bar().download = ""
        scheduler = self.scheduler
        if scheduler is None or scheduler.station is None:
            return
        if scheduler.station.engine != BUILTIN_ENGINE:  # the listener chose another with e
            self.notify(f"{message.model} is ready: choose it with e", timeout=8)
            return
        try:
            scheduler.hand_over(replace(message.station, prompt=scheduler.station.prompt))
        except LofiError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(
            f"{message.model} is ready: the station moves to it after this track", timeout=8
        )

    def on_download_failed(self, message: m.DownloadFailed) -> None:
        self._download = None
        self._status_bar().download = ""
        self.notify(
            f"{by_hand(message.missing)}\nOr press d to try again. ({message.reason})",
            title=f"{message.missing.entry.name} was not downloaded",
            severity="warning",
            timeout=30,
        )

    def _status_bar(self) -> StatusBar:
        """The player's status bar, also while a dialog is on top."""
        return self.screen_stack[0].query_one(StatusBar)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """One place for start-up failures: say what went wrong, then quit when dismissed."""
        worker = event.worker
        if worker.group != "startup" or event.state != WorkerState.ERROR:
            return
        error = worker.error
        title = "cannot find the model" if worker.name == "find-model" else "cannot start"
        text = str(error) if isinstance(error, LofiError) else f"{type(error).__name__}: {error}"
        self.post_message(m.BackendFailed(title, text))

    def on_backend_failed(self, message: m.BackendFailed) -> None:
        self.query_one(StatusBar).state = "stopped"
        self._exit_code = 1
        self.push_screen(ErrorScreen(message.title, message.message), self._after_error)

    def _after_error(self, carry_on: bool | None) -> None:
        if not carry_on:
            self.exit(self._exit_code)

    async def on_backend_built(self, message: BackendBuilt) -> None:
        await self.attach(
            message.built.scheduler, message.built.station, message.built.audio_problem
        )
        if self.scheduler is not None:
            self._offer_model(asked=False)

    async def attach(
        self, scheduler: SchedulerLike, station: Any, audio_problem: str | None = None
    ) -> None:
        """Start driving ``scheduler`` on ``station`` (tests call this with a fake)."""
        if self._shutting_down:
            await scheduler.aclose()
            return
        self.scheduler = scheduler
        self.audio_problem = audio_problem
        self._unsubscribe = scheduler.subscribe(self._on_scheduler_event)
        await scheduler.start()
        self.query_one(Visualiser).listen(scheduler.heard)
        if self.settings.mpris and not self._shutting_down:
            self._desktop = link_desktop(self, scheduler)
        status = self.query_one(StatusBar)
        status.audio = scheduler.has_audio_output
        if not status.audio:
            self.notify(
                f"{audio_problem or 'no audio output device'}. lofi keeps generating and "
                "tries the output again every few seconds; press s to save tracks.",
                title="no sound",
                severity="warning",
                timeout=12,
            )
        scheduler.set_volume(self._volume)
        if self._muted != scheduler.muted:
            scheduler.toggle_mute()
        status.state = "tuning in"
        self.query_one(NowPlayingView).set_waiting(True)
        scheduler.set_station(station)

    def _on_scheduler_event(self, event: SchedulerEvent) -> None:
        """Scheduler callback (loop thread): post it to the app; floods coalesce."""
        self.post_message(m.SchedulerUpdate(event))

    # -- scheduler events → widgets ----------------------------------------------------------------

    def on_scheduler_update(self, message: m.SchedulerUpdate) -> None:
        match message.event:
            case JobChanged(job=job):
                queue = self.query_one(QueuePanel)
                queue.update_job(job)
                now_playing = self.query_one(NowPlayingView)
                now_playing.update_job(job)
                now_playing.set_waiting(queue.generating)
            case JobProgress(job_id=job_id, progress=progress):
                self.query_one(QueuePanel).update_progress(job_id, progress)
            case NowPlaying() as now:
                self._show_playback(now)
            case Level(rms=rms, peak=peak):
                self.query_one(NowPlayingView).push_level(rms, peak)
            case OutputChanged(available=available):
                self.query_one(StatusBar).audio = available
            case StationChanged(station=station):
                if self._on_air not in (None, station.engine):
                    self.notify(f"now playing {station.label}", timeout=6)
                self._on_air = station.engine
                self.query_one(PromptBar).set_station(station.prompt, station.label)
            case TrackSaved(path=path):
                self._saved_notices.add(f"saved {path}")
                self.notify(str(path), title="saved", timeout=8)
            case Notice(message=text, severity=severity):
                if text in self._saved_notices:  # already shown for the TrackSaved event
                    self._saved_notices.discard(text)
                    return
                self.notify(text, severity="information" if severity == "info" else severity)

    def _show_playback(self, now: NowPlaying[JobInfo]) -> None:
        view = self.query_one(NowPlayingView)
        view.update_playback(now.job, now.position_s, now.duration_s, now.paused, now.buffering)
        status = self.query_one(StatusBar)
        if now.job is not None:
            status.state = self._play_state(now.paused)
        elif self.scheduler is not None:
            status.state = "tuning in" if self.query_one(QueuePanel).generating else "idle"

    def _play_state(self, paused: bool) -> str:
        """The status bar's word for a track in the player."""
        if paused:
            return "paused"
        return "buffering" if self.query_one(NowPlayingView).buffering else "playing"

    def on_startup_step(self, message: StartupStep) -> None:
        self.query_one(StatusBar).state = message.text

    @on(PromptBar.Submitted)
    def _new_station(self, event: PromptBar.Submitted) -> None:
        self.set_focus(None)
        if self.scheduler is None:
            self.notify("still starting: the new station will apply when ready", timeout=4)
            self.settings = replace(self.settings, prompt=event.prompt)
            return
        # while a hand-over is pending, a new prompt goes straight to the model it waits for
        current = self.scheduler.handing_over_to or self.scheduler.station
        if current is None:
            return
        try:
            self.scheduler.set_station(replace(current, prompt=event.prompt))
        except LofiError as exc:
            self.notify(str(exc), severity="error")

    # -- actions (keys) ----------------------------------------------------------------------------

    def _live(self) -> SchedulerLike | None:
        if self.scheduler is None:
            self.notify("still starting…", timeout=2)
        return self.scheduler

    def action_toggle_pause(self) -> None:
        if (scheduler := self._live()) is not None:
            paused = scheduler.toggle_pause()
            status = self.query_one(StatusBar)
            if self.query_one(NowPlayingView).job is not None:
                status.state = self._play_state(paused)

    def action_skip(self) -> None:
        if (scheduler := self._live()) is not None:
            scheduler.skip()

    def action_regenerate(self) -> None:
        if (scheduler := self._live()) is not None:
            scheduler.regenerate("current")
            self.notify("making a new take of this track…", timeout=3)

    def action_save(self) -> None:
        if (scheduler := self._live()) is None:
            return
        try:
            scheduler.save_current()
        except LofiError as exc:
            self.notify(str(exc), title="not saved", severity="warning")
        # the TrackSaved event shows where it went

    def action_back(self) -> None:
        """The track before this one (MPRIS Previous too)."""
        if (scheduler := self._live()) is None:
            return
        try:
            scheduler.back()
        except LofiError as exc:
            self.notify(str(exc), timeout=4)

    def action_history(self) -> None:
        if (scheduler := self._live()) is not None and not isinstance(self.screen, PlayedScreen):
            self.push_screen(PlayedScreen(scheduler))

    def action_like(self) -> None:
        if (scheduler := self._live()) is None:
            return
        try:
            liked = scheduler.like_current()
        except LofiError as exc:
            self.notify(str(exc), severity="warning", timeout=3)
            return
        self.notify("♥ liked" if liked else "like taken back", timeout=3)

    def action_dislike(self) -> None:
        if (scheduler := self._live()) is None:
            return
        try:
            scheduler.dislike_current()
        except LofiError as exc:
            self.notify(str(exc), severity="warning", timeout=3)
            return
        self.notify("disliked: skipped, and this station will not play it again", timeout=3)

    def action_show_likes(self) -> None:
        """The station's liked tracks (a dialog: Enter plays one)."""
        if (scheduler := self._live()) is None:
            return
        station = scheduler.station
        if station is None:
            self.notify("no station yet", timeout=3)
            return

        def chosen(key: str | None) -> None:
            if key is None or self.scheduler is None:
                return
            try:
                self.scheduler.play_liked(key)
            except LofiError as exc:
                self.notify(str(exc), severity="warning")

        likes = scheduler.likes
        screen = LikesScreen(station.prompt, lambda: likes.liked(station.prompt), scheduler.unlike)
        self.push_screen(screen, chosen)

    def action_volume(self, delta: float) -> None:
        scheduler = self.scheduler
        current = scheduler.volume if scheduler is not None else self._volume
        volume = round(min(1.0, max(0.0, current + delta)), 2)
        if scheduler is None:
            self._volume = volume
        else:
            scheduler.set_volume(volume)
            volume = scheduler.volume
        self.query_one(StatusBar).volume = volume
        if delta > 0 and (scheduler.muted if scheduler is not None else self._muted):
            self.action_toggle_mute()

    def action_toggle_mute(self) -> None:
        if self.scheduler is not None:
            muted = self.scheduler.toggle_mute()
        else:
            muted = self._muted = not self._muted
        self.query_one(StatusBar).muted = muted

    def action_retry_audio(self) -> None:
        if (scheduler := self._live()) is None:
            return
        if scheduler.has_audio_output:
            self.notify("the audio output is working", timeout=3)
        else:
            scheduler.retry_audio()
            self.notify("trying the audio output again…", timeout=3)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The prompt and editor keys act only from the player itself: elsewhere (the prompt or
        another input focused, a dialog open) they are ordinary keys. In the station editor
        every player key is an ordinary key."""
        if action in ("focus_prompt", "edit_station"):
            return (len(self.screen_stack) == 1 and not isinstance(self.focused, Input)) or None
        if action in PLAYER_ACTIONS and isinstance(self.screen, StationEditor):
            return None
        return True

    def action_focus_prompt(self) -> None:
        # focus now, not on the next loop turn (Widget.focus): the keys queued behind this one
        # are routed to the focused widget, so a burst like "/tango" types "tango"
        self.screen.set_focus(self.query_one(PromptInput))

    def action_edit_station(self) -> None:
        if (scheduler := self._live()) is None:
            return
        # while a hand-over is pending, the station to edit is the one it moves to
        station = scheduler.handing_over_to or scheduler.station
        if station is None:
            self.notify("no station yet: type a prompt first", timeout=3)
            return
        downloading = self._download.missing.entry.name if self._download is not None else None
        self.push_screen(StationEditor(station, downloading=downloading), self._station_edited)

    def _station_edited(self, edit: StationEdit | None) -> None:
        """The editor's Apply: the station plays from the next track (Esc: None, nothing)."""
        if edit is None or self.scheduler is None:
            return
        try:
            self.scheduler.set_station(edit.station)
        except LofiError as exc:
            self.notify(str(exc), severity="error")
            return
        if edit.save_as_default:
            self._persist_station(edit.station)

    @work(thread=True, exclusive=True, group="persist-station", exit_on_error=False)
    def _persist_station(self, station: Station) -> None:
        top, tables = default_settings(station)
        try:
            save_settings(top, tables, self.config_path)
        except OSError as exc:
            text = f"not saved as the default: {exc.strerror or exc}"
            self.call_from_thread(self.notify, text, severity="warning")
        else:
            self.call_from_thread(self.notify, "saved as the default station", timeout=4)

    def action_cycle_theme(self) -> None:
        self.theme = next_theme(self.theme, self.loaded_themes.names)
        self.notify(f"theme: {self.theme}", timeout=2)
        self._remember("theme", self.theme)

    def action_cycle_visualiser(self) -> None:
        visualiser = self.query_one(Visualiser)
        visualiser.mode = next_visualiser(visualiser.mode)
        self.notify(f"visualiser: {visualiser.mode}", timeout=2)
        self._remember("visualiser", visualiser.mode)

    def _remember(self, key: str, value: str) -> None:
        """Save a setting changed in the app (theme, visualiser) to the config file."""
        self._remembered[key] = value
        self._persist(key)

    @work(thread=True, group="persist", exit_on_error=False)
    def _persist(self, key: str) -> None:
        # One write at a time, each of the latest value: quick presses of one key, or of
        # several, never leave an older value in the file or lose another key's.
        with self._persisting, contextlib.suppress(OSError):
            save_setting(key, self._remembered[key], self.config_path)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        await self.shutdown()
        self.exit(self._exit_code)

    async def shutdown(self) -> None:
        """Cancel jobs and close the audio stream (the scheduler does both); idempotent."""
        if self._shutting_down:
            return
        self._shutting_down = True
        if self._download is not None:
            self._download.cancel()
        with contextlib.suppress(NoMatches):  # gone already when called from on_unmount
            self.query_one(StatusBar).state = "closing"
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        desktop, self._desktop = self._desktop, None
        if desktop is not None:
            await desktop.aclose()
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            await scheduler.aclose()

    async def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        while self._signals:
            loop.remove_signal_handler(self._signals.pop())
        await self.shutdown()


class HangupSafeOutput:
    """The terminal's output stream, made to shrug off a hung-up terminal.

    Textual writes from one thread through a bounded queue; when the terminal goes away (window
    closed, ssh lost) a write fails with EIO, that thread dies, and the app blocks on the full
    queue for ever, deaf to SIGHUP. Here the failed write is dropped, and so are all later ones.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.gone = True

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()


def _hangup_safe(driver_class: type[Driver]) -> type[Driver]:
    """``driver_class`` writing through :class:`HangupSafeOutput` (the Unix terminal driver)."""
    if sys.platform == "win32":
        return driver_class
    from textual.drivers.linux_driver import LinuxDriver

    if not issubclass(driver_class, LinuxDriver):
        return driver_class

    class HangupSafeDriver(driver_class):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._file = HangupSafeOutput(self._file)

    return HangupSafeDriver


def create_app(
    settings: Settings | None = None,
    *,
    config: Config | None = None,
    backend: Any = None,
    config_path: Path | None = None,
    warnings: Iterable[str] = (),
    themes: LoadedThemes | None = None,
    history: PromptHistory | None = None,
) -> LofiApp:
    """Build the app for ``settings`` (built by the CLI); without them, from ``config`` or the
    config file alone. ``backend`` for tests."""
    if settings is None:
        if config is None:
            loaded = load_config(config_path)
            config, warnings, config_path = loaded.config, loaded.warnings, loaded.path
        settings = build_settings(config, {})
    return LofiApp(
        settings,
        backend=backend,
        themes=themes,
        warnings=warnings,
        config_path=config_path,
        history=history or PromptHistory.load(settings.prompts),
    )


def run_app(
    settings: Settings, *, warnings: Iterable[str] = (), config_path: Path | None = None
) -> int:
    """``lofi`` with no --render: run the app until the user quits; the exit code.

    An unexpected exception inside the app is raised again here, once the terminal is
    restored, for ``lofi``'s own one-line report (Textual's traceback is not printed); other
    exit messages reach stderr as usual.
    """
    from rich.console import Console

    app = create_app(settings, warnings=warnings, config_path=config_path)
    app.driver_class = _hangup_safe(app.driver_class)
    exit_messages = io.StringIO()
    app.error_console = Console(file=exit_messages, markup=False, highlight=False)
    result = app.run()
    crash = app._exception  # Textual keeps the first unhandled exception (Pilot re-raises it)
    if crash is not None:
        raise crash
    sys.stderr.write(exit_messages.getvalue())
    return int(result or 0)
