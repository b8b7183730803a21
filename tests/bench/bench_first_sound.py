"""Time to first sound (issue #11 point 3): from the Enter key, and from launching ``lofi``.

Run by hand (never in CI), from the repository root, with pulseaudio, pulseaudio-utils (parec)
and tmux installed::

    PYTHONPATH=. python tests/bench/bench_first_sound.py [--model DIR] [--duration 30]
        [--threads 2] [--runs 1] [--cold-runs 1]

Both measurements play into a private PulseAudio null sink (tests/soundserver.py) and look for
the first sample above -60 dBFS in a recording of its monitor (parec), clocked against the wall
clock (see ``streambench.Monitor``):

- **Enter key** (``--runs``): the model is loaded and a real scheduler + player are running on an
  empty track cache before the clock starts; t0 is ``scheduler.set_station(...)`` (what Enter
  on a prompt calls). Also printed: when the first track's generation completed and when the
  scheduler reported it playing. The first run in the process is the honest "first Enter"; later
  runs are warm.
- **Cold start** (``--cold-runs``): ``python -m lofitui --model DIR`` launched in a real
  terminal (tmux) with empty XDG dirs (so an empty cache), the model already on disk; t0 is the
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
    """One Enter-key measurement: (first sound, generation complete, reported playing) - t0."""
    workdir = Path(tempfile.mkdtemp(prefix="lofi-bench-first-"))
    try:
        with Monitor(workdir) as monitor:
            async with running_scheduler(engine) as rig:
                log = rig.log
                await asyncio.sleep(0.5)  # the player's stream is up and idle
                t0 = time.monotonic()
                rig.scheduler.set_station(station(model_dir, duration_s))
                heard = await asyncio.to_thread(monitor.wait_audible, t0, timeout_s, AUDIBLE_DBFS)
                first = next(iter(log.jobs.values()), None)
                generated = first.generated if first else None
                playing = log.first_playing
        return (
            heard - t0,
            generated - t0 if generated is not None else None,
            playing - t0 if playing is not None else None,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cold_start_run(model_dir: Path, duration_s: float, threads: int, timeout_s: float) -> float:
    """Launch ``python -m lofitui`` in tmux on empty XDG dirs; seconds to its first sound."""
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
        "LOFI_MODELS_DIR": str(home / "models"),
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
    parser.add_argument("--runs", type=int, default=1, help="Enter-key measurements")
    parser.add_argument("--cold-runs", type=int, default=1, help="cold-start measurements")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait per run")
    args = parser.parse_args(argv)
    model_dir = args.model.resolve()
    if not (model_dir / "config.json").is_file():
        print(f"bench_first_sound: no MusicGen model in {model_dir}", file=sys.stderr)
        return 2
    if args.runs < 0 or args.cold_runs < 0 or args.duration <= 0 or args.threads < 0:
        print("bench_first_sound: --runs, --duration, --threads must be >= 0", file=sys.stderr)
        return 2

    print(f"model {model_dir}, {args.duration:g} s tracks, {args.threads} threads")
    print(f"before: {machine_load()}")
    enter: list[float] = []
    cold: list[float] = []
    with sound_server():
        if args.runs:
            started = time.perf_counter()
            engine = open_model(model_dir, args.threads)
            print(f"model loaded in {time.perf_counter() - started:.1f} s (before the clock)")
            for i in range(args.runs):
                heard, generated, playing = asyncio.run(
                    enter_key_run(engine, model_dir, args.duration, args.timeout)
                )
                enter.append(heard)
                gen = f"{generated:.2f} s" if generated is not None else "not seen"
                play = f"{playing:.2f} s" if playing is not None else "not seen"
                print(
                    f"Enter run {i + 1}: first sound {heard:.2f} s after Enter "
                    f"(first track generated at {gen}, reported playing at {play}); "
                    f"{machine_load()}",
                    flush=True,
                )
            del engine
        for i in range(args.cold_runs):
            seconds = cold_start_run(model_dir, args.duration, args.threads, args.timeout)
            cold.append(seconds)
            print(
                f"cold run {i + 1}: first sound {seconds:.2f} s after launching lofi; "
                f"{machine_load()}",
                flush=True,
            )
    print(summary("time to first sound from Enter", enter))
    print(summary("cold start (launch to first sound)", cold))
    print(f"after: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
