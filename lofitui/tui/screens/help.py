"""``?``: every key binding, with the keys in effect (after the user's keymap)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from lofitui.keymap import KEYS

PROMPT_KEYS = (
    ("enter", "tune in to the typed prompt"),
    ("up / down", "older / newer prompts from your history"),
    ("escape", "leave the prompt (keys control the player again)"),
)


class HelpScreen(ModalScreen[None]):
    """A calm card listing keys; any of Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        card = Vertical(id="help-card")
        card.border_title = "keys"
        with card:
            yield Static(self._table(), id="help-keys")
            yield Static(
                "Esc closes · remap keys by id in config.toml's [keymap] table",
                id="help-hint",
                markup=False,
            )

    def _table(self) -> Table:
        keymap: dict[str, str] = getattr(self.app, "keymap", {})
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True, min_width=10)
        table.add_column()
        table.add_column(style="dim", no_wrap=True)
        for spec in KEYS:
            keys = keymap.get(spec.id, spec.keys)
            shown = " / ".join(_display(k) for k in keys.split(","))
            table.add_row(shown, spec.help, spec.id)
        table.add_row("", "", "")
        table.add_row(Text("in the prompt", style="italic"), "", "")
        for key, text in PROMPT_KEYS:
            table.add_row(key, text, "")
        return table


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
