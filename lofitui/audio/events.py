"""What playback tells its listeners: the one vocabulary from the player up to the TUI.

The players (:mod:`lofitui.audio.player`, :mod:`lofitui.audio.silent`) emit these; the scheduler
passes :class:`NowPlaying`, :class:`Level` and :class:`OutputChanged` on unchanged in kind (it
attaches its job to ``NowPlaying.job``) and turns :class:`TrackStarted` / :class:`TrackFinished`
/ :class:`PlayerError` into job changes. All are frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

JobT = TypeVar("JobT")


@dataclass(frozen=True)
class TrackStarted:
    """A track became audible (at the start of its crossfade, if any)."""

    track_id: str
    duration_s: float


@dataclass(frozen=True)
class TrackFinished:
    """A track's last frame was played; ``skipped`` when it was cut short by skip/stop."""

    track_id: str
    skipped: bool = False


@dataclass(frozen=True)
class NowPlaying(Generic[JobT]):
    """What is audible and where: ``track_id`` None in silence; about 10 per second.

    The player leaves ``job`` None; the scheduler attaches its snapshot of the track's job.
    """

    track_id: str | None
    position_s: float
    duration_s: float
    paused: bool = False
    job: JobT | None = None
    buffering: bool = False  # playback reached a growing track's frontier and waits for it


@dataclass(frozen=True)
class Level:
    """Output level (linear, full scale 1.0) of what was just played, after volume."""

    rms: float
    peak: float


@dataclass(frozen=True)
class OutputChanged:
    """The audio output went away (``available`` False; ``reason``, one line, says why) or is
    back. Without one the player plays on, unheard, on a clock, and keeps retrying the default
    device: tracks, positions and events go on as if heard, and sound resumes where the clock is.
    """

    available: bool
    reason: str | None = None


@dataclass(frozen=True)
class PlayerError:
    """Playback failed for good (an internal error); the player has stopped. One line."""

    message: str


PlayerEvent = TrackStarted | TrackFinished | NowPlaying[Any] | Level | OutputChanged | PlayerError
Subscriber = Callable[[PlayerEvent], None]
