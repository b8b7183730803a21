"""Keypress-to-screen latency of the real ``lofi`` app in a real terminal while a track generates.

Starts ``lofi`` under a private tmux server with the tiny MusicGen fixture (or ``--model``) and a
long track duration so the engine stays busy, waits until the queue shows a generating track,
then presses ``+``/``-`` and polls ``tmux capture-pane`` (every ~2 ms) until the volume shown
changes. Prints the median, p95 and max. Uses throwaway XDG dirs; no audio device needed.

    .venv/bin/python tests/bench/bench_tui_latency.py [--model DIR] [--presses 40]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VOLUME = re.compile(r"(\d+)%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "tests" / "fixtures" / "musicgen-tiny"))
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--presses", type=int, default=40)
    args = parser.parse_args()
    lofi = Path(sys.executable).with_name("lofi")
    with tempfile.TemporaryDirectory(prefix="lofi-bench-") as tmp:
        tmux = ["tmux", "-S", f"{tmp}/tmux.sock"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "PULSE"))}
        env |= {f"XDG_{d.upper()}_HOME": f"{tmp}/{d}" for d in ("config", "state", "cache", "data")}
        env |= {"TERM": "xterm-256color", "LOFI_MODELS_DIR": f"{tmp}/models"}
        cmd = f"{lofi} --model {args.model} --duration {args.duration:g}"
        subprocess.run(
            [*tmux, "new-session", "-d", "-s", "b", "-x", "100", "-y", "30", cmd],
            env=env,
            check=True,
        )

        def pane() -> str:
            return subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True
            ).stdout

        try:
            deadline = time.monotonic() + 60
            while "tok/s" not in pane():  # a generating row with a live rate
                if time.monotonic() > deadline:
                    print(pane())
                    raise SystemExit("no generation started")
                time.sleep(0.05)
            latencies = []
            for i in range(args.presses):
                key = "-" if i % 2 else "+"
                before = pane()
                shown = VOLUME.findall(before.splitlines()[0])
                t0 = time.perf_counter()
                subprocess.run([*tmux, "send-keys", "-t", "b", key], check=True)
                while VOLUME.findall(pane().splitlines()[0]) == shown:
                    if time.perf_counter() - t0 > 5:
                        raise SystemExit("the screen did not change within 5 s")
                    time.sleep(0.002)
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.05)
            still = "tok/s" in pane()
            subprocess.run([*tmux, "send-keys", "-t", "b", "q"], check=True)
        finally:
            time.sleep(1.0)
            subprocess.run([*tmux, "kill-server"], capture_output=True)
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    print(
        f"keypress → screen while generating ({len(ms)} presses, generation still running at "
        f"the end: {still}): median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, "
        f"max {ms[-1]:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
