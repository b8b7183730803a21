"""MusicGen decoder speed: PyTorch transformers vs lofi's exact ONNX path vs lofi's fast path.

Run by hand (never in CI) with a Python that has the ``fixtures`` extra (torch, transformers,
optimum-onnx) and lofi's runtime dependencies importable, from the repository root::

    PYTHONPATH=. python tests/bench/bench_musicgen.py [--model DIR] [--threads 2]

Without ``--model`` it builds once, cached under tests/bench/.cache/, a musicgen-small-shaped
export with random weights (tests/fixtures/make_musicgen.py --preset small) plus lofi's fast
decoders (lofi models optimize). All engines then run on the same weights, each in its own
process (so each peak RSS is its own), with classifier-free guidance (8 token rows per step):

- ms per decoder step at positions 1, 250, 500, 1000 and 1500: the cache is first filled up to
  the position in one call, then the median of 8 single steps is taken;
- a real 10 s track (503 steps) through the engine's generation loop (sampling, delay pattern);
- real-time factors (compute seconds per audio second; <= 1 is real time) for 10 s and 30 s
  tracks, integrated over the measured per-position curve;
- the logit error and top-1 agreement of each fast variant against the exact fp32 path, from
  each measured position (the int8 cache's error can grow with the position).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lofitui.convert.formats import FAST_QUANTS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_CACHE = HERE / ".cache" / "musicgen-small-random"
PROMPT = "lofi hip hop beat with warm piano and vinyl crackle"
POSITIONS = (1, 250, 500, 1000, 1500)
FRAME_RATE = 50
ENGINES = ("pytorch", "onnx-exact", *(f"fast-{q}" for q in FAST_QUANTS))


def ensure_model(directory: Path) -> Path:
    if not (directory / "decoder_with_past_model.onnx").is_file():
        print(f"building a full-size random-weight export in {directory} (~10 min, ~15 GB RAM)")
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests/fixtures/make_musicgen.py"),
                "--preset",
                "small",
                "--out",
                str(directory),
                "--no-fp16",
                "--no-reference",
            ],
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    from lofitui.models.optimize import optimize_musicgen

    for quant in FAST_QUANTS:
        optimize_musicgen(directory, quant, on_stage=lambda m: print(f"  {m}", flush=True))
    return directory


def _inputs(engine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hidden, mask = engine.encode_text(PROMPT)
    hidden = np.concatenate([hidden, np.zeros_like(hidden)])
    mask = np.concatenate([mask, np.zeros_like(mask)])
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 2048, size=(8, max(POSITIONS) + 16))
    tokens[:, 0] = 2048
    return hidden, mask, tokens


def run_onnx(model_dir: Path, name: str, threads: int) -> dict:
    from lofitui.engines.musicgen import MusicGenEngine, SamplingParams
    from lofitui.engines.runtime import RuntimeOptions

    options = RuntimeOptions("cpu", threads)
    if name == "onnx-exact":
        engine = MusicGenEngine.load(model_dir, options, decoder="split")
    else:
        engine = MusicGenEngine.load(model_dir, options, decoder="fast", fast_quant=name[5:])
    hidden, mask, tokens = _inputs(engine)
    decoder = engine._decoder
    params = SamplingParams(top_k=250, temperature=1.0, guidance=3.0)
    engine.generate_codes(PROMPT, 20, params, seed=1)  # warm-up: first-call allocations
    stamps: list[float] = []
    start = time.perf_counter()
    engine.generate_codes(
        PROMPT,
        10 * FRAME_RATE,
        params,
        seed=0,
        on_progress=lambda p: stamps.append(time.perf_counter()),
    )
    track = np.diff(np.array([start, *stamps])) * 1000
    rss_track = _peak_rss_mb()
    per_position = {}
    logits: dict[int, list] = {}  # 9 steps' logits at each position: the cache's error grows
    for pos in POSITIONS:
        # The engine sizes the cache for its window; so does this (a 30 s window needs 1504).
        logits[pos] = [decoder.start(tokens[:, :pos], hidden, mask, capacity=pos + 16)]
        times = []
        for s in range(pos, pos + 8):
            t = time.perf_counter()
            logits[pos].append(decoder.step(tokens[:, s : s + 1]))
            times.append((time.perf_counter() - t) * 1000)
        per_position[pos] = float(np.median(times))
    return {
        "per_position": per_position,
        "track_10s_s": float(track.sum() / 1000),
        "logits": {pos: np.stack(x).tolist() for pos, x in logits.items()},
        "rss_10s_mb": rss_track,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_torch(model_dir: Path, threads: int) -> dict:
    import torch
    from transformers import MusicgenForConditionalGeneration

    from lofitui.engines.musicgen import MusicGenEngine
    from lofitui.engines.runtime import RuntimeOptions

    torch.set_num_threads(threads)
    engine = MusicGenEngine.load(model_dir, RuntimeOptions("cpu", 1), decoder="split")
    hidden, mask, tokens = _inputs(engine)
    del engine
    model = MusicgenForConditionalGeneration.from_pretrained(model_dir / "pytorch").eval()
    hidden_t, mask_t = torch.from_numpy(hidden), torch.from_numpy(mask)
    tokens_t = torch.from_numpy(tokens)
    per_position = {}
    with torch.inference_mode():
        model(
            encoder_outputs=(hidden_t,),
            attention_mask=mask_t,
            decoder_input_ids=tokens_t[:, :4],
            use_cache=True,
        )  # warm-up
        for pos in POSITIONS:
            out = model(
                encoder_outputs=(hidden_t,),
                attention_mask=mask_t,
                decoder_input_ids=tokens_t[:, :pos],
                use_cache=True,
            )
            cache = out.past_key_values
            times = []
            for s in range(pos, pos + 8):
                t = time.perf_counter()
                out = model(
                    encoder_outputs=(hidden_t,),
                    attention_mask=mask_t,
                    decoder_input_ids=tokens_t[:, s : s + 1],
                    past_key_values=cache,
                    use_cache=True,
                )
                cache = out.past_key_values
                times.append((time.perf_counter() - t) * 1000)
            per_position[pos] = float(np.median(times))
    return {
        "per_position": per_position,
        "track_10s_s": None,
        "rss_10s_mb": None,
        "logits": None,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    """This process's own peak: Linux's ru_maxrss carries the parent's peak across fork+exec
    (the parent's model build, ~6 GB, showed up in every engine's column)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rtf(per_position: dict[int, float], seconds: int) -> float:
    """Compute seconds per audio second, integrating the per-position step time."""
    steps = seconds * FRAME_RATE + 3
    xs = np.array(sorted(per_position))
    ys = np.array([per_position[x] for x in xs])
    return float(np.interp(np.arange(1, steps + 1), xs, ys).sum() / 1000 / seconds)


