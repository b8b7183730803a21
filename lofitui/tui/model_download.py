"""The model download that runs behind the music on first run, and what it says when it fails.

The built-in synth plays while :class:`BackgroundDownload` fetches the configured model on a
thread of its own, then opens it (MusicGen builds its fast decoder here), and reports through
messages posted to the app: :class:`~lofitui.tui.messages.DownloadProgressed`, then
:class:`~lofitui.tui.messages.ModelReady` or :class:`~lofitui.tui.messages.DownloadFailed`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.message import Message

from lofitui.errors import Cancelled, LofiError
from lofitui.models.store import human_size
from lofitui.tui.messages import DownloadFailed, DownloadProgressed, ModelReady, ModelStage

if TYPE_CHECKING:
    from lofitui.models.download import DownloadProgress
    from lofitui.tui.backend import Backend, MissingModel


def by_hand(missing: MissingModel) -> str:
    """How to install ``missing`` without lofi's download, in a few lines."""
    entry = missing.entry
    names = [f.local for f in entry.files]
    files = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
    return (
        f"To install {entry.name} by hand, copy its files ({files}) from "
        f"huggingface.co/{entry.repo} into {missing.destination}, or start lofi with "
        "--model DIR on a directory that holds them."
    )


def progress_text(entry_name: str, progress: DownloadProgress) -> str:
    """The status bar's words for a download under way: ``↓ musicgen-small 42% · 380 MB``."""
    if progress.phase == "verify":
        return f"↓ {entry_name} verifying"
    share = progress.done / progress.total if progress.total else 0.0
    return f"↓ {entry_name} {share:.0%} of {human_size(progress.total)}"


class BackgroundDownload:
    """Fetch and open ``missing`` on a daemon thread; ``post`` delivers its messages."""

    def __init__(
        self, backend: Backend, missing: MissingModel, post: Callable[[Message], object]
    ) -> None:
        self.backend = backend
        self.missing = missing
        self._post = post
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lofi-download", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """Stop at the next chunk (what is on disk is kept and resumed next time)."""
        self._cancel.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        entry = self.missing.entry
        try:
            path = self.backend.download(entry, self._progress, self._cancel)
            if self._cancel.is_set():
                return
            self._post(ModelStage(f"↻ preparing {entry.name}"))
            station = self.backend.station_for(path)
        except Cancelled:
            return
        except LofiError as exc:
            self._post(DownloadFailed(self.missing, str(exc)))
        except Exception as exc:  # anything else: said, never raised into the thread's void
            self._post(DownloadFailed(self.missing, f"{type(exc).__name__}: {exc}"))
        else:
            if not self._cancel.is_set():
                self._post(ModelReady(entry.name, station))

    def _progress(self, progress: DownloadProgress) -> None:
        self._post(DownloadProgressed(progress))
