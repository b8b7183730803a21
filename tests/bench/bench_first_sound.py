"""Time to first sound (issue #11 point 3): from the Enter key, and from launching ``lofi``.

Run by hand (never in CI), from the repository root, with pulseaudio, pulseaudio-utils (parec)
and tmux installed::

    PYTHONPATH=. python tests/bench/bench_first_sound.py [--model DIR] [--duration 30]
        [--threads 2] [--chunk-runs 3] [--runs 1] [--cold-runs 1]

Both measurements play into a private PulseAudio null sink (tests/soundserver.py) and look for
the first sample above -60 dBFS in a recording of its monitor (parec), clocked against the wall
clock (see ``streambench.Monitor``):

- **First chunk** (``--chunk-runs``): on the loaded engine, from ``engine.stream(request)`` to
  its first three chunks (a new seed each run, the stream closed after the third). This is the
  figure the model's speed does not hide: slower than real time, the start rule rightly waits
  longer before playing, but the first chunk is still there this soon. Also printed: the
  process's memory (VmRSS after loading, VmHWM at the end), the sessions being resident.
- **Enter key** (``--runs``): the model is loaded and a real scheduler + player are running on an
  empty track cache before the clock starts; t0 is ``scheduler.set_station(...)`` (what Enter
  on a prompt calls). Also printed: when the scheduler got the first chunk, when the first
  track's generation completed and when the scheduler reported it playing. The first run in the
  process is the honest "first Enter"; later runs are warm.
- **Cold start** (``--cold-runs``): ``python -m lofitui --model DIR`` launched in a real
  terminal (tmux) with empty XDG dirs (so an empty cache), the model and lofi's fast build of it
  already on disk (built once into tests/bench/.cache/lofi-models before the clock); t0 is the
  launch. It plays the config's first prompt at once.

``--model`` defaults to the full-size random-weight musicgen-small export under
tests/bench/.cache/musicgen-small-random (built by bench_musicgen.py); pass
tests/fixtures/musicgen-tiny for the tiny fixture. Each run prints the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from capture_analysis import AUDIBLE_DBFS
from streambench import (
    DEFAULT_MODEL,
    ROOT,
    Monitor,
    machine_load,
    open_model,
    running_scheduler,
    sound_server,
    station,
)


async def enter_key_run(engine: object, model_dir: Path, duration_s: float, timeout_s: float):
    """One Enter-key measurement, in seconds after t0: first sound, first chunk at the
    scheduler, generation complete, reported playing (None: not seen)."""
    from lofitui.events import JobChanged

    workdir = Path(tempfile.mkdtemp(prefix="lofi-bench-first-"))
    first_chunk: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, JobChanged) and event.job.generated_s > 0 and not first_chunk:
            first_chunk.append(time.monotonic())

    try:
        with Monitor(workdir) as monitor:
            async with running_scheduler(engine) as rig:
                log = rig.log
                rig.scheduler.subscribe(on_event)
                await asyncio.sleep(0.5)  # the player's stream is up and idle
                t0 = time.monotonic()
                rig.scheduler.set_station(station(model_dir, duration_s))
                heard = await asyncio.to_thread(monitor.wait_audible, t0, timeout_s, AUDIBLE_DBFS)
                first = next(iter(log.jobs.values()), None)
                generated = first.generated if first else None
                playing = log.first_playing
        return tuple(
            t - t0 if t is not None else None
            for t in (heard, first_chunk[0] if first_chunk else None, generated, playing)
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def first_chunks(engine: Any, model_dir: Path, duration_s: float, seed: int) -> list[tuple]:
    """(seconds after the request, seconds of audio, CPU seconds this process spent) of a
    fresh stream's first three chunks. The CPU time hardly depends on what else the machine
    runs: on an idle machine the wall time is about it divided by the threads."""
    request = station(model_dir, duration_s).request(seed)
    started, cpu = time.perf_counter(), time.process_time()
    stream = engine.stream(request)
    seen = []
    try:
        for chunk in stream:
            seen.append(
                (time.perf_counter() - started, chunk.duration_s, time.process_time() - cpu)
            )
            if len(seen) == 3:
                break
    finally:
        stream.close()
    return seen


def memory() -> dict[str, int]:
    """This process's VmRSS and VmHWM (peak), in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) // 1024
    return fields


MODELS_DIR = Path(__file__).resolve().parent / ".cache" / "lofi-models"


