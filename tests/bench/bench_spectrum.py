"""Per-frame cost of the spectrum visualiser at 80 and 200 columns, against the level meter.

Runs the real widgets headless (Textual's ``run_test``) at each width and times, per frame:

- ``analysis``: the two FFTs and the banding (``SpectrumBands.levels``) plus the bars' motion
  (``FallingBars.update``) on a window of music-like sound (tones, noise, a kick);
- ``frame``: all of ``Spectrum.frame`` (pull the window from the source, analyse, lay out the
  rows, ask for a repaint);
- ``render``: the widget's lines as Textual paints them (``render_lines`` after the repaint);
- ``meter``: the reference, measured in the same run: the level meter's frame
  (``LevelMeter.push`` + ``render_lines``) at the same width and height.

The compositor and the terminal write are left out of those: they cost the same for any widget
of the same area. Then, for the whole headless app with the compositor, the share of one core
the process uses over a few seconds: the spectrum animating at its 30 fps, against the level
meter fed 10 readings a second (as the player's Level events do). Prints median and p95 in ms;
run by hand, e.g.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_spectrum.py [--frames 600] [--rows 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import numpy as np
from textual.app import App, ComposeResult
from textual.geometry import Region

from lofitui.audio.spectrum import LONG_FFT, FallingBars, SpectrumBands
from lofitui.audio.types import Audio
from lofitui.tui.widgets.level_meter import LevelMeter
from lofitui.tui.widgets.spectrum import Spectrum

RATE = 48000


def music(seconds: float = 4.0, seed: int = 3) -> np.ndarray:
    """Stereo sound with a spectrum like music's: chords, bass, noise and a kick every 0.5 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.2 * np.sin(2 * np.pi * 55 * t)
    for freq in (220, 277, 330, 415, 880, 1760):
        x += 0.05 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6))
    x += 0.02 * rng.standard_normal(t.size)
    beat = (t % 0.5) < 0.08
    x += beat * 0.4 * np.sin(2 * np.pi * 60 * t) * np.exp(-(t % 0.5) * 30)
    x = x.astype(np.float32)
    return np.stack([x, 0.9 * x], axis=1)


class Bench(App[None]):
    """The spectrum above the level meter, each ``ROWS`` rows high."""

    ROWS = 6

    def compose(self) -> ComposeResult:
        for widget in (Spectrum(), LevelMeter()):
            widget.styles.height = widget.styles.max_height = self.ROWS
            yield widget


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"{1000 * statistics.median(samples):6.3f} (p95 {1000 * p95:6.3f})"


async def measure(width: int, rows: int, frames: int, sound: np.ndarray) -> dict[str, list[float]]:
    app = type("Bench", (Bench,), {"ROWS": rows})()
    async with app.run_test(size=(width, 2 * rows + 2)) as pilot:
        await pilot.pause()
        spectrum, meter = app.query_one(Spectrum), app.query_one(LevelMeter)
        spectrum.stop()  # frames are driven here, one at a time
        assert spectrum.size.width == width and spectrum.size.height == rows, spectrum.size
        position = [LONG_FFT]

        def source(n: int) -> Audio:  # the player's heard(): a fresh copy of the last n frames
            end = position[0] % (sound.shape[0] - n) + n
            position[0] += RATE // 30
            return Audio(sound[end - n : end].copy(), RATE)

        spectrum.source = source
        bands = SpectrumBands(Spectrum.band_count(width), RATE)
        motion = FallingBars(bands.count)
        region = Region(0, 0, width, rows)
        times: dict[str, list[float]] = {"analysis": [], "frame": [], "render": [], "meter": []}
        clock = time.perf_counter
        for i in range(frames):
            window = source(LONG_FFT).samples
            t0 = clock()
            motion.update(bands.levels(window), 1 / 30)
            t1 = clock()
            spectrum.frame(1 / 30)
            t2 = clock()
            spectrum.render_lines(region)
            t3 = clock()
            meter.push(0.1 + 0.05 * np.sin(i / 5))
            meter.render_lines(region)
            t4 = clock()
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                times[key].append(value)
        return times


async def cpu_share(
    width: int, rows: int, seconds: float, sound: np.ndarray
) -> tuple[float, float]:
    """Process CPU time / wall time with the spectrum animating, then with the meter instead."""
    app = type("Bench", (Bench,), {"ROWS": rows})()
    async with app.run_test(size=(width, 2 * rows + 2)) as pilot:
        await pilot.pause()
        spectrum, meter = app.query_one(Spectrum), app.query_one(LevelMeter)
        start = time.monotonic()

        def source(n: int) -> Audio:  # the sound as it plays, in real time
            end = int((time.monotonic() - start) * RATE) % (sound.shape[0] - n) + n
            return Audio(sound[end - n : end].copy(), RATE)

        spectrum.source = source
        shares = []
        for animate in (True, False):
            if animate:
                spectrum.start()
            else:
                spectrum.stop()
            await asyncio.sleep(0.5)
            cpu0, wall0 = time.process_time(), time.monotonic()
            while time.monotonic() - wall0 < seconds:
                if not animate:
                    meter.push(0.1 + 0.05 * np.sin(time.monotonic()))
                await asyncio.sleep(0.1)
            shares.append((time.process_time() - cpu0) / (time.monotonic() - wall0))
        return shares[0], shares[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sound = music()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.frames} frames, {args.rows} rows, load average {load:.2f}")
    print("ms per frame, median (p95)")
    print(f"{'cols':>5} {'bands':>5}  {'analysis':>18}  {'spectrum frame':>18}  ", end="")
    print(f"{'render':>18}  {'frame + render':>18}  {'level meter':>18}")
    for width in (80, 200):
        times = asyncio.run(measure(width, args.rows, args.frames, sound))
        total = [a + b for a, b in zip(times["frame"], times["render"], strict=True)]
        print(
            f"{width:>5} {Spectrum.band_count(width):>5}  {ms(times['analysis'])}  "
            f"{ms(times['frame'])}  {ms(times['render'])}  {ms(total)}  {ms(times['meter'])}"
        )
    print(f"whole app, share of one core over {args.seconds:g} s (compositor included)")
    for width in (80, 200):
        animating, meter = asyncio.run(cpu_share(width, args.rows, args.seconds, sound))
        print(f"{width:>5} cols: spectrum at 30 fps {animating:6.1%}   level meter {meter:6.1%}")


if __name__ == "__main__":
    main()
