"""The now-playing view's visualiser: the spectrum, the compact level meter, or nothing.

``v`` cycles :data:`~lofitui.config.VISUALISERS` (spectrum → meter → off); the app remembers the
choice in the config file. Only the spectrum shown is animated: hidden, it costs nothing.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.reactive import reactive
from textual.widget import Widget

from lofitui.config import VISUALISERS
from lofitui.tui.widgets.level_meter import LevelMeter
from lofitui.tui.widgets.spectrum import Source, Spectrum


def next_visualiser(mode: str) -> str:
    """The mode after ``mode`` in the cycle (the first after an unknown one)."""
    if mode not in VISUALISERS:
        return VISUALISERS[0]
    return VISUALISERS[(VISUALISERS.index(mode) + 1) % len(VISUALISERS)]


class Visualiser(Widget):
    """Shows one of :data:`~lofitui.config.VISUALISERS`, set through :attr:`mode`."""

    DEFAULT_CSS = """
    Visualiser { height: 1fr; max-height: 6; min-height: 1; }
    Visualiser.-meter { max-height: 2; }
    Visualiser.-off { display: none; }
    """

    mode: reactive[str] = reactive(VISUALISERS[0], init=False)

    def compose(self) -> ComposeResult:
        yield Spectrum()
        yield LevelMeter()

    def on_mount(self) -> None:
        self._show(self.mode)

    def watch_mode(self, mode: str) -> None:
        if self.is_mounted:  # else on_mount shows it
            self._show(mode)

    def _show(self, mode: str) -> None:
        for name in VISUALISERS:
            self.set_class(name == mode, f"-{name}")
        spectrum = self.query_one(Spectrum)
        spectrum.display = mode == "spectrum"
        self.query_one(LevelMeter).display = mode == "meter"
        if mode == "spectrum":
            spectrum.start()
        else:
            spectrum.stop()

    def listen(self, source: Source | None) -> None:
        """Draw the spectrum of ``source`` (None: nothing to draw, the bars fall)."""
        self.query_one(Spectrum).source = source
