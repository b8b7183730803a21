"""A scrolling level meter: one column per Level event (~10 per second), newest on the right.

Compact (at most two rows): the spectrum is the big visualiser, this one stays out of the way.
"""

from __future__ import annotations

import math
from collections import deque
from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"
FLOOR_DB = -42.0


def loudness(rms: float) -> float:
    """RMS (0..1) → 0..1 on a dB scale from ``FLOOR_DB`` to 0 dBFS."""
    if rms <= 0:
        return 0.0
    db = 20.0 * math.log10(rms)
    return min(1.0, max(0.0, (db - FLOOR_DB) / -FLOOR_DB))


class LevelMeter(Widget):
    """Bars of recent loudness drawn with block characters, colored low → high by row."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "level-meter--low",
        "level-meter--mid",
        "level-meter--high",
    }
    DEFAULT_CSS = """
    LevelMeter { height: 1fr; max-height: 2; width: 1fr; }
    LevelMeter > .level-meter--low { color: $primary; }
    LevelMeter > .level-meter--mid { color: $secondary; }
    LevelMeter > .level-meter--high { color: $accent; }
    """

    def __init__(self, history: int = 240, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._levels: deque[float] = deque(maxlen=history)

    def push(self, rms: float, peak: float = 0.0) -> None:
        """Add one reading and redraw."""
        self._levels.append(loudness(rms))
        self.refresh()

    def clear(self) -> None:
        self._levels.clear()
        self.refresh()

    @property
    def levels(self) -> list[float]:
        return list(self._levels)

    def render(self) -> RenderableType:
        width, height = self.size.width, max(1, self.size.height)
        values = list(self._levels)[-width:] if width else []
        values = [0.0] * (width - len(values)) + values
        styles = [
            self.get_component_rich_style(name)
            for name in ("level-meter--high", "level-meter--mid", "level-meter--low")
        ]
        lines = []
        for row in range(height):  # top row first
            from_bottom = height - 1 - row
            style = styles[0] if row == 0 else styles[1] if row < height - 1 else styles[2]
            if height == 1:
                style = styles[2]
            cells = []
            for value in values:
                eighths = round(value * height * 8) - from_bottom * 8
                cells.append(BLOCKS[min(8, max(0, eighths))])
            lines.append(Text("".join(cells), style=style, end=""))
        return Text("\n").join(lines)
