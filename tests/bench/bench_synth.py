"""Speed of the built-in synth engine on one core: how many times faster than real time it
generates, and how soon the first bar of a track is ready.

Run by hand (never in CI), from the repository root::

    PYTHONPATH=. python tests/bench/bench_synth.py [--duration 120] [--runs 2]

For each prompt it streams one track and prints the speed factor (seconds of audio per second
of this process's CPU time, and per wall second), the time to the first chunk (load included:
``SynthEngine.load`` + arrangement + loudness calibration + first bar) and the track's loudness.
numpy's FFT and elementwise ufuncs run on one thread here, so CPU time is one core's time; the
machine's load average is printed with each run, since other work inflates the wall clock.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from lofitui.audio.loudness import integrated_lufs
from lofitui.engines.base import BUILTIN_MODEL, TrackRequest
from lofitui.engines.runtime import RuntimeOptions
from lofitui.engines.synth import SynthEngine

PROMPTS = (
    "lofi hip hop, rhodes, vinyl crackle",
    "sad piano, rain, slow",
    "dreamy ambient pad, no drums",
    "upbeat jazzy guitar melody, tape",
)


def bench(prompt: str, duration: float, seed: int) -> tuple[float, float, float, float, float]:
    """(cpu speed factor, wall speed factor, first chunk s (wall), first chunk s (CPU), LUFS)
    of one streamed track."""
    wall, cpu = time.perf_counter(), time.process_time()
    engine = SynthEngine.load(BUILTIN_MODEL, RuntimeOptions("cpu", 1))
    chunks = []
    first = first_cpu = None
    for chunk in engine.stream(TrackRequest(prompt, duration, seed, "synth", BUILTIN_MODEL)):
        if first is None:
            first, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
        chunks.append(chunk.samples)
    cpu_s = time.process_time() - cpu
    wall_s = time.perf_counter() - wall
    audio = np.concatenate(chunks)
    return (
        duration / cpu_s,
        duration / wall_s,
        float(first or 0.0),
        float(first_cpu or 0.0),
        integrated_lufs(audio, engine.sample_rate),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.duration:g} s tracks, {args.runs} run(s) per prompt, one core")
    speeds = []
    for prompt in PROMPTS:
        for run in range(args.runs):
            cpu, wall, first, first_cpu, lufs = bench(prompt, args.duration, seed=run + 1)
            speeds.append(cpu)
            load = os.getloadavg()[0]
            print(
                f"{prompt[:36]:36s} run {run + 1}: {cpu:5.1f}x real time (CPU), "
                f"{wall:5.1f}x (wall), first chunk {first * 1000:5.0f} ms "
                f"({first_cpu * 1000:4.0f} ms CPU), "
                f"{lufs:6.2f} LUFS, load {load:.1f}"
            )
    print(f"median speed: {np.median(speeds):.1f}x real time on one core (CPU time)")


if __name__ == "__main__":
    main()
