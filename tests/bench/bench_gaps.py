"""Steady state (issue #11 point 5): silent gaps in a long session, and the generation rate.

Run by hand (never in CI), from the repository root, with pulseaudio and pulseaudio-utils
(parec) installed::

    PYTHONPATH=. python tests/bench/bench_gaps.py [--model DIR] [--minutes 10]
        [--threads 2] [--throttle R]

The real scheduler and player (default settings: lookahead 2, crossfade 2 s, 30 s tracks, an
empty track cache) play one station into a private PulseAudio null sink for ``--minutes`` after
the first sound, while parec records the sink's monitor. The capture is then cut into 100 ms
windows; a gap is a run of windows whose RMS is below -60 dBFS (capture_analysis.find_gaps),
counted from the first sound on (the silence before it is time to first sound, not a gap).

Printed: the generation rate of every track (seconds of audio per second of wall time, from the
scheduler's job events), the number of gaps and their total length, and for each gap where it
lies relative to the track boundaries (the scheduler's "playing"/"played" events) and the
length the measured rate predicts (``duration / rate - duration``: a track takes that much
longer to generate than to play). Also checked: the model's own output (the cached WAVs) has no
100 ms window below -60 dBFS, so every gap in the capture is the player's.

``--throttle R`` paces generation to R seconds of audio per second (e.g. 0.8; the engine sleeps
in its progress callback, so the model must be faster than R natively: the tiny fixture is),
``--threads 1`` slows a full-size model the real way: both force a generator slower than real
time, where gaps must fall only between tracks and be as short as the rate allows.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from capture_analysis import AUDIBLE_DBFS, find_gaps, nearest, predicted_gap_s, window_levels
from streambench import (
    DEFAULT_MODEL,
    RATE,
    EventLog,
    Monitor,
    Throttled,
    machine_load,
    open_model,
    running_scheduler,
    sound_server,
    station,
)

BOUNDARY_SLACK_S = 1.0  # a gap this close to a track's start or end lies "between tracks"


def model_output_check(cache_dir: Path) -> str:
    """How many 100 ms windows of the generated tracks (the cached WAVs) are below -60 dBFS."""
    from lofitui.audio.wav import read_wav

    tracks = sorted(cache_dir.rglob("*.wav"))
    quiet = 0
    windows = 0
    lowest = float("inf")
    for path in tracks:
        audio = read_wav(path)
        levels = window_levels(audio.samples, audio.sample_rate)
        quiet += int((levels < AUDIBLE_DBFS).sum())
        windows += levels.size
        lowest = min(lowest, float(levels.min()))
    if not tracks:
        return "model output: no complete track in the cache to check"
    return (
        f"model output: {len(tracks)} tracks, {quiet} of {windows} 100 ms windows below "
        f"{AUDIBLE_DBFS:g} dBFS (quietest window {lowest:.1f} dBFS)"
    )


def report_rates(log: EventLog) -> float | None:
    jobs = log.generated_jobs()
    for i, job in enumerate(jobs, 1):
        print(
            f"  track {i}: {job.duration_s:g} s generated in {job.generation_s:.1f} s "
            f"(rate {job.rate:.2f}x real time)"
        )
    rate = log.mean_rate()
    if rate is None:
        print("generation rate: no track completed")
    else:
        speed = "faster" if rate >= 1 else "slower"
        print(f"generation rate: {rate:.2f}x real time ({speed} than real time)")
    return rate


def report_gaps(
    log: EventLog,
    monitor: Monitor,
    first_sound: float,
    end: float,
    duration_s: float,
    rate: float | None,
) -> None:
    audio = monitor.audio()
    start_s = monitor.seconds(first_sound)
    end_s = min(monitor.seconds(end), audio.shape[0] / RATE)
    gaps = find_gaps(audio, RATE, start_s=start_s, end_s=end_s)
    starts = [monitor.seconds(t) for t in log.starts()]
    ends = [monitor.seconds(t) for t in log.ends()]
    total = sum(g.duration_s for g in gaps)
    print(
        f"gaps: {len(gaps)} silent gaps ({total:.1f} s in all) in {end_s - start_s:.0f} s "
        f"after the first sound ({len(starts)} tracks started)"
    )
    if rate is not None:
        print(f"predicted by the mean rate: {predicted_gap_s(duration_s, rate):.1f} s per track")
    jobs = sorted(
        (j for j in log.jobs.values() if j.playing is not None), key=lambda j: j.playing or 0.0
    )
    between = 0
    for gap in gaps:
        at = gap.start_s - start_s
        to_start = nearest(gap.end_s, starts)
        from_end = nearest(gap.start_s, ends)
        near = [abs(m[1]) for m in (to_start, from_end) if m is not None]
        is_between = bool(near) and min(near) <= BOUNDARY_SLACK_S
        between += is_between
        line = f"  gap at {at:7.1f} s: {gap.duration_s:5.1f} s"
        if from_end is not None:
            line += f", starts {from_end[1]:+.1f} s from a track's end"
        if to_start is not None:
            line += f", ends {to_start[1]:+.1f} s from a track's start"
        if gap.end_s >= end_s - 0.2:
            line += " (still silent when the capture ended)"
        elif not is_between:
            line += "  [INSIDE a track: a dropout]"
        else:
            following = next(
                (j for j in jobs if monitor.seconds(j.playing or 0.0) >= gap.end_s - 0.5), None
            )
            if following is not None and following.rate is not None:
                predicted = predicted_gap_s(following.duration_s, following.rate)
                line += f"; predicted {predicted:.1f} s by the next track's rate"
            if rate is not None:
                line += f", {predicted_gap_s(duration_s, rate):.1f} s by the mean rate"
        print(line)
    if gaps:
        print(f"  {between} of {len(gaps)} gaps between tracks, {len(gaps) - between} inside")


async def session(engine: object, args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lofi-bench-gaps-"))
    try:
        with Monitor(workdir) as monitor:
            async with running_scheduler(
                engine, lookahead=args.lookahead, crossfade_s=args.crossfade
            ) as rig:
                log = rig.log
                await asyncio.sleep(0.5)
                t0 = time.monotonic()
                rig.scheduler.set_station(station(args.model, args.duration))
                first_sound = await asyncio.to_thread(
                    monitor.wait_audible, t0, args.timeout, AUDIBLE_DBFS
                )
                print(f"first sound {first_sound - t0:.2f} s after set_station; {machine_load()}")
                end = first_sound + args.minutes * 60
                seen = 0
                while time.monotonic() < end:
                    await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))
                    starts = log.starts()
                    for t in starts[seen:]:
                        seen += 1
                        print(
                            f"  track {seen} audible at {t - first_sound:6.1f} s; {machine_load()}",
                            flush=True,
                        )
                end = time.monotonic()
                print(f"ran {(end - first_sound) / 60:.1f} min after the first sound")
                rate = report_rates(log)
                report_gaps(log, monitor, first_sound, end, args.duration, rate)
                print(
                    f"player: {rig.player.underflows} output underflows reported, "
                    f"{rig.player.starved_blocks} starved blocks (they under-report: the "
                    "capture is the judge)"
                )
                print(model_output_check(rig.cache_dir))
                for notice in log.notices:
                    print(f"  scheduler notice: {notice}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="MusicGen directory")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes after first sound")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per track")
    parser.add_argument("--lookahead", type=int, default=2, help="tracks kept ahead")
    parser.add_argument("--crossfade", type=float, default=2.0, help="crossfade seconds")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for inference")
    parser.add_argument(
        "--throttle", type=float, default=None, metavar="R", help="pace generation to R x real time"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="wait for first sound")
    args = parser.parse_args(argv)
    args.model = args.model.resolve()
    if not (args.model / "config.json").is_file():
        print(f"bench_gaps: no MusicGen model in {args.model}", file=sys.stderr)
        return 2
    if (
        args.minutes <= 0
        or args.duration <= 0
        or args.lookahead < 1
        or (args.throttle is not None and args.throttle <= 0)
    ):
        print(
            "bench_gaps: --minutes, --duration and --throttle must be > 0, --lookahead >= 1",
            file=sys.stderr,
        )
        return 2
    print(
        f"model {args.model}, {args.duration:g} s tracks, lookahead {args.lookahead}, "
        f"crossfade {args.crossfade:g} s, {args.threads} threads, "
        f"throttle {f'{args.throttle:g}x real time' if args.throttle else 'none'}, "
        f"{args.minutes:g} min"
    )
    print(f"before: {machine_load()}")
    with sound_server():
        started = time.perf_counter()
        engine = open_model(args.model, args.threads)
        print(f"model loaded in {time.perf_counter() - started:.1f} s")
        if args.throttle is not None:
            engine = Throttled(engine, args.throttle)
        asyncio.run(session(engine, args))
    print(f"after: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
