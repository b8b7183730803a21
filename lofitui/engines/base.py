"""What every engine shares: the contract, its parameter declarations, the request, progress and
cancellation.

An engine is a class. Without any weights it declares its parameters (:class:`Param`), its
duration range and how to prepare a model directory (``prepare``), and checks a request
(``check``); ``load`` then gives an instance that reads its model's ``defaults()``, ``describe``s
itself and turns requests into audio (``generate``, or chunk by chunk with ``stream``).
Front-ends build options from the declarations; none of them names an engine's parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from lofitui.audio.types import Audio
from lofitui.errors import Cancelled, UsageError

if TYPE_CHECKING:
    from lofitui.engines.runtime import RuntimeOptions

ParamValue = int | float | str | bool | None
# The one model of an engine that needs no files (``EngineBase.model_free``): nothing to locate.
BUILTIN_MODEL = "builtin"
StageCallback = Callable[[str], None]


@dataclass(frozen=True)
class Param:
    """One generation parameter an engine takes: how it is named, typed, bounded and documented.

    ``name`` is the key in ``TrackRequest.params`` and in the engine's config table; ``flag``
    the command-line option (None: config.toml and requests only). ``default`` is the documented
    default (None: the model decides, or unset). ``normalise`` turns accepted spellings into the
    model's form (it may raise UsageError). Bounds are inclusive unless ``above`` (> minimum).
    ``multiline``: text of several lines (lyrics), edited as such in the app.
    """

    name: str
    type: type
    help: str
    flag: str | None = None
    metavar: str | None = None
    default: ParamValue = None
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    choices: tuple[str, ...] | None = None
    normalise: Callable[[str], ParamValue] | None = None
    multiline: bool = False

    @property
    def label(self) -> str:
        """How messages name it: the flag without its dashes (``top-k``, ``steps``)."""
        return self.flag.lstrip("-") if self.flag else self.name

    def convert(self, value: Any) -> ParamValue:
        """``value`` (from the command line, config.toml or a request) checked and normalised."""
        if self.type is str:
            if not isinstance(value, str):
                raise UsageError(f"{self.label} must be text (got {value!r})")
            value = self.normalise(value) if self.normalise else value
        else:
            value = self._number(value)
        if self.choices is not None and value not in self.choices:
            raise UsageError(
                f"{self.label} must be one of {', '.join(self.choices)} (got {value!r})"
            )
        self._check_range(value)
        return value

    def _number(self, value: Any) -> int | float:
        what = "a whole number" if self.type is int else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise UsageError(f"{self.label} must be {what} (got {value!r})")
        if isinstance(value, int) and self.type is int:
            return value  # exact, however large: the range check follows
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise UsageError(f"{self.label} must be {what} (got {value!r})") from None
        if not math.isfinite(number) or (self.type is int and not number.is_integer()):
            raise UsageError(f"{self.label} must be {what} (got {value!r})")
        return int(number) if self.type is int else number

    def _check_range(self, value: ParamValue) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        lo, hi = self.minimum, self.maximum
        low = lo is not None and (value <= lo if self.above else value < lo)
        high = hi is not None and value > hi
        if not (low or high):
            return
        if lo is not None and hi is not None and not self.above:
            bound = f"between {lo:g} and {hi:g}"
        elif low:
            bound = f"{'>' if self.above else '>='} {lo:g}"
        else:
            bound = f"<= {hi:g}"
        shown = value if isinstance(value, int) else f"{value:g}"  # an int may not fit a float
        raise UsageError(f"{self.label} must be {bound} (got {shown})")


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


def check_cancelled(cancel: CancelToken | None) -> None:
    """Raise :class:`~lofitui.errors.Cancelled` if ``cancel`` (when given) has been set."""
    if cancel is not None:
        cancel.check()


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
    """A model that turns requests into audio. Knows nothing of UI, cache, player or downloads.

    Class-level (no weights): ``name``, ``title`` (its option group), ``params``, the duration
    range, ``prepare``, ``check`` and ``load``. Instance-level: the rest.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    min_duration_s: ClassVar[float]
    max_duration_s: ClassVar[float]
    model_name: str
    sample_rate: int
    channels: int

    @classmethod
    def prepare(
        cls, model_dir: Path, options: RuntimeOptions, on_stage: StageCallback
    ) -> Path | None:
        """Make ``model_dir`` ready to load on ``options``' device (once; no-op by default)."""
        ...

    @classmethod
    def load(cls, model_dir: Path, options: RuntimeOptions) -> Engine:
        """Open the model's sessions (seconds): a ready engine."""
        ...

    @classmethod
    def check(cls, request: TrackRequest) -> None:
        """Raise UsageError if ``request`` is out of the engine's bounds; needs no weights."""
        ...

    def defaults(self) -> dict[str, ParamValue]:
        """The loaded model's value of every parameter a request may leave out."""
        ...

    def describe(self) -> dict[str, Any]:
        """What runs, in a few fields (engine, model, device, dtype...), for sidecars and logs."""
        ...

    def validate(self, request: TrackRequest) -> object:
        """``check`` plus what needs the model (e.g. top-k within the vocabulary)."""
        ...

    def slowdown_for(self, duration_s: float) -> float:
        """How much more the last unit of progress of a ``duration_s`` track costs than its
        first (k: 1 + k times), as the scheduler assumes until it has learned the model's pace."""
        ...

    def measure_pace(self) -> object:
        """Time what ``slowdown_for`` needs on this machine (None: nothing to measure)."""
        ...

    def generate(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Audio:
        """Generate the request's audio; raises Cancelled if ``cancel`` fires between steps."""
        ...

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        chunk_s: float | None = None,
    ) -> Iterator[Audio]:
        """The request's audio as consecutive chunks, each ready as soon as it is decoded.

        ``chunk_s``: how long the steady chunks may be when no one is listening yet (a file
        render): longer chunks decode with less overlap. None: the engine's streaming size
        (~1 s). Engines whose chunks are fixed by the model (bars, VAE tiles) ignore it.
        """
        ...


