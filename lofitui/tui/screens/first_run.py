"""First run: the built-in synth already plays; offer the model it is standing in for.

Only the question lives here: name the model, its size and where it goes. The download itself
runs in the app's background worker with its progress in the status bar, so the music never
waits on it. Dismissed with True (download) or False (not now: remembered until the listener
asks again with the download key).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from lofitui.models.store import free_space, human_size

if TYPE_CHECKING:
    from lofitui.models.catalog import ModelEntry


class FirstRunScreen(ModalScreen[bool]):
    """Ask whether to download ``entry`` in the background; the answer is the result."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,d", "download", "Download", show=False, id="first-run.download"),
        Binding("escape,n", "not_now", "Not now", show=False, id="first-run.not-now"),
    ]

    AUTO_FOCUS = "#download"

    def __init__(self, entry: ModelEntry, destination: Path) -> None:
        super().__init__()
        self.entry = entry
        self.destination = destination

    def compose(self) -> ComposeResult:
        entry = self.entry
        card = Vertical(id="first-run-card", classes="dialog")
        card.border_title = "a better model is one download away"
        with card:
            yield Static(
                Text.assemble(
                    "You are hearing lofi's built-in synth. For generated music lofi runs ",
                    (entry.name, "bold"),
                    f" on this computer: {entry.description}.",
                ),
                id="first-run-intro",
            )
            details = Text()
            details.append("download  ", style="dim")
            details.append(
                f"about {human_size(entry.size)}, {len(entry.files)} files from "
                f"huggingface.co/{entry.repo}\n"
            )
            details.append("into      ", style="dim")
            details.append(str(self.destination))
            with contextlib.suppress(OSError):
                free = free_space(self.destination)
                details.append(f"  ({human_size(free)} free)", style="dim")
            yield Static(details, id="first-run-details")
            yield Static(
                "Download it in the background? The music keeps playing, and the station "
                "moves to the model at a track boundary once it is ready.",
                id="first-run-status",
            )
            with Horizontal(classes="buttons"):
                yield Button("Download", id="download", variant="primary")
                yield Button("Not now", id="not-now")

    @on(Button.Pressed, "#download")
    def action_download(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#not-now")
    def action_not_now(self) -> None:
        self.dismiss(False)
