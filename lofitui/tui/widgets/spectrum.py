"""The spectrum of what is playing: log-frequency bars with falling peaks, in block characters.

Every ``1 / FPS`` s the widget pulls the latest window of the output from its source (the app
hands it the scheduler's ``heard``), analyses it (:mod:`lofitui.audio.spectrum`) and redraws.
Bars are one column wide with a gap between them, as many as fit the width; their height has
eighth-cell resolution (▁▂▃▄▅▆▇█) over the rows the panel gives it. A peak marker sits in the
lower (▁) or upper (▔) half of its cell. With no source, nothing heard or silence, the bars
fall to zero; once everything is down the widget stops redrawing until sound comes back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget

from lofitui.audio.spectrum import LONG_FFT, FallingBars, SpectrumBands
from lofitui.audio.types import Audio

FPS = 30
MAX_STEP_S = 0.25  # a frame late by more than this moves the bars as if it were on time
BLOCKS = np.array(list(" ▁▂▃▄▅▆▇█"))
PEAK_LOW, PEAK_HIGH = "▁", "▔"

Source = Callable[[int], Audio | None]
"""``source(frames)``: the last ``frames`` frames heard, or None while nothing is heard."""


class Spectrum(Widget):
    """Spectrum bars of ``source``'s audio, animated while :attr:`running`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "spectrum--low",
        "spectrum--mid",
        "spectrum--high",
        "spectrum--peak",
    }
    DEFAULT_CSS = """
    Spectrum { height: 1fr; width: 1fr; }
    Spectrum > .spectrum--low { color: $primary; }
    Spectrum > .spectrum--mid { color: $secondary; }
    Spectrum > .spectrum--high { color: $accent; }
    Spectrum > .spectrum--peak { color: $foreground 85%; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.source: Source | None = None
        self._bands: SpectrumBands | None = None
        self._motion = FallingBars(0)
        self._rows: list[tuple[str, list[tuple[int, str]]]] = []  # text, peak markers (x, char)
        self._timer: Timer | None = None
        self._running = False
        self._last = 0.0

    def on_mount(self) -> None:
        self._timer = self.set_interval(1 / FPS, self.frame, pause=not self._running)

    @property
    def running(self) -> bool:
        """Animating (frames at ``FPS``)."""
        return self._running

    def start(self) -> None:
        """Animate at ``FPS`` (while the spectrum is shown)."""
        self._running = True
        if self._timer is not None:
            self._last = time.monotonic()
            self._timer.resume()

    def stop(self) -> None:
        """No more frames (hidden): costs nothing until :meth:`start`."""
        self._running = False
        if self._timer is not None:
            self._timer.pause()

    # -- one frame ---------------------------------------------------------------------------------

    def frame(self, dt: float | None = None) -> None:
        """Pull the latest window, analyse it and redraw; ``dt``: seconds since the last frame
        (default: measured)."""
        now = time.monotonic()
        if dt is None:
            dt = min(now - self._last, MAX_STEP_S)
        self._last = now
        count = self.band_count(self.size.width)
        if count == 0 or self.size.height == 0:
            return
        heard = self.source(LONG_FFT) if self.source is not None else None
        levels = self._levels(heard, count)
        motion = self._motion
        if motion.bars.shape[0] != count:
            motion = self._motion = FallingBars(count)
        if levels is None and motion.at_rest and self._rows:
            return  # silence on screen already
        motion.update(levels if levels is not None else np.zeros(count), dt)
        self._rows = self.layout_rows(motion.bars, motion.peaks, self.size.width, self.size.height)
        self.refresh()

    def _levels(self, heard: Audio | None, count: int) -> np.ndarray | None:
        """Band levels of ``heard``; None when nothing is heard or it is silent."""
        if heard is None or not heard.samples.any():
            return None
        bands = self._bands
        if bands is None or bands.count != count or bands.samplerate != heard.sample_rate:
            bands = self._bands = SpectrumBands(count, heard.sample_rate)
        return bands.levels(heard.samples)

    @staticmethod
    def band_count(width: int) -> int:
        """Bars that fit ``width`` columns, one column each with a gap between."""
        return (width + 1) // 2

    @staticmethod
    def layout_rows(
        bars: np.ndarray, peaks: np.ndarray, width: int, height: int
    ) -> list[tuple[str, list[tuple[int, str]]]]:
        """The rows, top first: each the bar characters across ``width`` and its peak markers
        (column, character). ``bars``, ``peaks``: 0..1 per band."""
        count = bars.shape[0]
        offset = max(0, (width - (2 * count - 1)) // 2)
        eighths = np.rint(bars * height * 8).astype(np.intp)
        peak_at = peaks * height - 1e-9  # a marker exactly on a cell's top edge is in that cell
        peak_row = np.minimum(peak_at.astype(np.intp), height - 1)
        peak_char = np.where(peak_at - peak_row >= 0.5, PEAK_HIGH, PEAK_LOW)
        rows = []
        for row in range(height):
            from_bottom = height - 1 - row
            cells = np.clip(eighths - from_bottom * 8, 0, 8)
            line = np.full(width, " ")
            line[offset : offset + 2 * count : 2] = BLOCKS[cells]
            shown = (peaks > 0) & (peak_row == from_bottom) & (cells == 0)
            markers = [(offset + 2 * int(i), str(peak_char[i])) for i in np.flatnonzero(shown)]
            rows.append(("".join(line), markers))
        return rows

    # -- drawing -----------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        blank = self.visual_style.rich_style
        if y >= len(self._rows) or len(self._rows[y][0]) != width:
            return Strip.blank(width, blank)
        text, markers = self._rows[y]
        height = len(self._rows)
        style = self._row_style(y, height)
        peak = self.get_component_rich_style("spectrum--peak")
        segments: list[Segment] = []
        x = 0
        for column, char in markers:
            segments.append(Segment(text[x:column], style))
            segments.append(Segment(char, peak))
            x = column + 1
        segments.append(Segment(text[x:], style))
        return Strip(segments, width)

    def _row_style(self, y: int, height: int) -> Style:
        """Low rows in the primary color, the top one in the accent, the rest between."""
        if height == 1 or y == height - 1:
            return self.get_component_rich_style("spectrum--low")
        return self.get_component_rich_style("spectrum--high" if y == 0 else "spectrum--mid")

    def on_resize(self) -> None:
        self._rows = []
        self.frame(0.0)
