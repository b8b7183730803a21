"""The terminal side of models: asking before anything is downloaded, and showing the download
as it happens. The model domain (:mod:`lofitui.models`) takes these as callbacks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.prompt import Confirm

from lofitui.models import ConsentCallback, store
from lofitui.models.download import DownloadPlan, DownloadProgress, ProgressCallback


def can_ask() -> bool:
    """A person can answer a prompt: stdin is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def ask_download(plan: DownloadPlan, console: Console | None = None) -> bool:
    """Name the model, its size and destination; True only on an explicit yes."""
    console = console or Console(stderr=True)
    entry = plan.entry
    remaining = plan.remaining()
    console.print(f"lofi needs the model [bold]{entry.name}[/]: {entry.description}")
    more = "" if remaining == plan.total else f" ({store.human_size(remaining)} left to fetch)"
    console.print(
        f"  {len(plan.files)} files, {store.human_size(plan.total)}{more}, from "
        f"{plan.endpoint}/{entry.repo} (revision {plan.revision})",
        highlight=False,
    )
    console.print(
        f"  into {plan.directory} ({store.human_size(store.free_space(plan.directory))} free)",
        highlight=False,
    )
    try:
        return Confirm.ask("Download it now?", console=console)
    except (EOFError, KeyboardInterrupt):
        console.print()
        return False


def ask_remove(entry_name: str, size: int, directory: str, console: Console | None = None) -> bool:
    console = console or Console(stderr=True)
    try:
        return Confirm.ask(
            f"Delete {entry_name} ({store.human_size(size)}) from {directory}?", console=console
        )
    except (EOFError, KeyboardInterrupt):
        console.print()
        return False


@contextmanager
def download_bar(console: Console | None = None) -> Iterator[ProgressCallback]:
    """A rich progress display (total + current file) fed by download progress callbacks."""
    console = console or Console(stderr=True)
    columns = (
        TextColumn("{task.description:<34}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        overall: TaskID | None = None
        tasks: dict[str, TaskID] = {}

        def update(p: DownloadProgress) -> None:
            nonlocal overall
            if overall is None:
                overall = bar.add_task("total", total=p.total, completed=p.done)
            bar.update(overall, completed=p.done)
            task = tasks.get(p.file)
            if task is None:
                task = tasks[p.file] = bar.add_task(p.file, total=p.file_total)
            label = {"verify": f"{p.file} (verifying)", "done": f"{p.file} ✓"}.get(p.phase, p.file)
            bar.update(task, completed=p.file_done, description=label)

        yield update


@dataclass
class TerminalDownloads:
    """Consent and progress for downloads started from a terminal command.

    ``consent`` is None when no one can be asked (stdin not a terminal and no ``--yes``); the
    rich bar on stderr opens at the first progress update and closes with :func:`terminal`.
    """

    consent: ConsentCallback | None
    _stack: ExitStack = field(default_factory=ExitStack)
    _bar: ProgressCallback | None = None

    def progress(self, update: DownloadProgress) -> None:
        if self._bar is None:
            self._bar = self._stack.enter_context(download_bar())
        self._bar(update)


@contextmanager
def terminal(assume_yes: bool) -> Iterator[TerminalDownloads]:
    """Downloads consented to by ``--yes`` or a prompt, shown as a bar while the block runs."""
    if assume_yes:
        consent: ConsentCallback | None = _yes
    elif can_ask():
        consent = ask_download
    else:
        consent = None
    downloads = TerminalDownloads(consent)
    with downloads._stack:
        yield downloads


def _yes(_plan: DownloadPlan) -> bool:
    return True
