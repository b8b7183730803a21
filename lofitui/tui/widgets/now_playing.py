"""The now-playing view: prompt, engine/model/seed (♥ when liked), elapsed/total with a bar
(three parts while the track is still being generated), the visualiser (spectrum or level meter)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from lofitui.tui.widgets.clamped import ClampedText
from lofitui.tui.widgets.format import bar, clock, stream_bar
from lofitui.tui.widgets.level_meter import LevelMeter
from lofitui.tui.widgets.visualiser import Visualiser

if TYPE_CHECKING:
    from lofitui.events import JobInfo


class TrackProgress(Widget):
    """``▶ 0:12 ━━━━━━╸───── 0:30``; the icon shows paused / buffering / idle.

    While the track is still being generated (``generated`` below ``duration``) the bar has a
    third part, ``━━━━╸───╌╌╌╌``: played, generated ahead of the playhead, still to come; and
    a note says how much is generated, or that playback waits for it ("buffering").
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "track-progress--filled",
        "track-progress--empty",
        "track-progress--generated",
        "track-progress--ahead",
        "track-progress--icon",
        "track-progress--note",
        "track-progress--buffering",
    }
    DEFAULT_CSS = """
    TrackProgress { height: 1; }
    TrackProgress > .track-progress--filled { color: $primary; }
    TrackProgress > .track-progress--empty { color: $foreground 20%; }
    TrackProgress > .track-progress--generated { color: $primary 60%; }
    TrackProgress > .track-progress--ahead { color: $foreground 25%; }
    TrackProgress > .track-progress--icon { color: $accent; text-style: bold; }
    TrackProgress > .track-progress--note { color: $foreground 60%; }
    TrackProgress > .track-progress--buffering { color: $warning; text-style: bold; }
    """

    position: reactive[float] = reactive(0.0)
    duration: reactive[float] = reactive(0.0)
    generated: reactive[float | None] = reactive(None)  # None: the track is complete
    paused: reactive[bool] = reactive(False)
    buffering: reactive[bool] = reactive(False)
    active: reactive[bool] = reactive(False)

    @property
    def streaming(self) -> bool:
        """Playing a track whose generation is still running."""
        return self.active and self.generated is not None and self.generated < self.duration

    @property
    def state(self) -> str:
        """``idle``, ``paused``, ``buffering`` or ``playing``: what the icon and note show."""
        if not self.active:
            return "idle"
        if self.paused:
            return "paused"
        return "buffering" if self.buffering else "playing"

    def render(self) -> RenderableType:
        style = self.get_component_rich_style
        state = self.state
        icon = {"paused": "❚❚", "buffering": "◌ ", "playing": "▶ "}.get(state, "· ")
        left = clock(self.position) if self.active else "-:--"
        right = clock(self.duration) if self.active else "-:--"
        note = self._note(state)
        extra = len(note) + 3 if note else 0
        width = max(0, self.size.width - len(left) - len(right) - 6 - extra)
        fraction = self.position / self.duration if self.active and self.duration else 0.0
        if self.streaming and self.generated is not None:
            line = stream_bar(
                fraction,
                self.generated / self.duration,
                width,
                style("track-progress--filled"),
                style("track-progress--generated"),
                style("track-progress--ahead"),
            )
        else:
            line = bar(
                fraction, width, style("track-progress--filled"), style("track-progress--empty")
            )
        grid = Table.grid(padding=(0, 1))
        for _ in range(5 if note else 4):
            grid.add_column(no_wrap=True)
        cells: list[RenderableType] = [
            Text(icon, style=style("track-progress--icon")),
            left,
            line,
            right,
        ]
        if note:
            cls = "track-progress--buffering" if state == "buffering" else "track-progress--note"
            cells.append(Text.assemble(("· ", style("track-progress--note")), (note, style(cls))))
        grid.add_row(*cells)
        return grid

    def _note(self, state: str) -> str:
        """``buffering…`` at the frontier; ``0:18 generated`` while the track streams."""
        if state == "buffering":
            return "buffering…"
        if self.streaming and self.generated is not None:
            return f"{clock(self.generated)} generated"
        return ""


class NowPlayingView(Vertical):
    """What is playing now; the app feeds it the scheduler's NowPlaying and Level events."""

    DEFAULT_CSS = """
    NowPlayingView { height: 1fr; }
    NowPlayingView #np-title { text-style: bold; color: $foreground; }
    NowPlayingView #np-meta {
        color: $foreground 60%; margin-bottom: 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    NowPlayingView TrackProgress { margin-bottom: 1; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.job: JobInfo | None = None
        self.paused = False
        self.waiting = False  # something is being generated for the first slot

    def compose(self) -> ComposeResult:
        yield ClampedText(id="np-title")  # a prompt of any length: two lines at most
        yield Static(id="np-meta")
        yield TrackProgress()
        yield Visualiser()

    def on_mount(self) -> None:
        self._show_idle()

    def _show_idle(self) -> None:
        title = self.query_one("#np-title", ClampedText)
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
        self,
        job: JobInfo | None,
        position_s: float,
        duration_s: float,
        paused: bool,
        buffering: bool = False,
    ) -> None:
        """Show ``job`` at ``position_s`` (None: nothing is playing); ``buffering``: playback
        waits at the frontier of the track's generation."""
        progress = self.query_one(TrackProgress)
        if job is None:
            if self.job is not None:
                self.job = None
                self._show_idle()
                self.query_one(LevelMeter).clear()
            progress.active = False
            progress.paused = paused
            progress.buffering = False
            return
        if self.job is None or job.id != self.job.id:
            self.query_one("#np-title", ClampedText).update(job.station.prompt)
            self._show_meta(job)
        else:
            if job.liked != self.job.liked:
                self._show_meta(job)
            if self.job.generated_s > job.generated_s:
                # a JobChanged already told of more audio than this snapshot
                job = replace(self.job, liked=job.liked)
        self.job = job
        progress.active = True
        progress.position = position_s
        progress.duration = duration_s or job.duration_s
        progress.paused = paused
        progress.buffering = buffering
        self._show_generated()

    def update_job(self, job: JobInfo) -> None:
        """A newer snapshot of a job (JobChanged): the playing one's generation may have grown."""
        if self.job is not None and job.id == self.job.id:
            if job.liked != self.job.liked:
                self._show_meta(job)
            self.job = job
            self._show_generated()

    @property
    def buffering(self) -> bool:
        """Playback waits at the frontier of a track still being generated."""
        progress = self.query_one(TrackProgress)
        return progress.active and progress.buffering

    def _show_generated(self) -> None:
        if self.job is None:
            return
        progress = self.query_one(TrackProgress)
        if self.job.streaming:
            # while it grows the player may know only what it holds: the total is the request's
            progress.duration = max(progress.duration, self.job.duration_s)
            progress.generated = max(self.job.generated_s, progress.position)
        else:
            progress.generated = None

    def _show_meta(self, job: JobInfo) -> None:
        text = describe(job)
        meta = Content.from_markup("[$accent bold]♥ liked[/] · $text", text=text)
        self.query_one("#np-meta", Static).update(meta if job.liked else Content(text))

    def push_level(self, rms: float, peak: float) -> None:
        self.query_one(LevelMeter).push(rms, peak)


def describe(job: JobInfo) -> str:
    """``musicgen · musicgen-small · seed 4821 · 30 s`` for the meta line."""
    request = job.request
    return " · ".join([job.station.label, f"seed {request.seed}", f"{request.duration_s:g} s"])
