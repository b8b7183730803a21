"""Text of any length in a few lines: a prompt that never pushes the rest of a panel away."""

from __future__ import annotations

from rich.text import Text
from textual.css.scalar import Unit
from textual.geometry import Size
from textual.widget import Widget

from lofitui.tui.widgets.format import clamp


class ClampedText(Widget):
    """Word-wrapped text cut to as many lines as the CSS ``max-height`` allows (in cells; 2 by
    default), the last line ending in ``…``. Cut at paint time, so it follows the width; a
    breakpoint rule (``.-short #np-title { max-height: 1; }``) changes the line count."""

    DEFAULT_CSS = """
    ClampedText { width: 1fr; height: auto; max-height: 2; }
    """

    def __init__(self, text: str | Text = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._text = Text(text) if isinstance(text, str) else text

    @property
    def text(self) -> Text:
        """The whole text, before clamping."""
        return self._text

    def update(self, text: str | Text) -> None:
        self._text = Text(text) if isinstance(text, str) else text
        self.refresh(layout=True)

    @property
    def max_lines(self) -> int:
        """Lines the text may take: the ``max-height`` in cells, less padding and border (no
        limit without a ``max-height`` in cells)."""
        limit = self.styles.max_height
        if limit is None or limit.unit != Unit.CELLS:
            return 1_000_000
        return max(0, int(limit.value) - self.styles.gutter.height)

    def clamped(self, width: int) -> Text:
        """The text as drawn ``width`` cells wide."""
        return clamp(self._text, width, self.max_lines)

    def render(self) -> Text:
        return self.clamped(self.size.width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        text = self.clamped(width)
        return len(text.plain.split("\n")) if text.plain else 1
