"""The key footer, made to fit any width: Help and Quit always show."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # not re-exported by textual.widgets

KEEP = frozenset({"help", "quit"})
"""Actions always in the footer: the way to every other key, and the way out."""


def key_width(key: FooterKey, compact: bool) -> int:
    """Cells ``key`` takes in the footer: its label and Textual's padding, compact margin, and
    the command palette key's border."""
    label = cell_len(key.key_display) + (cell_len(key.description) + 1 if key.description else 0)
    palette = 2 if key.has_class("-command-palette") else 0
    return label + (1 if compact else 2) + palette


def fit(keys: list[FooterKey], width: int) -> tuple[list[FooterKey], bool]:
    """The keys that fit in ``width`` cells, and whether in the compact style.

    All of them if they fit, roomy or compact; else the command palette key goes first, then
    the rightmost keys except those in ``KEEP``, until the rest fit (compact).
    """
    if sum(key_width(k, compact=False) for k in keys) <= width:
        return keys, False
    shown = list(keys)
    droppable = [k for k in shown if k.has_class("-command-palette")]
    droppable += [k for k in reversed(shown) if k.action not in KEEP and k not in droppable]
    while sum(key_width(k, compact=True) for k in shown) > width and droppable:
        shown.remove(droppable.pop(0))
    return shown, True


class PlayerFooter(Footer):
    """Textual's Footer, fitted to the terminal's width (see :func:`fit`): compact when tight,
    then the least important keys left out (all are in the help screen), never Help or Quit."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._fitted_width = -1

    def compose(self) -> ComposeResult:
        items: list[Widget] = list(super().compose())
        width = self.size.width
        self._fitted_width = width
        keys = [item for item in items if isinstance(item, FooterKey)]
        if not width or len(keys) != len(items):  # not laid out yet, or binding groups: as is
            yield from items
            return
        shown, compact = fit(keys, width)
        self.compact = compact
        yield from shown

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._fitted_width and self._bindings_ready:
            self.call_after_refresh(self.recompose)
