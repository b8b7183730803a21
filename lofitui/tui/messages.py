"""Typed messages: scheduler events and start-up steps, as Textual messages for the app to route.

Scheduler callbacks are turned into these with :func:`from_event` and posted to the app
(``post_message`` is thread-safe). Floods (token progress, level, position) coalesce: a message
with ``can_replace`` is dropped when a newer one of the same kind is already queued behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

from lofitui.engines.base import Progress

if TYPE_CHECKING:
    from lofitui.events import JobInfo, Station
    from lofitui.models.catalog import ModelEntry
    from lofitui.models.download import DownloadProgress


@dataclass
class JobUpdated(Message):
    """A job was added or changed state."""

    job: JobInfo


@dataclass
class JobProgressed(Message):
    """Token/step progress of a generating job."""

    job_id: str
    progress: Progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobProgressed) and message.job_id == self.job_id


@dataclass
class PlaybackUpdated(Message):
    """What is playing, where, and whether paused (about 10 per second)."""

    job: JobInfo | None
    position_s: float
    duration_s: float
    paused: bool

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PlaybackUpdated)


@dataclass
class LevelUpdated(Message):
    """Loudness of the audio being heard (RMS and peak, 0..1)."""

    rms: float
    peak: float
    # No can_replace: each reading is one column of the meter (only ~10 per second).


@dataclass
class StationUpdated(Message):
    station: Station


@dataclass
class TrackSaved(Message):
    job_id: str
    path: Path


@dataclass
class Notice(Message):
    message: str
    severity: str = "information"


# -- start-up -------------------------------------------------------------------------------------


@dataclass
class ModelMissing(Message):
    """The configured catalog model is not installed: the first-run dialog asks to download it."""

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


def _severity(value: str) -> str:
    return {"info": "information"}.get(value, value)


def from_event(event: Any) -> Message | None:
    """The message for one scheduler event (None for kinds the UI does not show)."""
    from lofitui import events as s

    match event:
        case s.JobChanged(job=job):
            return JobUpdated(job)
        case s.JobProgress(job_id=job_id, progress=progress):
            return JobProgressed(job_id, progress)
        case s.NowPlaying(job=job, position_s=pos, duration_s=dur, paused=paused):
            return PlaybackUpdated(job, pos, dur, paused)
        case s.Level(rms=rms, peak=peak):
            return LevelUpdated(rms, peak)
        case s.StationChanged(station=station):
            return StationUpdated(station)
        case s.TrackSaved(job_id=job_id, path=path):
            return TrackSaved(job_id, path)
        case s.Notice(message=message, severity=severity):
            return Notice(message, _severity(severity))
    return None