class EngineBase:
    """What engine classes share: a no-op ``prepare``, ``check`` from the declarations, and
    ``generate`` as the joined ``stream`` (each engine's one generation path)."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    min_duration_s: ClassVar[float]
    max_duration_s: ClassVar[float]
    # True: the engine needs no model files (its one model is BUILTIN_MODEL; nothing is located).
    model_free: ClassVar[bool] = False
    # Params that choose how the model is prepared and loaded (passed to both by name), and
    # whether ``prepare`` builds files from the model (it is then given ``derived=``, the
    # directory lofi keeps them in).
    setup_params: ClassVar[tuple[str, ...]] = ()
    derives: ClassVar[bool] = False
    # How much a unit of progress costs more at the end of a track than at its start (0: a
    # steady pace), until the scheduler has learned the model's own figure on this machine.
    slowdown: ClassVar[float] = 0.0

    def slowdown_for(self, duration_s: float) -> float:
        """The slowdown of a ``duration_s`` track (``slowdown`` unless the engine measures it)."""
        return self.slowdown

    def measure_pace(self) -> object:
        """Measure how the engine slows within a track on this machine (see ``slowdown_for``);
        None: nothing to measure, ``slowdown`` stands."""
        return None

    @classmethod
    def prepare(
        cls, model_dir: Path, options: RuntimeOptions, on_stage: StageCallback
    ) -> Path | None:
        """Nothing to prepare: the model directory loads as it is."""
        return None

    @classmethod
    def param(cls, name: str) -> Param | None:
        return next((p for p in cls.params if p.name == name), None)

    @classmethod
    def check(cls, request: TrackRequest) -> None:
        """Duration in range, no parameter this engine does not take, each one within bounds."""
        d = request.duration_s
        if not (math.isfinite(d) and cls.min_duration_s <= d <= cls.max_duration_s):
            raise UsageError(
                f"duration must be between {cls.min_duration_s:g} and {cls.max_duration_s:g} "
                f"seconds for {cls.name} (got {d:g})"
            )
        foreign = [name for name in request.params if cls.param(name) is None]
        if foreign:
            raise UsageError(f"{cls.name} does not take {', '.join(foreign)}")
        for name, value in request.params.items():
            declared = cls.param(name)
            if declared is not None and value is not None:
                declared.convert(value)

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        chunk_s: float | None = None,
    ) -> Iterator[Audio]:
        raise NotImplementedError  # every engine streams: this is its one generation path

    def generate(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Audio:
        """The whole track: the joined :meth:`stream`."""
        return Audio.join(self.stream(request, on_progress, cancel))
