"""Headless rendering: requests → engine stream → WAV files with sidecar JSON, or one WAV stream
on stdout, with rich progress on stderr. Every track is normalised (:mod:`lofitui.audio.loudness`):
a file at its exact gain once complete, the stdout stream with the running gain as it comes."""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lofitui.atomic import sweep_stale_parts
from lofitui.audio.loudness import Loudness, LoudnessStream
from lofitui.audio.types import Audio
from lofitui.audio.wav import MAX_DATA_BYTES, WavStream
from lofitui.engines.base import CancelToken, Engine, TrackRequest
from lofitui.engines.base import Progress as GenProgress
from lofitui.engines.base import ProgressCallback as GenProgressCallback
from lofitui.errors import UsageError
from lofitui.library import track_metadata, write_track
from lofitui.library.space import is_disk_full, write_error

FORMATS = ("wav",)
MAX_COUNT = 1000
MAX_SEED = 2**63 - 1  # track i of --count N uses seed + i: the last must fit too
STDOUT = "-"  # --out - : one WAV stream on stdout instead of files
AHEAD_CHUNKS = 32  # how far generation may run ahead of a slow reader (~32 s of MusicGen)
# Files are written whole, so their chunks need not be short: 5 s chunks cost less to decode
# (see Engine.stream's chunk_s). A stream to stdout keeps the engine's ~1 s chunks.
FILE_CHUNK_S = 5.0


@dataclass(frozen=True)
class RenderJob:
    """What ``lofi --render`` was asked for."""

    prompt: str
    duration_s: float
    count: int = 1
    seed: int | None = None
    out_dir: Path = Path(".")
    format: str = "wav"
    params: dict[str, Any] = field(default_factory=dict)
    loudness: Loudness = field(default_factory=Loudness)

    def validate(self) -> None:
        if not self.prompt.strip():
            raise UsageError("the prompt is empty: describe the music, e.g. 'lofi hip hop piano'")
        if not self.duration_s > 0:
            raise UsageError(f"duration must be > 0 seconds (got {self.duration_s:g})")
        if not 1 <= self.count <= MAX_COUNT:
            raise UsageError(f"count must be between 1 and {MAX_COUNT} (got {self.count})")
        last = MAX_SEED - (max(self.count, 1) - 1)  # the series' seeds must all be valid
        if self.seed is not None and not 0 <= self.seed <= last:
            series = f" for {self.count} tracks" if self.count > 1 else ""
            raise UsageError(f"seed must be between 0 and {last}{series} (got {self.seed})")
        if self.format not in FORMATS:
            raise UsageError(
                f"unsupported format {self.format!r} (supported: {', '.join(FORMATS)})"
            )

    @property
    def to_stdout(self) -> bool:
        """``--out -``: the audio goes to stdout as one WAV stream."""
        return str(self.out_dir) == STDOUT

    def seeds(self) -> list[int]:
        if self.seed is not None:
            return [self.seed + i for i in range(self.count)]
        return [secrets.randbits(31) for _ in range(self.count)]

    def requests(self, engine: Engine, *, engine_name: str, model_name: str) -> list[TrackRequest]:
        """One request per track, each validated by ``engine`` (before any output starts)."""
        requests = [
            TrackRequest(
                prompt=self.prompt,
                duration_s=self.duration_s,
                seed=seed,
                engine=engine_name,
                model=model_name,
                params=self.params,
            )
            for seed in self.seeds()
        ]
        for request in requests:
            engine.validate(request)
        return requests


def check_writable(directory: Path) -> Path:
    """Create ``directory`` if needed and prove we can write there (one clear error if not)."""
    directory = directory.expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot write to output directory {directory}: {_why_not_a_directory(directory, exc)}"
        ) from None
    # Named as lofi's temp files are: one left by a kill is swept like them.
    probe = directory / f".lofi-write-test.{os.getpid()}-{secrets.token_hex(4)}.part"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if is_disk_full(exc):
            raise write_error(exc, directory) from None
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"cannot write to output directory {directory}: it is not writable (creating a "
            f"file there fails: {reason})"
        ) from None
    return directory


