"""``?``: every key binding, with the keys in effect (after the user's keymap)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Static

from lofitui.keymap import KEYS

PROMPT_KEYS = (
    ("enter", "tune in to the typed prompt"),
    ("up / down", "older / newer prompts from your history"),
    ("escape", "leave the prompt (keys control the player again)"),
)
ID_COLUMN_FROM = 60
"""The table width from which binding ids have a column of their own (else under the text)."""


class KeyTable(Widget):
    """Every binding: its keys, what it does and its id, laid out for the width it has."""

    DEFAULT_CSS = """
    KeyTable { height: auto; }
    """

    def __init__(self, keymap: dict[str, str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.keymap = keymap

    def table(self, width: int) -> Table:
        """The bindings for a ``width``-cell table: three columns, or the id under the text."""
        with_ids = width >= ID_COLUMN_FROM
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True, min_width=10)
        table.add_column()
        if with_ids:
            table.add_column(style="dim", no_wrap=True)
        for spec in KEYS:
            keys = self.keymap.get(spec.id, spec.keys)
            shown = " / ".join(_display(k) for k in keys.split(","))
            if with_ids:
                table.add_row(shown, spec.help, spec.id)
            else:
                table.add_row(shown, Text.assemble(spec.help, "\n", (spec.id, "dim")))
        table.add_row("", "")
        table.add_row(Text("in the prompt", style="italic"), "")
        for key, text in PROMPT_KEYS:
            table.add_row(key, text)
        return table

    def render(self) -> Table:
        return self.table(self.size.width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        console = self.app.console
        return len(console.render_lines(self.table(width), console.options.update_width(width)))


class HelpScreen(ModalScreen[None]):
    """A calm card listing keys; any of Esc, q or ? closes it.

    The card scrolls when the terminal is too small for it (arrows, Page Up/Down, Home/End,
    the mouse wheel); the hint saying how to close it stays in view at the bottom.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]
    AUTO_FOCUS = "#help-card"  # the scroll keys reach the card

    def compose(self) -> ComposeResult:
        card = VerticalScroll(id="help-card")
        card.border_title = "keys"
        with card:
            yield KeyTable(getattr(self.app, "keymap", {}), id="help-keys")
            yield Static(  # docked at the bottom: in view however far the keys scroll
                "Esc closes · ↑↓ scroll · remap keys by id in config.toml's [keymap] table",
                id="help-hint",
                markup=False,
            )


_NAMES = {
    "space": "space",
    "question_mark": "?",
    "plus": "+",
    "minus": "-",
    "equals_sign": "=",
    "slash": "/",
}


def _display(key: str) -> str:
    return _NAMES.get(key, key.replace("_", " "))