def prepare_derived(model_dir: Path) -> None:
    """Build lofi's fast decoder for ``model_dir`` once into MODELS_DIR, before any clock: a
    user's cached model has its build already (the first use made it)."""
    env = {**os.environ, "LOFI_MODELS_DIR": str(MODELS_DIR), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lofitui", "models", "optimize", str(model_dir)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)


def cold_start_run(model_dir: Path, duration_s: float, threads: int, timeout_s: float) -> float:
    """Launch ``python -m lofitui`` in tmux on empty XDG dirs (so an empty track cache) with the
    model and its fast build on disk; seconds to its first sound."""
    if shutil.which("tmux") is None:
        raise SystemExit("bench_first_sound: tmux is needed for the cold start (or --cold-runs 0)")
    home = Path(tempfile.mkdtemp(prefix="lofi-bench-cold-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TMUX")},
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_MUSIC_DIR": str(home / "music"),
        "LOFI_MODELS_DIR": str(MODELS_DIR),
        "PYTHONPATH": str(ROOT),
        "TERM": "xterm-256color",
    }
    tmux = ["tmux", "-S", str(home / "tmux.sock")]
    session = f"lofi-bench-{os.getpid()}"
    command = (
        f"cd {ROOT} && exec {sys.executable} -m lofitui --model {model_dir} "
        f"--duration {duration_s:g} --threads {threads}"
    )
    try:
        with Monitor(home) as monitor:
            t0 = time.monotonic()
            subprocess.run(
                [*tmux, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command],
                env=env,
                check=True,
            )
            try:
                heard = monitor.wait_audible(t0, timeout_s, AUDIBLE_DBFS)
            except TimeoutError:
                screen = subprocess.run(
                    [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
                ).stdout
                raise TimeoutError(f"lofi made no sound; its screen:\n{screen}") from None
            finally:
                quit_lofi(tmux, session)
        return heard - t0
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def quit_lofi(tmux: list[str], session: str) -> None:
    """Press q in lofi's terminal and wait (up to 15 s) for it to close."""
    subprocess.run([*tmux, "send-keys", "-t", session, "q"], capture_output=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        alive = subprocess.run([*tmux, "has-session", "-t", session], capture_output=True)
        if alive.returncode != 0:
            return
        time.sleep(0.1)


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no runs"
    text = f"{name}: " + ", ".join(f"{v:.2f}" for v in values) + " s"
    if len(values) > 1:
        text += f" (median {statistics.median(values):.2f} s)"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="MusicGen directory")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per track")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for inference")
    parser.add_argument("--chunk-runs", type=int, default=3, help="first-chunk measurements")
    parser.add_argument("--runs", type=int, default=1, help="Enter-key measurements")
    parser.add_argument("--cold-runs", type=int, default=1, help="cold-start measurements")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait per run")
    args = parser.parse_args(argv)
    model_dir = args.model.resolve()
    if not (model_dir / "config.json").is_file():
        print(f"bench_first_sound: no MusicGen model in {model_dir}", file=sys.stderr)
        return 2
    counts = (args.chunk_runs, args.runs, args.cold_runs, args.threads)
    if min(counts) < 0 or args.duration <= 0:
        print(
            "bench_first_sound: --chunk-runs, --runs, --cold-runs, --threads must be >= 0 and "
            "--duration > 0",
            file=sys.stderr,
        )
        return 2

    print(f"model {model_dir}, {args.duration:g} s tracks, {args.threads} threads")
    print(f"before: {machine_load()}")
    chunk: list[float] = []
    enter: list[float] = []
    cold: list[float] = []
    with sound_server():
        if args.runs or args.chunk_runs:
            started = time.perf_counter()
            engine = open_model(model_dir, args.threads)
            print(
                f"model loaded in {time.perf_counter() - started:.1f} s (before the clock); "
                f"memory {memory()} MB"
            )
            for i in range(args.chunk_runs):
                seen = first_chunks(engine, model_dir, args.duration, seed=1000 + i)
                chunk.append(seen[0][0])
                chunks = ", ".join(
                    f"{at:.2f} s ({audio:.1f} s of audio, {cpu:.2f} CPU s)"
                    for at, audio, cpu in seen
                )
                print(f"chunk run {i + 1}: chunks at {chunks}; {machine_load()}", flush=True)
            for i in range(args.runs):
                heard, got, generated, playing = asyncio.run(
                    enter_key_run(engine, model_dir, args.duration, args.timeout)
                )
                enter.append(heard)
                seen = [
                    f"{t:.2f} s" if t is not None else "not seen" for t in (got, generated, playing)
                ]
                print(
                    f"Enter run {i + 1}: first sound {heard:.2f} s after Enter (first chunk at "
                    f"{seen[0]}, track generated at {seen[1]}, reported playing at {seen[2]}); "
                    f"{machine_load()}",
                    flush=True,
                )
            print(f"memory {memory()} MB")
            del engine
        if args.cold_runs:
            prepare_derived(model_dir)
        for i in range(args.cold_runs):
            seconds = cold_start_run(model_dir, args.duration, args.threads, args.timeout)
            cold.append(seconds)
            print(
                f"cold run {i + 1}: first sound {seconds:.2f} s after launching lofi; "
                f"{machine_load()}",
                flush=True,
            )
    print(summary("request to first chunk (engine)", chunk))
    print(summary("time to first sound from Enter", enter))
    print(summary("cold start (launch to first sound)", cold))
    print(f"after: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
