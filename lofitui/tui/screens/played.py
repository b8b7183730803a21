"""``h``: the tracks played, newest first; Enter plays one again, ``s`` saves it.

A track whose audio the cache has evicted is still listed (its request is in the history):
playing or saving it first asks whether to generate it again, which gives the same music
(same request, same seed).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from lofitui.errors import LofiError
from lofitui.tui.screens.confirm import ConfirmScreen
from lofitui.tui.widgets.format import clock

if TYPE_CHECKING:
    from lofitui.library.played import PlayedTrack
    from lofitui.tui.backend import SchedulerLike

# Each track is two lines: its prompt, then seed · length · model. The track column takes what
# the "played" and marks columns leave of the card.
PLAYED_WIDTH = 8
MIN_TRACK = 12
CARD_MAX_WIDTH = 130


class PlayedScreen(ModalScreen[None]):
    """The track history of ``scheduler``; ``now`` fixes the clock (snapshots)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "save", "Save", id="played.save"),
        Binding("escape,h,q", "dismiss", "Close", id="played.close"),
    ]

    AUTO_FOCUS = "#played-table"
    COMPONENT_CLASSES: ClassVar[set[str]] = {"played--dim", "played--liked", "played--saved"}
    DEFAULT_CSS = """
    PlayedScreen #played-card {
        width: 95%;
        max-width: 130;  /* CARD_MAX_WIDTH */
        height: auto;
        max-height: 90%;
        padding: 1 2;
        background: $surface;
        border: round $primary;
        border-title-color: $primary;
        border-title-style: bold;
    }
    PlayedScreen #played-table { height: auto; max-height: 55vh; background: $surface; }
    PlayedScreen #played-empty, PlayedScreen #played-hint { color: $foreground 55%; }
    PlayedScreen #played-hint { margin-top: 1; }
    PlayedScreen > .played--dim { color: $foreground 55%; }
    PlayedScreen > .played--liked { color: $error; text-style: bold; }
    PlayedScreen > .played--saved { color: $success; }
    """

    def __init__(self, scheduler: SchedulerLike, *, now: float | None = None) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.now = now
        self.tracks: list[PlayedTrack] = []

    def compose(self) -> ComposeResult:
        card = Vertical(id="played-card")
        card.border_title = "history"
        with card:
            yield DataTable(id="played-table", cursor_type="row", zebra_stripes=False)
            yield Static(
                "Nothing played yet: tracks appear here as they play.",
                id="played-empty",
                markup=False,
            )
            yield Static(
                "Enter plays it now · s saves it · Esc closes",
                id="played-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        # restyle the rows once the new theme's styles are in place
        self.watch(self.app, "theme", lambda _: self.call_after_refresh(self.fill), init=False)
        self.fill()

    def on_resize(self) -> None:
        self.fill()

    # -- the list ---------------------------------------------------------------------------------

    def fill(self) -> None:
        """(Re)build the rows from the history, keeping the cursor on the same track."""
        table = self.query_one(DataTable)
        selected = self.selected
        self.tracks = self.scheduler.played.entries
        empty = self.query_one("#played-empty", Static)
        empty.display = not self.tracks
        table.display = bool(self.tracks)
        cached = [self.scheduler.cached(entry.key) for entry in self.tracks]
        marks = [self._marks(entry, c) for entry, c in zip(self.tracks, cached, strict=True)]
        marks_width = max((m.cell_len for m in marks), default=1)
        card = min(CARD_MAX_WIDTH, self.app.size.width * 95 // 100)
        # the card's border and padding, three cells' padding, the scrollbar
        width = max(MIN_TRACK, card - 6 - 6 - 2 - PLAYED_WIDTH - marks_width)
        table.clear(columns=True)
        table.add_column("played", width=PLAYED_WIDTH)
        table.add_column("track", width=width)
        table.add_column("", width=marks_width)
        now = self.now if self.now is not None else time.time()
        for entry, c, m in zip(self.tracks, cached, marks, strict=True):
            cells = (Text(ago(entry.played_at, now), style=self._dim), self._track(entry, c, width))
            table.add_row(*cells, m, key=entry.key, height=2)
        if selected is not None and selected.key in {t.key for t in self.tracks}:
            table.move_cursor(row=table.get_row_index(selected.key))

    @property
    def _dim(self) -> Style:
        return self.get_component_rich_style("played--dim", partial=True)

    def _track(self, entry: PlayedTrack, cached: bool, width: int) -> Text:
        """The prompt on one line over ``seed · length · model``; dimmed if not cached."""
        request = entry.request
        prompt = Text(" ".join(request.prompt.split()), style="" if cached else self._dim)
        prompt.truncate(width, overflow="ellipsis")
        model = request.model.rstrip("/").rsplit("/", 1)[-1]
        about = Text(f"seed {request.seed} · {clock(request.duration_s)} · {model}")
        about.stylize(self._dim)
        about.truncate(width, overflow="ellipsis")
        return Text("\n").join([prompt, about])

    def _marks(self, entry: PlayedTrack, cached: bool) -> Text:
        """``♥`` liked, ``✗`` disliked, ``saved``, ``not cached``."""

        def style(name: str) -> Style:
            return self.get_component_rich_style(name, partial=True)

        marks = Text(no_wrap=True)
        if entry.liked is not None:
            liked = style("played--liked") if entry.liked else self._dim
            marks.append("♥ " if entry.liked else "✗ ", style=liked)
        if entry.saved:
            marks.append("saved ", style=style("played--saved"))
        if not cached:
            marks.append("not cached", style=self._dim)
        marks.rstrip()
        return marks

    @property
    def selected(self) -> PlayedTrack | None:
        table = self.query_one(DataTable)
        if not self.tracks or table.row_count == 0:
            return None
        return self.tracks[min(table.cursor_row, len(self.tracks) - 1)]

    # -- actions ----------------------------------------------------------------------------------

    @on(DataTable.RowSelected)
    def _play_selected(self) -> None:
        entry = self.selected
        if entry is None:
            return
        if self.scheduler.cached(entry.key):
            self._play(entry, save=False)
        else:
            self._offer_to_generate(entry, save=False)

    def action_save(self) -> None:
        entry = self.selected
        if entry is None:
            return
        if not self.scheduler.cached(entry.key):
            self._offer_to_generate(entry, save=True)
            return
        try:
            self.scheduler.save_played(entry.key)  # its TrackSaved says where
        except LofiError as exc:
            self.notify(str(exc), title="not saved", severity="warning")
        self.fill()

    def _play(self, entry: PlayedTrack, save: bool) -> None:
        try:
            self.scheduler.play(entry.key, save=save)
        except LofiError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.dismiss()

    def _offer_to_generate(self, entry: PlayedTrack, save: bool) -> None:
        then = "play it and save it to your music folder" if save else "play it"
        question = (
            "The cache no longer holds this track's audio (it was evicted, or the track was "
            f"cut short). Generate it again from its request, seed {entry.request.seed}? "
            f"It is the same music; lofi will {then} as soon as it can."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._play(entry, save)

        self.app.push_screen(ConfirmScreen("generate it again?", question, "Generate"), answered)


def ago(then: float, now: float) -> str:
    """How long before ``now`` ``then`` was: ``"now"``, ``"5 min"``, ``"3 h"``, ``"2 d"``;
    the day past a week (``"Nov 20"``)."""
    seconds = now - then
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} d"
    return time.strftime("%b %d", time.localtime(then))
