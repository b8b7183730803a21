"""What every engine shares: the request, the audio it returns, progress and cancellation."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from lofitui.audio.types import Audio
from lofitui.errors import Cancelled

ParamValue = int | float | str | bool | None


@dataclass(frozen=True)
class Progress:
    """How far one generation job is: ``done`` of ``total`` units ("token" or "step")."""

    done: int
    total: int
    unit: str
    eta_s: float | None = None
    rate: float | None = None  # units per second

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class TrackRequest:
    """Everything that determines a track's audio. Same request + same model = same audio."""

    prompt: str
    duration_s: float
    seed: int
    engine: str = "musicgen"
    model: str = "musicgen-small"
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(sorted(self.params.items()))))

    def param(self, name: str, default: Any) -> Any:
        value = self.params.get(name)
        return default if value is None else value

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "duration_s": self.duration_s,
            "seed": self.seed,
            "engine": self.engine,
            "model": self.model,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackRequest:
        return cls(
            prompt=str(data["prompt"]),
            duration_s=float(data["duration_s"]),
            seed=int(data["seed"]),
            engine=str(data["engine"]),
            model=str(data["model"]),
            params=dict(data.get("params") or {}),
        )

    @property
    def key(self) -> str:
        """SHA-256 of the canonical JSON of everything that determines the audio."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class CancelToken:
    """Cooperative cancellation: the owner calls ``cancel()``; engines call ``check()``."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled."""
        if self._event.is_set():
            raise Cancelled()


class ProgressMeter:
    """Turns "one more unit done" into :class:`Progress` with a rate and an ETA."""

    def __init__(self, total: int, unit: str, callback: ProgressCallback | None) -> None:
        self.total = total
        self.unit = unit
        self.done = 0
        self._callback = callback
        self._start = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._callback is None:
            return
        elapsed = time.perf_counter() - self._start
        rate = self.done / elapsed if elapsed > 0 else None
        eta = (self.total - self.done) / rate if rate else None
        self._callback(Progress(self.done, self.total, self.unit, eta, rate))


@runtime_checkable
class Engine(Protocol):
    """A loaded model that turns requests into audio. Knows nothing of UI, cache or player."""

    name: str
    model_name: str
    sample_rate: int
    channels: int
    min_duration_s: float
    max_duration_s: float

    def validate(self, request: TrackRequest) -> object:
        """Raise UsageError if this engine cannot generate ``request`` (checked before work)."""
        ...

    def generate(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Audio:
        """Generate the request's audio; raises Cancelled if ``cancel`` fires between steps."""
        ...
