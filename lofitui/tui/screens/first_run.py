"""First run: no model on disk yet. Name it, its size and where it goes; download on a yes.

The download runs in a thread worker; its progress arrives as coalescing messages. A failure
(no network, disk full, refused by the hub) is shown in place with what to do instead, and the
user can retry or quit. Dismissed with the model's directory, or None to quit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, ProgressBar, Static
from textual.worker import Worker, WorkerState

from lofitui.errors import Cancelled, LofiError
from lofitui.tui.messages import DownloadProgressed

if TYPE_CHECKING:
    from lofitui.models.catalog import ModelEntry
    from lofitui.models.download import DownloadProgress

Downloader = Callable[["ModelEntry", Callable[["DownloadProgress"], None], threading.Event], Path]


def _size(n: float) -> str:
    from lofitui.models.store import human_size

    return human_size(n)


def _free_space(directory: Path) -> int | None:
    try:
        from lofitui.models.store import free_space

        return free_space(directory)
    except OSError:
        return None


class FirstRunScreen(ModalScreen[Path | None]):
    """Ask → download with progress → dismiss(path); or explain the failure and offer options."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "download", "Download", show=False, id="first-run.download"),
        Binding("escape,n,q", "quit", "Quit", show=False, id="first-run.quit"),
    ]

    AUTO_FOCUS = "#download"

    def __init__(self, entry: ModelEntry, destination: Path, downloader: Downloader) -> None:
        super().__init__()
        self.entry = entry
        self.destination = destination
        self.downloader = downloader
        self._cancel = threading.Event()
        self._started = 0.0
        self.downloading = False

    def compose(self) -> ComposeResult:
        entry = self.entry
        card = Vertical(id="first-run-card", classes="dialog")
        card.border_title = "a model is needed"
        with card:
            yield Static(
                Text.assemble(
                    "lofi makes its music on this computer with ",
                    (entry.name, "bold"),
                    f": {entry.description}.",
                ),
                id="first-run-intro",
            )
            details = Text()
            details.append("download  ", style="dim")
            details.append(
                f"about {_size(entry.size)}, {len(entry.files)} files from "
                f"huggingface.co/{entry.repo}\n"
            )
            details.append("into      ", style="dim")
            details.append(str(self.destination))
            free = _free_space(self.destination)
            if free is not None:
                details.append(f"  ({_size(free)} free)", style="dim")
            yield Static(details, id="first-run-details")
            yield Static(
                "Download it now? It is needed once; lofi works offline afterwards.",
                id="first-run-status",
            )
            yield ProgressBar(total=None, show_eta=False, id="first-run-progress")
            with Horizontal(classes="buttons"):
                yield Button("Download", id="download", variant="primary")
                yield Button("Quit", id="quit")

    def on_mount(self) -> None:
        self.query_one("#first-run-progress").display = False

    # -- actions -----------------------------------------------------------------------------------

    @on(Button.Pressed, "#download")
    def action_download(self) -> None:
        if self.downloading:
            return
        self.downloading = True
        self._cancel.clear()
        self._started = time.monotonic()
        bar = self.query_one("#first-run-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.query_one("#download", Button).display = False
        self.query_one("#quit", Button).label = "Cancel"
        self._status("Connecting…")
        self._run_download()

    @on(Button.Pressed, "#quit")
    def action_quit(self) -> None:
        if self.downloading:
            self._cancel.set()
            self._status("Stopping the download (what is on disk is kept and resumed next time)…")
            return
        self.dismiss(None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="download")
    def _run_download(self) -> Path:
        return self.downloader(self.entry, self.post_message_progress, self._cancel)

    def post_message_progress(self, progress: DownloadProgress) -> None:
        """Called on the download thread: hand the update to the UI (coalescing)."""
        self.post_message(DownloadProgressed(progress))

    # -- results -----------------------------------------------------------------------------------

    def on_download_progressed(self, message: DownloadProgressed) -> None:
        p = message.progress
        bar = self.query_one("#first-run-progress", ProgressBar)
        bar.update(total=max(1, p.total), progress=p.done)
        elapsed = max(1e-3, time.monotonic() - self._started)
        rate = p.done / elapsed
        phase = {"verify": "verifying", "done": "done"}.get(p.phase, "downloading")
        self._status(
            f"{phase} {p.file}  ·  {_size(p.done)} of {_size(p.total)}  ·  {_size(rate)}/s"
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "download":
            return
        if event.state == WorkerState.SUCCESS:
            self.downloading = False
            self.dismiss(event.worker.result)
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.downloading = False
            error = event.worker.error
            if isinstance(error, Cancelled) or self._cancel.is_set():
                self._failed("Download stopped. What was fetched is kept; it resumes next time.")
            elif isinstance(error, LofiError):
                self._failed(str(error))
            else:
                self._failed(f"the download failed: {error}")

    def _failed(self, message: str) -> None:
        self.query_one("#first-run-progress").display = False
        status = self.query_one("#first-run-status", Static)
        status.update(
            Text(
                message + "\n\nRetry when you are online, or put the files in place "
                "by hand and start lofi again.",
                style="bold",
            )
        )
        status.add_class("error")
        download = self.query_one("#download", Button)
        download.label = "Retry"
        download.display = True
        self.query_one("#quit", Button).label = "Quit"
        download.focus()

    def _status(self, message: str) -> None:
        status = self.query_one("#first-run-status", Static)
        status.remove_class("error")
        status.update(message)
