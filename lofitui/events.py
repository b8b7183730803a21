"""What the scheduler tells its subscribers: stations, job snapshots and typed events.

Playback events are defined once, in :mod:`lofitui.audio.events`: the scheduler passes
:class:`NowPlaying` (with its job attached), :class:`Level` and :class:`OutputChanged` (the audio
output lost or back) on as they are, next to its own
job, station, save and notice events below. All are frozen dataclasses;
:mod:`lofitui.scheduler` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from lofitui.audio.events import Level, NowPlaying, OutputChanged
from lofitui.engines.base import Progress, TrackRequest
from lofitui.engines.registry import ENGINES, engine_class
from lofitui.errors import UsageError

Severity = Literal["info", "warning", "error"]


class JobState(StrEnum):
    """queued → generating → ready → playing → played; or failed / cancelled."""

    QUEUED = "queued"
    GENERATING = "generating"
    READY = "ready"
    PLAYING = "playing"
    PLAYED = "played"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def pending(self) -> bool:
        """Waiting for, or in, generation."""
        return self in (JobState.QUEUED, JobState.GENERATING)

    @property
    def finished(self) -> bool:
        return self in (JobState.PLAYED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Station:
    """What to play: a prompt and the engine settings every track of the station shares."""

    prompt: str
    engine: str = "musicgen"
    model: str = "musicgen-small"
    duration_s: float = 30.0
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:
        params = tuple(sorted(self.params.items()))
        return hash((self.prompt, self.engine, self.model, self.duration_s, params))

    def validate(self) -> None:
        if not self.prompt.strip():
            raise UsageError("the prompt is empty: describe the music, e.g. 'lofi hip hop piano'")
        if not self.duration_s > 0:
            raise UsageError(f"duration must be > 0 seconds (got {self.duration_s:g})")

    def request(self, seed: int) -> TrackRequest:
        return TrackRequest(
            prompt=self.prompt,
            duration_s=self.duration_s,
            seed=seed,
            engine=self.engine,
            model=self.model,
            params=dict(self.params),
        )

    @classmethod
    def of(cls, request: TrackRequest, params: Mapping[str, Any]) -> Station:
        """The station ``request`` was made on, ``params`` being its settings (a request's own
        params may hold a flow prime)."""
        return cls(request.prompt, request.engine, request.model, request.duration_s, params)

    @property
    def label(self) -> str:
        """``musicgen · musicgen-small``: the engine and its model (a directory by its name)."""
        model = self.model.rstrip("/").rsplit("/", 1)[-1] if "/" in self.model else self.model
        return f"{self.engine} · {model}"

    @property
    def lane(self) -> tuple[str, ...]:
        """Jobs with the same loaded model share one lane and run one at a time: the same engine,
        model and setup parameters (what the model is loaded with: MusicGen's compute type)."""
        setup = (
            getattr(engine_class(self.engine), "setup_params", ()) if self.engine in ENGINES else ()
        )
        chosen = (
            f"{name}={self.params[name]}" for name in setup if self.params.get(name) is not None
        )
        return (self.engine, self.model, *chosen)


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job. ``path`` is the cached WAV once the job is ready.

    ``request`` is what the engine was asked; in flow mode its params carry the engine's prime
    (the previous track's codes, long text): show :attr:`params` (the station's) instead.
    ``handed``: given to the player, not audible yet. ``primed_by``: the job whose codes this
    one continues (flow mode, or after a like). ``liked``: the listener likes this track.
    """

    id: str
    station: Station
    request: TrackRequest
    state: JobState
    progress: Progress | None
    error: str | None
    path: Path | None
    created: float
    generated_s: float = 0.0  # audio generated so far (streaming); the duration once complete
    handed: bool = False
    primed_by: str | None = None
    liked: bool = False

    @property
    def duration_s(self) -> float:
        return self.request.duration_s

    @property
    def params(self) -> Mapping[str, Any]:
        """The engine settings to show: the station's (never the flow prime)."""
        return self.station.params

    @property
    def streaming(self) -> bool:
        """Audible (or handed to the player) while its generation is still running."""
        in_player = self.state is JobState.PLAYING or (
            self.handed and self.state is JobState.GENERATING
        )
        return in_player and self.generated_s < self.duration_s


@dataclass(frozen=True)
class JobChanged:
    """A job was created or changed state (or error/path)."""

    job: JobInfo


@dataclass(frozen=True)
class JobProgress:
    """Generation progress of a job (coalesced: at most ~10 per second per job)."""

    job_id: str
    progress: Progress


@dataclass(frozen=True)
class StationChanged:
    """The station changed (its first track takes over once ready)."""

    station: Station


@dataclass(frozen=True)
class TrackSaved:
    """A track was copied to the music directory at ``path``."""

    job_id: str
    path: Path


@dataclass(frozen=True)
class Notice:
    """A one-line message for the listener (failures, saves, lost audio device)."""

    message: str
    severity: Severity = "info"


SchedulerEvent = (
    JobChanged
    | JobProgress
    | NowPlaying[JobInfo]
    | Level
    | OutputChanged
    | StationChanged
    | TrackSaved
    | Notice
)
"""Everything :meth:`lofitui.scheduler.Scheduler.subscribe` callbacks receive."""

__all__ = [
    "JobChanged",
    "JobInfo",
    "JobProgress",
    "JobState",
    "Level",
    "Notice",
    "NowPlaying",
    "OutputChanged",
    "SchedulerEvent",
    "Severity",
    "Station",
    "StationChanged",
    "TrackSaved",
]
