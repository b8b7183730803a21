"""A problem that stops lofi from playing, said plainly, with what to do about it."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorScreen(ModalScreen[bool]):
    """Dismissed with True to carry on (when ``can_continue``), False to quit."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "choose(False)", "Quit", id="error.quit"),
        Binding("escape,enter", "choose(True)", "Continue", id="error.continue"),
    ]

    AUTO_FOCUS = "Button"

    def __init__(self, title: str, message: str, *, can_continue: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.can_continue = can_continue

    def compose(self) -> ComposeResult:
        card = Vertical(id="error-card", classes="dialog")
        card.border_title = self.title_text
        with card:
            yield Static(self.message, id="error-message", markup=False)
            with Horizontal(classes="buttons"):
                if self.can_continue:
                    yield Button("Continue", id="continue", variant="primary")
                yield Button("Quit", id="quit", variant="error" if self.can_continue else "primary")

    def action_choose(self, carry_on: bool) -> None:
        self.dismiss(carry_on and self.can_continue)

    @on(Button.Pressed, "#continue")
    def _continue(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#quit")
    def _quit(self) -> None:
        self.dismiss(False)
