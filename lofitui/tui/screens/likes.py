"""The station's likes: its liked tracks, newest first; Enter plays one, Delete unlikes it.

Dismissed with the cache key of the track to play, or None. The list is read from a callable
each time it is drawn, so it shows the store as it is after an unlike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from lofitui.events import Station
from lofitui.keymap import DEFAULT_KEYS
from lofitui.tui.widgets.clamped import ClampedText

if TYPE_CHECKING:
    from lofitui.library.likes import Like


class LikesScreen(ModalScreen[str | None]):
    """The liked tracks of the station ``prompt``; the result is the key of the one to play."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,L", "dismiss", "Close", show=False, id="likes.close"),
        Binding("delete,backspace", "unlike", "Unlike", show=False, id="likes.unlike"),
    ]
    DEFAULT_CSS = """
    LikesScreen #likes-list { height: auto; max-height: 50vh; border: none; padding: 0; }
    LikesScreen #likes-list:focus { border: none; }
    LikesScreen #likes-station { color: $foreground 70%; margin-bottom: 1; max-height: 1; }
    LikesScreen #likes-empty { color: $foreground 60%; }
    LikesScreen #likes-hint { margin-top: 1; color: $foreground 55%; }
    """
    AUTO_FOCUS = "#likes-list"

    def __init__(
        self,
        prompt: str,
        likes: Callable[[], list[Like]],
        unlike: Callable[[str], None],
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self._likes = likes
        self._unlike = unlike

    def compose(self) -> ComposeResult:
        card = Vertical(id="likes-card", classes="dialog")
        card.border_title = "♥ likes"
        with card:
            yield ClampedText(self.prompt, id="likes-station")
            yield OptionList(id="likes-list")
            yield Static(id="likes-empty")
            yield Static("Enter plays · Delete unlikes · Esc closes", id="likes-hint", markup=False)

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        """List the station's likes as they are now (the highlight stays where it was)."""
        options = self.query_one(OptionList)
        was = options.highlighted
        likes = self._likes()
        options.clear_options()
        seeds = max((len(str(like.seed)) for like in likes), default=0)
        options.add_options([Option(_row(like, seeds), id=like.key) for like in likes])
        options.display = bool(likes)
        if likes:
            options.highlighted = min(was or 0, len(likes) - 1)
        keymap: dict[str, str] = getattr(self.app, "keymap", {})
        key = keymap.get("lofi.like", DEFAULT_KEYS["lofi.like"]).split(",")[0]
        empty = self.query_one("#likes-empty", Static)
        empty.display = not likes
        empty.update(Text(f"No liked tracks on this station yet: press {key} while one plays."))

    @on(OptionList.OptionSelected)
    def _play(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_unlike(self) -> None:
        option = self.query_one(OptionList).highlighted_option
        if option is not None and option.id is not None:
            self._unlike(option.id)
            self.show()


def _row(like: Like, seed_width: int) -> Table:
    """``♥ seed 4821   musicgen · musicgen-small · 30 s · top_k 250   30 Nov 21:04``, the seed
    padded to ``seed_width`` digits so that the rows line up."""
    request = like.request
    settings = [Station.of(request, like.params).label, f"{request.duration_s:g} s"]
    settings += [f"{name} {value}" for name, value in like.params.items() if value is not None]
    when = time.localtime(like.liked_at)
    grid = Table.grid(padding=(0, 2), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_column(no_wrap=True, justify="right")
    grid.add_row(
        Text.assemble(("♥ ", "bold"), f"seed {request.seed:<{seed_width}}"),
        Text(" · ".join(settings), style="dim"),
        Text(f"{when.tm_mday} {time.strftime('%b %H:%M', when)}", style="dim"),
    )
    return grid
