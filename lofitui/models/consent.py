"""Asking before anything is downloaded, and showing the download as it happens."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

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

from lofitui.models import store
from lofitui.models.catalog import ModelEntry
from lofitui.models.download import DownloadPlan, DownloadProgress, ProgressCallback, file_url


def can_ask() -> bool:
    """A person can answer a prompt: stdin is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def headless_refusal(entry: ModelEntry) -> str:
    """Why nothing was downloaded when no one could be asked."""
    return (
        f"model {entry.name!r} (about {store.human_size(entry.size)} from "
        f"{file_url(entry, '').rsplit('/resolve/', 1)[0]}) is not installed and lofi downloads "
        f"nothing without consent: run `lofi models download {entry.name}` in a terminal, or pass "
        "--yes"
    )


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
