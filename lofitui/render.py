"""Headless rendering: requests → engine → WAV files with sidecar JSON, with rich progress."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
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

from lofitui.audio.types import Audio
from lofitui.engines.base import CancelToken, Engine, TrackRequest
from lofitui.engines.base import Progress as GenProgress
from lofitui.errors import UsageError
from lofitui.library import track_metadata, write_track

FORMATS = ("wav",)
MAX_COUNT = 1000


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

    def validate(self) -> None:
        if not self.prompt.strip():
            raise UsageError("the prompt is empty: describe the music, e.g. 'lofi hip hop piano'")
        if not self.duration_s > 0:
            raise UsageError(f"duration must be > 0 seconds (got {self.duration_s:g})")
        if not 1 <= self.count <= MAX_COUNT:
            raise UsageError(f"count must be between 1 and {MAX_COUNT} (got {self.count})")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise UsageError(f"seed must be between 0 and 2^63-1 (got {self.seed})")
        if self.format not in FORMATS:
            raise UsageError(
                f"unsupported format {self.format!r} (supported: {', '.join(FORMATS)})"
            )

    def seeds(self) -> list[int]:
        if self.seed is not None:
            return [self.seed + i for i in range(self.count)]
        return [secrets.randbits(31) for _ in range(self.count)]


def check_writable(directory: Path) -> Path:
    """Create ``directory`` if needed and prove we can write there (one clear error if not)."""
    directory = directory.expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".lofi-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot write to output directory {directory}: {reason}") from None
    return directory


def run_in_worker(
    engine: Engine,
    request: TrackRequest,
    on_progress: Callable[[GenProgress], None],
    cancel: CancelToken,
) -> Audio:
    """Generate on a worker thread so Ctrl-C is seen at once and turned into a cancel.

    Waits on an Event, not ``Thread.join``: a KeyboardInterrupt inside ``join`` can leave
    CPython believing the thread has stopped while it still runs inside ONNX Runtime.
    """
    result: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            result["audio"] = engine.generate(request, on_progress, cancel)
        except BaseException as exc:
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="lofi-render", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        cancel.cancel()
        while not done.wait(0.1):  # the engine stops at its next step
            pass
        raise
    if "error" in result:
        raise result["error"]
    return result["audio"]


def render(
    job: RenderJob,
    engine: Engine,
    *,
    engine_name: str,
    model_name: str,
    console: Console | None = None,
) -> list[Path]:
    """Render every track of ``job``; returns the written WAV paths."""
    job.validate()
    out_dir = check_writable(job.out_dir)
    console = console or Console(stderr=True)
    written: list[Path] = []
    cancel = CancelToken()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    requests = [
        TrackRequest(
            prompt=job.prompt,
            duration_s=job.duration_s,
            seed=seed,
            engine=engine_name,
            model=model_name,
            params=job.params,
        )
        for seed in job.seeds()
    ]
    for request in requests:  # refuse bad parameters before any progress bar appears
        engine.validate(request)
    with Progress(*columns, console=console, transient=False) as bars:
        for index, request in enumerate(requests):
            seed = request.seed
            label = f"track {index + 1}/{job.count} seed {seed}"
            task = bars.add_task(label, total=None, unit="", rate="")
            started = time.perf_counter()
            audio = run_in_worker(engine, request, _progress_updater(bars, task), cancel)
            path = write_track(
                out_dir,
                request,
                audio,
                track_metadata(request, engine, audio, time.perf_counter() - started),
            )
            bars.update(task, description=f"{label} → {path.name}")
            written.append(path)
    return written


def _progress_updater(bars: Progress, task: TaskID) -> Callable[[GenProgress], None]:
    def update(p: GenProgress) -> None:
        rate = f"{p.rate:.1f} {p.unit}/s" if p.rate else ""
        bars.update(task, completed=p.done, total=p.total, unit=f"{p.unit}s", rate=rate)

    return update


__all__ = ["RenderJob", "check_writable", "render"]
