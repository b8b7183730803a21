"""The queue panel: the playing track, the ones being made or waiting, and recent failures.

A track handed to the player while still being generated gets a "streaming" line under its
row: how much of it is generated (``0:18 / 0:30``) and how fast. A liked track has a ♥ by its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget

from lofitui.engines.base import Progress
from lofitui.tui.widgets.format import bar, clamp, clock, rate_and_eta

if TYPE_CHECKING:
    from lofitui.events import JobInfo

# state → (icon, label, component class)
STATES: dict[str, tuple[str, str, str]] = {
    "playing": ("▶", "playing", "queue--playing"),
    "ready": ("◆", "ready", "queue--ready"),
    "generating": ("◐", "generating", "queue--generating"),
    "queued": ("○", "queued", "queue--queued"),
    "failed": ("✗", "failed", "queue--failed"),
}
SHOWN = frozenset(STATES)
STREAMING = ("∿", "streaming", "queue--streaming")  # the line under a streaming track's row
MAX_FAILED = 3


class QueueRows(Widget):
    """The panel's rows, drawn at paint time with the styles of the moment: a theme change
    restyles every row at once (rows drawn ahead would keep the old theme's colours)."""

    DEFAULT_CSS = """
    QueueRows { width: 1fr; height: auto; }
    """

    def __init__(self, rows: Callable[[], RenderableType], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rows = rows

    def render(self) -> RenderableType:
        return self._rows()


class QueuePanel(VerticalScroll):
    """Lists jobs by state; a generating job gets a live bar with its rate and ETA."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "queue--playing",
        "queue--ready",
        "queue--generating",
        "queue--queued",
        "queue--failed",
        "queue--streaming",
        "queue--prompt",
        "queue--dim",
        "queue--bar",
        "queue--bar-empty",
        "queue--error",
        "queue--liked",
    }
    DEFAULT_CSS = """
    QueuePanel { height: auto; }
    QueuePanel > .queue--playing { color: $accent; text-style: bold; }
    QueuePanel > .queue--ready { color: $success; }
    QueuePanel > .queue--generating { color: $primary; }
    QueuePanel > .queue--queued { color: $foreground 50%; }
    QueuePanel > .queue--failed { color: $error; text-style: bold; }
    QueuePanel > .queue--streaming { color: $secondary; text-style: bold; }
    QueuePanel > .queue--prompt { color: $foreground; }
    QueuePanel > .queue--dim { color: $foreground 55%; }
    QueuePanel > .queue--bar { color: $primary; }
    QueuePanel > .queue--bar-empty { color: $foreground 15%; }
    QueuePanel > .queue--error { color: $error; }
    QueuePanel > .queue--liked { color: $accent; text-style: bold; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.jobs: dict[str, JobInfo] = {}
        self.progress: dict[str, Progress] = {}
        self.lookahead = 2
        self._column = 40

    def compose(self) -> ComposeResult:
        yield QueueRows(self.render_rows, id="queue-rows")

    def on_mount(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    # -- updates (called by the app) ---------------------------------------------------------------

    def update_job(self, job: JobInfo) -> None:
        state = str(job.state)
        if state in SHOWN:
            self.jobs[job.id] = job
        else:
            self.jobs.pop(job.id, None)
        if state != "generating" and not job.streaming:
            self.progress.pop(job.id, None)
        self._trim_failed()
        self.redraw()

    def update_progress(self, job_id: str, progress: Progress) -> None:
        if job_id in self.jobs:
            self.progress[job_id] = progress
            self.redraw()

    def _trim_failed(self) -> None:
        failed = [j for j in self.jobs.values() if str(j.state) == "failed"]
        for job in sorted(failed, key=lambda j: j.created)[:-MAX_FAILED]:
            del self.jobs[job.id]

    @property
    def generating(self) -> bool:
        return any(str(j.state) in ("generating", "queued") for j in self.jobs.values())

    def ordered(self) -> list[JobInfo]:
        """Playing first, then the upcoming ones in queue order, then failures."""
        rank = {"playing": 0, "failed": 2}
        return sorted(self.jobs.values(), key=lambda j: (rank.get(str(j.state), 1), j.created))

    # -- drawing -----------------------------------------------------------------------------------

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(QueueRows).refresh(layout=True)
        upcoming = sum(1 for j in self.jobs.values() if str(j.state) != "playing")
        self.border_subtitle = f"{upcoming} upcoming" if upcoming else ""

    def render_rows(self) -> RenderableType:
        style = self.get_component_rich_style
        jobs = self.ordered()
        if not jobs:
            return Text(
                f"Nothing queued yet. lofi keeps {self.lookahead} tracks ready ahead of the one "
                "playing.",
                style=style("queue--dim"),
            )
        right = [_seed_label(j) for j in jobs]
        right += [self._rate(j) for j in jobs if str(j.state) == "generating" or j.streaming]
        right_width = max(len(r) for r in right)
        width = self.scrollable_content_region.width or self.size.width or 80
        self._column = max(8, width - right_width - 1 - 11 - 3)  # the prompt column
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=1, no_wrap=True)
        grid.add_column(width=11, no_wrap=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        for job in jobs:
            state = str(job.state)
            icon, label, cls = STATES[state]
            prompt_style = "queue--prompt" if state in ("playing", "generating") else "queue--dim"
            grid.add_row(
                Text(icon, style=style(cls)),
                Text(label, style=style(cls)),
                clamp(Text(job.station.prompt, style=style(prompt_style)), self._column, 1),
                self._seed_cell(job),
            )
            if job.streaming:
                grid.add_row(*self._streaming_cells(job))
            elif state == "generating":
                grid.add_row("", "", *self._progress_cells(job))
            elif state == "failed" and job.error:
                grid.add_row("", "", Text(job.error, style=style("queue--error")), "")
        return grid

    def _seed_cell(self, job: JobInfo) -> Text:
        style = self.get_component_rich_style
        seed = Text(f"seed {job.request.seed}", style=style("queue--dim"))
        return Text.assemble(("♥ ", style("queue--liked")), seed) if job.liked else seed

    def _progress_cells(self, job: JobInfo) -> tuple[Text, Text]:
        """The bar with its percentage, and the rate/ETA for the right-hand column."""
        style = self.get_component_rich_style
        progress = self.progress.get(job.id) or job.progress
        if progress is None:
            return Text("starting…", style=style("queue--dim")), Text("")
        suffix = f" {progress.fraction:4.0%}"
        line = bar(
            progress.fraction,
            max(8, self._column - len(suffix)),
            style("queue--bar"),
            style("queue--bar-empty"),
        )
        line.append(suffix, style=style("queue--generating"))
        return line, Text(self._rate(job), style=style("queue--dim"))

    def _streaming_cells(self, job: JobInfo) -> tuple[Text, Text, Text, Text]:
        """``∿ streaming ━━━━━━━━────── 0:18 / 0:30   61 tok/s``: generated of the whole."""
        style = self.get_component_rich_style
        icon, label, cls = STREAMING
        suffix = f" {clock(job.generated_s)} / {clock(job.duration_s)}"
        fraction = job.generated_s / job.duration_s if job.duration_s else 0.0
        line = bar(
            fraction,
            max(8, self._column - len(suffix)),
            style("queue--bar"),
            style("queue--bar-empty"),
        )
        line.append(suffix, style=style(cls))
        return (
            Text(icon, style=style(cls)),
            Text(label, style=style(cls)),
            line,
            Text(self._rate(job), style=style("queue--dim")),
        )

    def _rate(self, job: JobInfo) -> str:
        progress = self.progress.get(job.id) or job.progress
        return rate_and_eta(progress) if progress is not None else ""


def _seed_label(job: JobInfo) -> str:
    """``seed 4821``, with a ♥ before it when the track is liked."""
    return f"{'♥ ' if job.liked else ''}seed {job.request.seed}"
