"""The harness of the streaming benchmarks: a private sound server, a recording of its monitor
with a wall clock for every captured frame, the real scheduler + player, and their event log.

Used by bench_first_sound.py and bench_gaps.py (run by hand, never in CI). Everything goes
through lofi's public API (``Scheduler``, ``TrackCache``, ``Player``, ``session.open_engine``),
so the same scripts measure the code before and after streaming playback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_MODEL = HERE / ".cache" / "musicgen-small-random"
TINY_MODEL = ROOT / "tests" / "fixtures" / "musicgen-tiny"
PROMPT = "lofi hip hop beat with warm piano and vinyl crackle"
RATE = 48000  # the null sink's rate (tests/soundserver.py)
CHANNELS = 2
FRAME_BYTES = 4 * CHANNELS  # float32 stereo

sys.path.insert(0, str(ROOT / "tests"))
import soundserver  # noqa: E402  (tests/soundserver.py, as the tests import it)
from bench.capture_analysis import first_audible  # noqa: E402  (tests/ is on sys.path)


def machine_load() -> str:
    """The load average and core count, for every printout (the machine is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


@contextlib.contextmanager
def sound_server() -> Iterator[soundserver.SoundServer]:
    """A private PulseAudio null sink; this process's environment points at it meanwhile."""
    server = soundserver.start_private()
    with soundserver.serving(server):
        yield server


class Monitor:
    """Records the null sink's monitor with ``parec`` into a file and clocks every frame.

    A thread notes (wall time, frames written) every 10 ms. Frame ``n`` was captured no later
    than any time at which the file already held it, so the capture clock's origin is the
    smallest ``t - n / RATE`` seen (its error is parec's latency, ~10-20 ms).
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "monitor.f32"
        self._proc: subprocess.Popen[bytes] | None = None
        self._origin = float("inf")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def __enter__(self) -> Monitor:
        self._out = self.path.open("wb")
        self._proc = subprocess.Popen(
            [
                "parec",
                f"--device={soundserver.SINK}.monitor",
                "--format=float32le",
                f"--rate={RATE}",
                f"--channels={CHANNELS}",
                "--latency-msec=10",
                "--raw",
            ],
            stdout=self._out,
            env=os.environ.copy(),
        )
        self._poller = threading.Thread(target=self._poll, name="bench-monitor", daemon=True)
        self._poller.start()
        deadline = time.monotonic() + 10
        while self.frames() < RATE // 10:  # 100 ms recorded: the clock is set
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("parec recorded nothing from the sink's monitor")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._out.close()

    def frames(self) -> int:
        """Frames written so far."""
        try:
            return self.path.stat().st_size // FRAME_BYTES
        except FileNotFoundError:
            return 0

    def _poll(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            n = self.frames()
            if n:
                self._origin = min(self._origin, now - n / RATE)
            time.sleep(0.01)

    @property
    def origin(self) -> float:
        """The wall time (``time.monotonic``) at which frame 0 was captured."""
        return self._origin

    def seconds(self, wall: float) -> float:
        """A wall time as seconds into the capture."""
        return wall - self._origin

    def audio(self, start_frame: int = 0) -> np.ndarray:
        """The capture from ``start_frame`` on, (frames, 2) float32."""
        with self.path.open("rb") as f:
            f.seek(start_frame * FRAME_BYTES)
            data = f.read()
        usable = len(data) // FRAME_BYTES * FRAME_BYTES
        return np.frombuffer(data[:usable], dtype=np.float32).reshape(-1, CHANNELS)

    def wait_audible(self, after_wall: float, timeout_s: float, threshold_dbfs: float) -> float:
        """Poll the capture until a sample after ``after_wall`` is audible; its wall time.

        Raises TimeoutError if nothing is heard within ``timeout_s``.
        """
        frame = max(0, int((after_wall - self.origin) * RATE))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            chunk = self.audio(frame)
            hit = first_audible(chunk, threshold_dbfs)
            if hit is not None:
                return self.origin + (frame + hit) / RATE
            frame += chunk.shape[0]
            time.sleep(0.05)
        raise TimeoutError(f"no audible sample within {timeout_s:.0f} s")


def open_model(model_dir: Path, threads: int) -> Any:
    """The MusicGen engine for ``model_dir``, loaded as lofi loads it (CPU, ``threads``)."""
    from lofitui.session import open_engine

    engine = open_engine(
        "musicgen", str(model_dir), device="cpu", threads=threads, offline=True
    ).engine
    engine.measure_pace()  # as the app does while nothing is learned (a fresh state directory)
    return engine


class Throttled:
    """An engine paced to at most ``rate`` seconds of audio per second of wall time (it sleeps
    in its progress callback, outside the GIL), to force a generator slower than real time.
    The engine itself must be faster than ``rate``; its progress units are taken as linear in
    audio time (MusicGen's are frames)."""

    def __init__(self, engine: Any, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"throttle rate must be > 0 (got {rate})")
        self._engine = engine
        self._rate = rate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _paced(self, duration_s: float, on_progress: Any) -> Callable[[Any], None]:
        start = time.perf_counter()

        def report(progress: Any) -> None:
            due = start + progress.fraction * duration_s / self._rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if on_progress is not None:
                on_progress(progress)

        return report

    def generate(self, request: Any, on_progress: Any = None, cancel: Any = None) -> Any:
        return self._engine.generate(request, self._paced(request.duration_s, on_progress), cancel)

    def stream(
        self, request: Any, on_progress: Any = None, cancel: Any = None, *, chunk_s: Any = None
    ) -> Iterator[Any]:
        paced = self._paced(request.duration_s, on_progress)
        return self._engine.stream(request, paced, cancel, chunk_s=chunk_s)


@dataclass
class JobTimes:
    """Wall times of one job's life, from the scheduler's events."""

    duration_s: float
    generating: float | None = None
    generated: float | None = None  # generation complete (READY, or streamed to the end)
    playing: float | None = None  # became audible (start of its crossfade)
    played: float | None = None

    @property
    def generation_s(self) -> float | None:
        if self.generating is None or self.generated is None:
            return None
        return self.generated - self.generating

    @property
    def rate(self) -> float | None:
        """Seconds of audio generated per second of wall time."""
        g = self.generation_s
        return self.duration_s / g if g else None


@dataclass
class EventLog:
    """The scheduler's events with their wall times, folded into per-job times."""

    jobs: dict[str, JobTimes] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    first_playing: float | None = None

    def __call__(self, event: Any) -> None:
        from lofitui.events import JobChanged, JobState, Notice

        now = time.monotonic()
        if isinstance(event, Notice):
            self.notices.append(f"{event.severity}: {event.message}")
            return
        if not isinstance(event, JobChanged):
            return
        info = event.job
        times = self.jobs.setdefault(info.id, JobTimes(info.duration_s))
        state = info.state
        if state is JobState.GENERATING and times.generating is None:
            times.generating = now
        complete = state is JobState.READY or (
            getattr(info, "generated_s", 0.0) >= info.duration_s and not state.pending
        )
        if complete and times.generated is None and times.generating is not None:
            times.generated = now
        if state is JobState.PLAYING and times.playing is None:
            times.playing = now
            if self.first_playing is None:
                self.first_playing = now
        if state is JobState.PLAYED and times.played is None:
            times.played = now

    def generated_jobs(self) -> list[JobTimes]:
        """Jobs whose whole generation was seen, in the order they started generating."""
        done = [t for t in self.jobs.values() if t.generation_s is not None]
        return sorted(done, key=lambda t: t.generating or 0.0)

    def starts(self) -> list[float]:
        """Wall times at which tracks became audible, in order."""
        return sorted(t.playing for t in self.jobs.values() if t.playing is not None)

    def ends(self) -> list[float]:
        """Wall times at which tracks finished playing, in order."""
        return sorted(t.played for t in self.jobs.values() if t.played is not None)

    def mean_rate(self) -> float | None:
        """Audio seconds generated per wall second over all complete generations."""
        jobs = self.generated_jobs()
        total = sum(t.generation_s or 0.0 for t in jobs)
        return sum(t.duration_s for t in jobs) / total if total else None


@dataclass
class Rig:
    """A running scheduler, its real player, its event log and its (temporary) cache dir."""

    scheduler: Any
    player: Any
    log: EventLog
    cache_dir: Path


@contextlib.asynccontextmanager
async def running_scheduler(
    engine: Any, *, lookahead: int = 2, crossfade_s: float = 2.0
) -> AsyncIterator[Rig]:
    """The real scheduler with a real player and an empty track cache in a temp dir;
    everything is closed and removed afterwards."""
    from lofitui.audio.player import Player
    from lofitui.library import TrackCache
    from lofitui.scheduler import Scheduler

    cache_dir = Path(tempfile.mkdtemp(prefix="lofi-bench-cache-"))
    try:
        cache = TrackCache(cache_dir)
        player = Player(crossfade_s=crossfade_s)
        player.start()
        scheduler = Scheduler(
            lambda _station: engine, cache, player, lookahead=lookahead, crossfade_s=crossfade_s
        )
        log = EventLog()
        scheduler.subscribe(log)
        await scheduler.start()
        if not scheduler.has_audio_output:
            raise RuntimeError(f"the player has no audio output: {log.notices}")
        try:
            yield Rig(scheduler, player, log, cache_dir)
        finally:
            await scheduler.aclose()
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def station(model_dir: Path, duration_s: float) -> Any:
    """The benchmark's station: the default MusicGen sampling on ``model_dir``."""
    from lofitui.events import Station

    return Station(prompt=PROMPT, model=str(model_dir), duration_s=duration_s)


async def sleep_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Wait on the loop (so the scheduler runs) until ``predicate``; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