def child(args: argparse.Namespace) -> None:
    if args.only == "pytorch":
        result = run_torch(args.model, args.threads)
    else:
        result = run_onnx(args.model, args.only, args.threads)
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        child(args)
        return
    model_dir = ensure_model(args.model)
    results = {}
    for name in args.engines.split(","):
        print(f"running {name}...", flush=True)
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--model",
                str(model_dir),
                "--threads",
                str(args.threads),
                "--only",
                name,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(proc.stderr[-2000:])
            raise SystemExit(f"{name} failed")
        results[name] = json.loads(line[7:])

    print(
        f"\nmusicgen-small shape, random weights, CFG batch (8 token rows), {args.threads} "
        "threads, ms per decoder step"
    )
    cols = [f"pos {p}" for p in POSITIONS] + [
        "steps/s@500",
        "RTF 10s",
        "RTF 30s",
        "10s track",
        "peak RSS",
        "RSS@10s",
    ]
    print(f"{'engine':<12}" + "".join(f"{c:>12}" for c in cols))
    for name, r in results.items():
        pp = {int(k): v for k, v in r["per_position"].items()}
        track = f"{r['track_10s_s']:.1f} s" if r["track_10s_s"] else "-"
        row = [f"{pp[p]:.1f}" for p in POSITIONS] + [
            f"{1000 / pp[500]:.1f}",
            f"{rtf(pp, 10):.2f}",
            f"{rtf(pp, 30):.2f}",
            track,
            f"{r['peak_rss_mb']:.0f} MB",
            f"{r['rss_10s_mb']:.0f} MB" if r["rss_10s_mb"] else "-",
        ]
        print(f"{name:<12}" + "".join(f"{c:>12}" for c in row))
    if "pytorch" in results:
        ref = {int(k): v for k, v in results["pytorch"]["per_position"].items()}
        for name, r in results.items():
            pp = {int(k): v for k, v in r["per_position"].items()}
            ratios = " ".join(f"{ref[p] / pp[p]:.1f}x" for p in POSITIONS)
            print(f"speed-up of {name} over PyTorch at positions {POSITIONS}: {ratios}")
    if "onnx-exact" in results:
        for (name, r), pos in itertools.product(results.items(), POSITIONS):
            if r["logits"] is None or name == "onnx-exact":
                continue
            exact = np.array(results["onnx-exact"]["logits"][str(pos)])
            got = np.array(r["logits"][str(pos)])
            err = np.abs(got - exact).max()
            top1 = (got.argmax(-1) == exact.argmax(-1)).mean()
            top5 = np.mean(
                [
                    len(set(np.argsort(a)[-5:]) & set(np.argsort(b)[-5:])) / 5
                    for a, b in zip(
                        got.reshape(-1, got.shape[-1]),
                        exact.reshape(-1, exact.shape[-1]),
                        strict=True,
                    )
                ]
            )
            print(
                f"{name}: logit error vs exact fp32 {err:.3g} (range ±{np.abs(exact).max():.2f}),"
                f" top-1 agreement {top1:.3f}, top-5 overlap {top5:.3f}"
                f" (9 steps x 8 rows from position {pos})"
            )


if __name__ == "__main__":
    main()
