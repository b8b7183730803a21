"""How soon sound returns after the sound server comes back, and where (run by hand).

Repeats the two scenarios of tests/test_audio_recovery.py against a private PulseAudio null
sink: the server killed mid-track and started again (same socket), and the player started
before any server. For each run, from the server answering ``pactl info``: the player's event
saying the output is back, and the first audible sample captured from the sink's monitor (an
upper bound: the capture starts ~0.3 s after the server); the resumed position's error against
the player's clock (positive: behind it); before the loss, how far behind the clock sound was
heard. Run from the repository root::

    PYTHONPATH=$PWD python tests/bench/bench_audio_recovery.py [runs]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench.streambench import machine_load  # noqa: E402  (tests/ is on sys.path)
from test_audio_recovery import Recovery, lose_and_restore, serve_later  # noqa: E402


def summary(name: str, runs: list[Recovery]) -> str:
    reopened = [r.reopened_s for r in runs]
    resume = [r.resume_s for r in runs]
    error = [abs(r.position_error_s) * 1000 for r in runs]
    return (
        f"{name}: {len(runs)} runs; output reopened {statistics.mean(reopened):.2f} s mean, "
        f"{max(reopened):.2f} s max; first sound captured {statistics.mean(resume):.2f} s "
        f"mean, {max(resume):.2f} s max; position error |mean| "
        f"{statistics.mean(error):.0f} ms, max {max(error):.0f} ms"
    )


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(machine_load())
    results: dict[str, list[Recovery]] = {"server restarted mid-track": [], "server later": []}
    for i in range(count):
        for name, scenario in (
            ("server restarted mid-track", lose_and_restore),
            ("server later", serve_later),
        ):
            directory = Path(tempfile.mkdtemp(prefix="lofi-recovery-"))
            try:
                run = scenario(directory)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            results[name].append(run)
            behind = run.heard_behind_s
            print(
                f"run {i + 1}, {name}: reopened {run.reopened_s:.2f} s, heard {run.resume_s:.2f} s,"
                f" position {run.position_error_s * 1000:+.0f} ms"
                + (f" (heard {behind * 1000:+.0f} ms behind before)" if behind is not None else "")
            )
    for name, runs in results.items():
        print(summary(name, runs))
    print(machine_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
