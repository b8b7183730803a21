"""Typed messages for the app to route: scheduler events and start-up steps.

Every scheduler event travels in one :class:`SchedulerUpdate` (``post_message`` is thread-safe).
Floods (token progress, position) coalesce: a message with ``can_replace`` is dropped when a
newer one of the same kind is already queued behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from lofitui.events import JobProgress, NowPlaying

if TYPE_CHECKING:
    from lofitui.events import SchedulerEvent, Station
    from lofitui.models.catalog import ModelEntry
    from lofitui.models.download import DownloadProgress
    from lofitui.tui.backend import MissingModel


@dataclass
class SchedulerUpdate(Message):
    """One scheduler event (:data:`lofitui.events.SchedulerEvent`), delivered to the app.

    The event's own type says what happened; there is no parallel message class per event.
    Floods coalesce: a newer playback position replaces a queued one, and a job's newer
    progress replaces its queued progress. Levels do not: each is one column of the meter.
    """

    event: SchedulerEvent

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, SchedulerUpdate):
            return False
        new, old = self.event, message.event
        if isinstance(new, NowPlaying):
            return isinstance(old, NowPlaying)
        if isinstance(new, JobProgress):
            return isinstance(old, JobProgress) and old.job_id == new.job_id
        return False


# -- start-up -------------------------------------------------------------------------------------


@dataclass
class ModelMissing(Message):
    """The configured catalog model is not installed: the built-in synth plays meanwhile and
    the first-run dialog offers the download."""

    entry: ModelEntry
    destination: Path
    reason: str


@dataclass
class DownloadProgressed(Message):
    progress: DownloadProgress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DownloadProgressed)


@dataclass
class BackendFailed(Message):
    """Start-up could not finish (model unusable, engine failed to load...)."""

    title: str
    message: str


@dataclass
class ModelStage(Message):
    """The background download moved on to another stage (shown in the status bar)."""

    text: str


@dataclass
class ModelReady(Message):
    """The downloaded model is open: hand the station over to ``station`` at a track boundary."""

    model: str
    station: Station


@dataclass
class DownloadFailed(Message):
    """The background download (or opening what it fetched) failed; ``reason`` says why."""

    missing: MissingModel
    reason: str
