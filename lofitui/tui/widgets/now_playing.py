"""The now-playing view: prompt, engine/model/seed, elapsed/total with a bar, a level meter."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from lofitui.tui.widgets.format import bar, clock
from lofitui.tui.widgets.level_meter import LevelMeter

if TYPE_CHECKING:
    from lofitui.events import JobInfo


class TrackProgress(Widget):
    """``▶ 0:12 ━━━━━━╸───── 0:30``; the icon shows paused / muted / idle."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "track-progress--filled",
        "track-progress--empty",
        "track-progress--icon",
    }
    DEFAULT_CSS = """
    TrackProgress { height: 1; }
    TrackProgress > .track-progress--filled { color: $primary; }
    TrackProgress > .track-progress--empty { color: $foreground 20%; }
    TrackProgress > .track-progress--icon { color: $accent; text-style: bold; }
    """

    position: reactive[float] = reactive(0.0)
    duration: reactive[float] = reactive(0.0)
    paused: reactive[bool] = reactive(False)
    active: reactive[bool] = reactive(False)

    def render(self) -> RenderableType:
        icon = "❚❚" if self.paused else "▶ " if self.active else "· "
        left = clock(self.position) if self.active else "-:--"
        right = clock(self.duration) if self.active else "-:--"
        width = max(0, self.size.width - len(left) - len(right) - 6)
        fraction = self.position / self.duration if self.active and self.duration else 0.0
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_row(
            Text(icon, style=self.get_component_rich_style("track-progress--icon")),
            left,
            bar(
                fraction,
                width,
                self.get_component_rich_style("track-progress--filled"),
                self.get_component_rich_style("track-progress--empty"),
            ),
            right,
        )
        return grid


class NowPlayingView(Vertical):
    """What is playing now; the app feeds it the scheduler's NowPlaying and Level events."""

    DEFAULT_CSS = """
    NowPlayingView { height: 1fr; }
    NowPlayingView #np-title { text-style: bold; color: $foreground; }
    NowPlayingView #np-meta { color: $foreground 60%; margin-bottom: 1; }
    NowPlayingView TrackProgress { margin-bottom: 1; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.job: JobInfo | None = None
        self.paused = False
        self.waiting = False  # something is being generated for the first slot

    def compose(self) -> ComposeResult:
        yield Static(id="np-title")
        yield Static(id="np-meta")
        yield TrackProgress()
        yield LevelMeter()

    def on_mount(self) -> None:
        self._show_idle()

    def _show_idle(self) -> None:
        title = self.query_one("#np-title", Static)
        meta = self.query_one("#np-meta", Static)
        if self.waiting:
            title.update("Tuning in…")
            meta.update("the first track is being generated: it starts the moment it is ready")
        else:
            title.update("Nothing playing")
            meta.update("press / and describe some music to start a station")

    def set_waiting(self, waiting: bool) -> None:
        if waiting != self.waiting:
            self.waiting = waiting
            if self.job is None:
                self._show_idle()

    def update_playback(
        self, job: JobInfo | None, position_s: float, duration_s: float, paused: bool
    ) -> None:
        """Show ``job`` at ``position_s`` (None: nothing is playing)."""
        progress = self.query_one(TrackProgress)
        if job is None:
            if self.job is not None:
                self.job = None
                self._show_idle()
                self.query_one(LevelMeter).clear()
            progress.active = False
            progress.paused = paused
            return
        if self.job is None or job.id != self.job.id:
            self.query_one("#np-title", Static).update(Text(job.station.prompt))
            self.query_one("#np-meta", Static).update(describe(job))
        self.job = job
        progress.active = True
        progress.position = position_s
        progress.duration = duration_s or job.request.duration_s
        progress.paused = paused

    def push_level(self, rms: float, peak: float) -> None:
        self.query_one(LevelMeter).push(rms, peak)


def describe(job: JobInfo) -> str:
    """``musicgen · musicgen-small · seed 4821 · 30 s`` for the meta line."""
    request = job.request
    model = job.station.model
    model = model.rstrip("/").rsplit("/", 1)[-1] if "/" in model else model
    return " · ".join(
        [job.station.engine, model, f"seed {request.seed}", f"{request.duration_s:g} s"]
    )
