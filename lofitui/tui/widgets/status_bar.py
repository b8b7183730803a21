"""The top line: the app's name, what the player is doing, and the volume."""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class StatusBar(Widget):
    """``♫ lofi · playing ...................... vol ▮▮▮▮▮▮▮▮▯▯ 80%``"""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status-bar--brand",
        "status-bar--state",
        "status-bar--vol",
        "status-bar--vol-empty",
        "status-bar--warn",
    }
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; padding: 0 1; }
    StatusBar > .status-bar--brand { color: $primary; text-style: bold; }
    StatusBar > .status-bar--state { color: $foreground 70%; }
    StatusBar > .status-bar--vol { color: $accent; }
    StatusBar > .status-bar--vol-empty { color: $foreground 25%; }
    StatusBar > .status-bar--warn { color: $warning; }
    """

    state: reactive[str] = reactive("starting")
    volume: reactive[float] = reactive(0.8)
    muted: reactive[bool] = reactive(False)
    audio: reactive[bool] = reactive(True)
    download: reactive[str] = reactive("")  # a background model download, e.g. "↓ model 42%"

    def render(self) -> RenderableType:
        style = self.get_component_rich_style
        left = Text("♫ lofi", style=style("status-bar--brand"))
        left.append("  ·  ", style=style("status-bar--state"))
        left.append(self.state, style=style("status-bar--state"))
        if not self.audio:
            left.append("  ·  ", style=style("status-bar--state"))
            left.append("no audio output", style=style("status-bar--warn"))
        if self.download:
            left.append("  ·  ", style=style("status-bar--state"))
            left.append(self.download, style=style("status-bar--vol"))
        right = Text()
        if self.muted:
            right.append("muted", style=style("status-bar--warn"))
        else:
            steps = round(self.volume * 10)
            right.append("vol ", style=style("status-bar--state"))
            right.append("▮" * steps, style=style("status-bar--vol"))
            right.append("▯" * (10 - steps), style=style("status-bar--vol-empty"))
            right.append(f" {self.volume:4.0%}", style=style("status-bar--state"))
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        grid.add_row(left, right)
        return grid
