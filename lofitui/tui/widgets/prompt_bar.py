"""The prompt bar: the station on air, and an input to start a new one (with history)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Static

from lofitui.tui.history import PromptHistory
from lofitui.tui.widgets.clamped import ClampedText


class PromptInput(Input):
    """An Input with shell-like history on Up/Down; Esc hands the keys back to the player."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "Older", show=False, id="prompt.history-back"),
        Binding("down", "history(1)", "Newer", show=False, id="prompt.history-forward"),
        Binding("escape", "leave", "Back", show=False, id="prompt.leave"),
    ]

    def __init__(self, history: PromptHistory, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history = history
        self._draft = ""

    def action_history(self, step: int) -> None:
        if step < 0:
            if not self.history.browsing:
                self._draft = self.value
            entry = self.history.previous()
        else:
            entry = self.history.next()
        self.value = self._draft if entry is None else entry
        self.cursor_position = len(self.value)

    def action_leave(self) -> None:
        self.history.reset()
        self.screen.set_focus(None)


class PromptBar(Vertical):
    """Shows the current station; Enter on a new prompt asks the app to tune to it."""

    @dataclass
    class Submitted(Message):
        prompt: str

    DEFAULT_CSS = """
    PromptBar { height: auto; }
    PromptBar #station { height: auto; color: $foreground 70%; }
    PromptBar #station-detail { width: auto; margin-left: 2; text-style: dim; }
    PromptBar PromptInput { border: none; padding: 0; height: 1; background: transparent; }
    PromptBar PromptInput:focus { border: none; background: transparent; }
    """

    def __init__(self, history: PromptHistory, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history = history

    def compose(self) -> ComposeResult:
        with Horizontal(id="station"):
            yield ClampedText(id="station-prompt")  # two lines at most
            yield Static(id="station-detail", markup=False)
        yield PromptInput(
            self.history,
            placeholder="describe the music and press Enter…  (/ to type, Esc to leave)",
            id="prompt-input",
        )

    def on_mount(self) -> None:
        self.set_station(None)

    def set_station(self, prompt: str | None, detail: str = "") -> None:
        """Show what is on air (``detail``: engine/model)."""
        text = Text("on air  ", style="bold")
        if prompt:
            text.append(prompt)
        else:
            text.append("no station yet", style="dim")
        self.query_one("#station-prompt", ClampedText).update(text)
        self.query_one("#station-detail", Static).update(detail)

    @on(Input.Submitted, "#prompt-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        prompt = " ".join(event.value.split())
        if not prompt:
            return
        self.history.add(prompt)
        event.input.value = ""
        self.post_message(self.Submitted(prompt))