def _why_not_a_directory(directory: Path, exc: OSError) -> str:
    """Why ``mkdir`` failed, named by what is really there: a loop of symbolic links, a link
    to nothing, a file where a directory should be; else ``exc``'s reason."""
    for path in (*reversed(directory.parents), directory):  # the first that is wrong
        try:
            os.stat(path)
        except OSError as stat_exc:
            if stat_exc.errno == errno.ELOOP:
                return f"{path} is a loop of symbolic links"
            if stat_exc.errno == errno.ENOENT and path.is_symlink():
                return f"{path} is a symbolic link to {os.readlink(path)}, which does not exist"
            break
        if not path.is_dir():
            return f"{path} is a file, not a directory"
    return f"it cannot be created ({exc.strerror or type(exc).__name__})"


@dataclass(frozen=True)
class Chunk:
    """The next piece of track ``index``'s audio."""

    index: int
    audio: Audio


@dataclass(frozen=True)
class TrackDone:
    """Track ``index`` is complete; generating it took ``seconds``."""

    index: int
    seconds: float


class Generation:
    """The requests generated one after another on a worker thread, read as :class:`Chunk` and
    :class:`TrackDone` events as they come; the worker runs up to :data:`AHEAD_CHUNKS` chunks
    ahead of a slow reader (a pipe to a player), then waits.

    A context manager: leaving it early (Ctrl-C, a closed pipe, an error) cancels the generation
    and waits until the engine has stopped. Waits are short timed waits, never ``Thread.join``:
    a KeyboardInterrupt inside ``join`` can leave CPython believing the thread has stopped while
    it still runs inside ONNX Runtime.
    """

    def __init__(
        self,
        engine: Engine,
        requests: list[TrackRequest],
        begin: Callable[[int], GenProgressCallback],
        cancel: CancelToken,
        chunk_s: float | None = None,
    ) -> None:
        self._engine = engine
        self._requests = requests
        self._begin = begin
        self._cancel = cancel
        self._chunk_s = chunk_s
        self._events: queue.Queue[Chunk | TrackDone] = queue.Queue(maxsize=AHEAD_CHUNKS)
        self._stopped = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> Generation:
        threading.Thread(target=self._work, name="lofi-render", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._stopped.is_set():
            self._cancel.cancel()
            while not self._stopped.wait(0.1):  # the engine stops at its next step
                pass

    def __iter__(self) -> Iterator[Chunk | TrackDone]:
        while True:
            try:
                yield self._events.get(timeout=0.1)
            except queue.Empty:
                # Everything the worker put is queued before it says it stopped.
                if self._stopped.is_set() and self._events.empty():
                    if self._error is not None:
                        raise self._error from None
                    return

    def _work(self) -> None:
        try:
            for index, request in enumerate(self._requests):
                started = time.perf_counter()
                chunks = self._engine.stream(
                    request, self._begin(index), self._cancel, chunk_s=self._chunk_s
                )
                for audio in chunks:
                    self._put(Chunk(index, audio))
                self._put(TrackDone(index, time.perf_counter() - started))
        except BaseException as exc:
            self._error = exc
        finally:
            self._stopped.set()

    def _put(self, event: Chunk | TrackDone) -> None:
        while True:
            self._cancel.check()
            try:
                self._events.put(event, timeout=0.1)
                return
            except queue.Full:
                continue


def render(
    job: RenderJob,
    engine: Engine,
    *,
    engine_name: str,
    model_name: str,
    console: Console | None = None,
) -> list[Path]:
    """Render every track of ``job`` to files; returns the written WAV paths.

    Each track is written (16-bit WAV and sidecar, atomically) once it is complete.
    """
    job.validate()
    out_dir = check_writable(job.out_dir)
    sweep_stale_parts(out_dir)  # temp files left by a lofi killed mid-write (SIGKILL, power)
    requests = job.requests(engine, engine_name=engine_name, model_name=model_name)
    written: list[Path] = []
    parts: list[Audio] = []
    with _generating(engine, requests, console, chunk_s=FILE_CHUNK_S) as (bars, gen):
        for event in gen:
            if isinstance(event, Chunk):
                parts.append(event.audio)
                continue
            request = requests[event.index]
            audio, loudness = job.loudness.normalise(Audio.join(parts))
            parts = []
            metadata = track_metadata(request, engine, audio, event.seconds)
            metadata["loudness"] = loudness
            try:
                path = write_track(out_dir, request, audio, metadata)
            except OSError as exc:  # nothing of this track is left; the earlier ones are whole
                kept = {0: "", 1: "; the track before it is kept"}.get(
                    len(written), f"; the {len(written)} tracks before it are kept"
                )
                detail = f": track {event.index + 1} of {len(requests)} was not written{kept}"
                raise write_error(exc, out_dir, detail) from None
            bars.finish(event.index, f"→ {path.name}")
            written.append(path)
    return written


def render_stream(
    job: RenderJob,
    engine: Engine,
    write: Callable[[bytes], object],
    *,
    engine_name: str,
    model_name: str,
    console: Console | None = None,
) -> None:
    """Render every track of ``job`` as one 16-bit WAV stream through ``write`` (a pipe).

    The header comes first and promises ``round(duration × rate)`` frames per track, all
    ``count`` tracks back to back; each track's audio follows as it is generated, cut or padded
    with silence to exactly that length. No sidecar is written. An error from ``write`` (a
    closed pipe: BrokenPipeError) cancels the generation and propagates.
    """
    job.validate()
    requests = job.requests(engine, engine_name=engine_name, model_name=model_name)
    per_track = round(job.duration_s * engine.sample_rate)
    frames = per_track * job.count
    size = frames * engine.channels * 2
    if size > MAX_DATA_BYTES:
        raise UsageError(
            f"--out - writes one WAV of at most 4 GiB; {job.count} x {job.duration_s:g} s "
            f"would be {size / 2**30:.1f} GiB: lower --count or --duration"
        )
    wav = WavStream(write, frames, engine.sample_rate, engine.channels)
    wav.start()
    level: LoudnessStream | None = None  # the track being written's
    with _generating(engine, requests, console) as (bars, gen):
        for event in gen:
            end = (event.index + 1) * per_track
            if level is None:
                level = job.loudness.stream(engine.sample_rate, engine.channels)
            if isinstance(event, Chunk):
                _write_within(wav, level.push(event.audio), end)
            else:
                _write_within(wav, level.flush(), end)
                level = None
                wav.pad(end - wav.written)
                bars.finish(event.index, "→ stdout")


def _write_within(wav: WavStream, audio: Audio, end: int) -> None:
    """``audio`` into the stream, cut where the track must end (frame ``end``)."""
    room = end - wav.written
    if audio.frames > room:
        audio = Audio(audio.samples[:room], audio.sample_rate)
    wav.write(audio)


class _Bars:
    """One rich progress bar per track, on stderr; ``begin`` is called from the worker."""

    COLUMNS = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )

    def __init__(self, progress: Progress, requests: list[TrackRequest]) -> None:
        self._progress = progress
        self._requests = requests
        self._tasks: dict[int, tuple[TaskID, str]] = {}

    def begin(self, index: int) -> GenProgressCallback:
        """Show track ``index``'s bar; the callback that moves it."""
        label = f"track {index + 1}/{len(self._requests)} seed {self._requests[index].seed}"
        task = self._progress.add_task(label, total=None, unit="", rate="")
        self._tasks[index] = (task, label)
        return _progress_updater(self._progress, task)

    def finish(self, index: int, note: str) -> None:
        task, label = self._tasks[index]
        self._progress.update(task, description=f"{label} {note}")


@contextlib.contextmanager
def _generating(
    engine: Engine,
    requests: list[TrackRequest],
    console: Console | None,
    chunk_s: float | None = None,
) -> Iterator[tuple[_Bars, Generation]]:
    """The progress bars (on stderr) and the running generation of ``requests``."""
    with Progress(*_Bars.COLUMNS, console=console or Console(stderr=True)) as progress:
        bars = _Bars(progress, requests)
        with Generation(engine, requests, bars.begin, CancelToken(), chunk_s) as generation:
            yield bars, generation


def _progress_updater(bars: Progress, task: TaskID) -> Callable[[GenProgress], None]:
    def update(p: GenProgress) -> None:
        rate = f"{p.rate:.1f} {p.unit}/s" if p.rate else ""
        bars.update(task, completed=p.done, total=p.total, unit=f"{p.unit}s", rate=rate)

    return update


__all__ = [
    "STDOUT",
    "Chunk",
    "Generation",
    "RenderJob",
    "TrackDone",
    "check_writable",
    "render",
    "render_stream",
]
