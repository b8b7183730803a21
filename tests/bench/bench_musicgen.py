"""MusicGen decoder speed: PyTorch, Transformers.js, lofi's exact ONNX path and lofi's fast path.

Run by hand (never in CI) with a Python that has the ``fixtures`` extra (torch, transformers,
optimum-onnx) and lofi's runtime dependencies importable, from the repository root::

    PYTHONPATH=. python tests/bench/bench_musicgen.py [--model DIR] [--threads 2]

Transformers.js (tests/bench/bench_transformersjs.mjs, onnxruntime-node on the CPU) runs too
when ``node`` is on PATH and its pinned package is installed: ``cd tests/bench && npm install``
(package.json; .npmrc skips onnxruntime-node's CUDA download). It runs the public fp32 files
(text_encoder, decoder_model_merged, encodec_decode) through a symlinked hub layout made next to
the model directory (DIR-transformersjs/).

Without ``--model`` it builds once, cached under tests/bench/.cache/, a musicgen-small-shaped
export with random weights (tests/fixtures/make_musicgen.py --preset small) plus lofi's fast
decoders (lofi models optimize). All engines then run on the same weights, each in its own
process (so each peak RSS is its own), with classifier-free guidance (8 token rows per step):

- ms per decoder step at positions 1, 250, 500, 1000 and 1500: the cache is first filled up to
  the position in one call, then the median of 8 single steps is taken;
- a real 10 s track (503 steps) through the engine's generation loop (sampling, delay pattern);
- real-time factors (compute seconds per audio second; <= 1 is real time) for 10 s and 30 s
  tracks, integrated over the measured per-position curve;
- the logit error and top-1 agreement of each fast variant (and Transformers.js) against the
  exact fp32 path;
- the speed-ups over PyTorch and over Transformers.js at each position and for the 10 s track.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lofitui.atomic import write_json_atomic
from lofitui.convert.formats import FAST_QUANTS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_CACHE = HERE / ".cache" / "musicgen-small-random"
PROMPT = "lofi hip hop beat with warm piano and vinyl crackle"
POSITIONS = (1, 250, 500, 1000, 1500)
FRAME_RATE = 50
TJS = "transformers.js"
TJS_SCRIPT = HERE / "bench_transformersjs.mjs"
TJS_PACKAGE = HERE / "node_modules" / "@huggingface" / "transformers"
ENGINES = ("pytorch", TJS, "onnx-exact", *(f"fast-{q}" for q in FAST_QUANTS))


def build_export(directory: Path, preset: str) -> None:
    """Export a random-weight MusicGen of ``preset`` shape (make_musicgen.py) into ``directory``."""
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests/fixtures/make_musicgen.py"),
            "--preset",
            preset,
            "--out",
            str(directory),
            "--no-fp16",
            "--no-reference",
        ],
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def ensure_model(directory: Path) -> Path:
    if not (directory / "decoder_with_past_model.onnx").is_file():
        print(f"building a full-size random-weight export in {directory} (~10 min, ~15 GB RAM)")
        build_export(directory, "small")
    from lofitui.models.optimize import optimize_musicgen

    for quant in FAST_QUANTS:
        optimize_musicgen(directory, quant, on_stage=lambda m: print(f"  {m}", flush=True))
    return directory


def _tokens() -> np.ndarray:
    """The decoder tokens every engine feeds at the measured positions (column 0 = start)."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 2048, size=(8, max(POSITIONS) + 16))
    tokens[:, 0] = 2048
    return tokens


def _inputs(engine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hidden, mask = engine.encode_text(PROMPT)
    hidden = np.concatenate([hidden, np.zeros_like(hidden)])
    mask = np.concatenate([mask, np.zeros_like(mask)])
    return hidden, mask, _tokens()


def tjs_missing() -> str | None:
    """Why Transformers.js cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not TJS_PACKAGE.is_dir():
        return f"@huggingface/transformers is not installed: cd {HERE} && npm install"
    return None


def run_tjs(model_dir: Path, threads: int) -> dict:
    """Transformers.js on the same files and tokens, in its own Node process."""
    from tokenizers import Tokenizer

    from lofitui.engines.musicgen_files import MusicGenFiles

    files = MusicGenFiles.find(model_dir)
    ids = Tokenizer.from_file(str(files.tokenizer)).encode(PROMPT).ids
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="tjs-inputs-") as inputs:
        json.dump({"input_ids": ids, "tokens": _tokens().tolist()}, inputs)
        inputs.flush()
        proc = subprocess.run(
            [
                "node",
                str(TJS_SCRIPT),
                str(model_dir),
                "--threads",
                str(threads),
                "--inputs",
                inputs.name,
            ],
            capture_output=True,
            text=True,
        )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(f"Transformers.js failed:\n{proc.stderr[-3000:]}")
    result = json.loads(line[7:])
    if result["tokenizer_ids"] != ids:
        print(
            f"  note: Transformers.js tokenizes the prompt as {result['tokenizer_ids']}, "
            f"lofi as {ids}; both ran lofi's ids",
            file=sys.stderr,
        )
    return result


def run_onnx(model_dir: Path, name: str, threads: int, device: str = "cpu") -> dict:
    """lofi's engine: ``onnx-exact`` (the public split decoder) or ``fast-<quant>``."""
    from lofitui.engines.musicgen import MusicGenEngine, SamplingParams
    from lofitui.engines.runtime import RuntimeOptions

    options = RuntimeOptions(device, threads)
    if name == "onnx-exact":
        engine = MusicGenEngine.load(model_dir, options, decoder="split")
    else:
        engine = MusicGenEngine.load(model_dir, options, decoder="fast", fast_quant=name[5:])
    if engine.device != device:  # ONNX Runtime falls back to the CPU when a provider fails
        raise SystemExit(f"{name}: ONNX Runtime runs this model on {engine.device}, not {device}")
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
    logits = []
    for pos in POSITIONS:
        # The engine sizes the cache for its window; so does this (a 30 s window needs 1504).
        first = decoder.start(tokens[:, :pos], hidden, mask, capacity=pos + 16)
        if pos == 1:
            logits.append(first)
        times = []
        for s in range(pos, pos + 8):
            t = time.perf_counter()
            out = decoder.step(tokens[:, s : s + 1])
            times.append((time.perf_counter() - t) * 1000)
            if pos == 1:
                logits.append(out)
        per_position[pos] = float(np.median(times))
    return {
        "per_position": per_position,
        "track_10s_s": float(track.sum() / 1000),
        "logits": np.stack(logits).tolist(),
        "rss_10s_mb": rss_track,
        "peak_rss_mb": _peak_rss_mb(),
    }


def torch_model(model_dir: Path):
    """The PyTorch model whose weights ``model_dir`` holds: its ``pytorch/`` save, or (medium and
    large keep none: disk) the same seeded build that make_musicgen.py exported."""
    from transformers import MusicgenForConditionalGeneration

    if (model_dir / "pytorch").is_dir():
        return MusicgenForConditionalGeneration.from_pretrained(model_dir / "pytorch").eval()
    spec = importlib.util.spec_from_file_location(
        "make_musicgen", ROOT / "tests/fixtures/make_musicgen.py"
    )
    assert spec and spec.loader
    make = importlib.util.module_from_spec(spec)
    sys.modules["make_musicgen"] = make  # its dataclasses look their module up
    spec.loader.exec_module(make)
    info = json.loads((model_dir / "fixture.json").read_text())
    return make.build_model(make.PRESETS[info["preset"]], info["dims"]["text_vocab"], info["seed"])


def run_torch(model_dir: Path, threads: int, device: str = "cpu") -> dict:
    """transformers' MusicgenForConditionalGeneration, one cached forward per step."""
    import torch

    from lofitui.engines.musicgen import MusicGenEngine
    from lofitui.engines.runtime import RuntimeOptions

    if threads > 0:
        torch.set_num_threads(threads)
    engine = MusicGenEngine.load(model_dir, RuntimeOptions("cpu", 1), decoder="split")
    hidden, mask, tokens = _inputs(engine)
    prompt_ids = engine._tokenizer.encode(PROMPT).ids
    del engine
    model = torch_model(model_dir).to(device)
    hidden_t, mask_t = torch.from_numpy(hidden).to(device), torch.from_numpy(mask).to(device)
    tokens_t = torch.from_numpy(tokens).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward(ids, cache=None):
        return model(
            encoder_outputs=(hidden_t,),
            attention_mask=mask_t,
            decoder_input_ids=ids,
            past_key_values=cache,
            use_cache=True,
        )

    per_position = {}
    logits = []
    with torch.inference_mode():
        forward(tokens_t[:, :4])  # warm-up
        for pos in POSITIONS:
            out = forward(tokens_t[:, :pos])
            if pos == 1:
                logits.append(out.logits[:, -1].float().cpu().numpy())
            cache = out.past_key_values
            times = []
            for s in range(pos, pos + 8):
                sync()
                t = time.perf_counter()
                out = forward(tokens_t[:, s : s + 1], cache)
                sync()
                times.append((time.perf_counter() - t) * 1000)
                cache = out.past_key_values
                if pos == 1:
                    logits.append(out.logits[:, -1].float().cpu().numpy())
            per_position[pos] = float(np.median(times))
        track = _torch_track(model, prompt_ids, device)
    return {
        "per_position": per_position,
        "track_10s_s": track,
        "rss_10s_mb": _peak_rss_mb(),
        "logits": np.stack(logits).tolist(),
        "peak_rss_mb": _peak_rss_mb(),
    }


class _StepClock:
    """A generate() streamer that only notes when each step's tokens arrive."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, _value: object) -> None:
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def _torch_track(model, prompt_ids: list[int], device: str) -> float:
    """Seconds for a 10 s track through transformers' generate, as lofi's row counts it: the
    text encoder and every decoder step (the EnCodec decode that generate ends with excluded)."""
    import torch

    ids = torch.tensor([prompt_ids], device=device)
    options = {
        "attention_mask": torch.ones_like(ids),
        "do_sample": True,
        "guidance_scale": 3.0,
        "top_k": 250,
    }
    model.generate(ids, max_new_tokens=20, **options)  # warm-up
    clock = _StepClock()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.generate(ids, max_new_tokens=10 * FRAME_RATE + 3, streamer=clock, **options)
    return clock.stamps[-1] - start


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


def run_engine(name: str, model_dir: Path, threads: int) -> dict:
    """One engine in its own process (so its peak RSS is its own); the result dict."""
    if name == TJS:
        return run_tjs(model_dir, threads)
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--model",
            str(model_dir),
            "--threads",
            str(threads),
            "--only",
            name,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[7:])


def _pp(result: dict) -> dict[int, float]:
    return {int(k): v for k, v in result["per_position"].items()}


def print_table(results: dict[str, dict], title: str) -> None:
    print(f"\n{title}, CFG batch (8 token rows), ms per decoder step")
    cols = [f"pos {p}" for p in POSITIONS] + [
        "steps/s@500",
        "RTF 10s",
        "RTF 30s",
        "10s track",
        "peak RSS",
        "RSS@10s",
    ]
    gpu = any(r.get("peak_gpu_mb") is not None for r in results.values())
    if gpu:
        cols.append("GPU peak")
    print(f"{'engine':<16}" + "".join(f"{c:>12}" for c in cols))
    for name, r in results.items():
        pp = _pp(r)
        track = f"{r['track_10s_s']:.1f} s" if r["track_10s_s"] else "-"
        row = [f"{pp[p]:.1f}" for p in POSITIONS] + [
            f"{1000 / pp[500]:.1f}",
            f"{rtf(pp, 10):.2f}",
            f"{rtf(pp, 30):.2f}",
            track,
            f"{r['peak_rss_mb']:.0f} MB",
            f"{r['rss_10s_mb']:.0f} MB" if r["rss_10s_mb"] else "-",
        ]
        if gpu:
            row.append(f"{r['peak_gpu_mb']:.0f} MB" if r.get("peak_gpu_mb") else "-")
        print(f"{name:<16}" + "".join(f"{c:>12}" for c in row))


def print_ratios(results: dict[str, dict]) -> None:
    """Speed-ups of every engine over each baseline present (PyTorch, Transformers.js)."""
    for base in ("pytorch", TJS):
        if base not in results:
            continue
        ref = results[base]
        positions = ", ".join(map(str, POSITIONS))
        print(
            f"\nspeed-up over {base} (step time ratio at positions {positions};"
            " RTF 30 s ratio; 10 s track ratio)"
        )
        for name, r in results.items():
            if name == base:
                continue
            pp, ref_pp = _pp(r), _pp(ref)
            ratios = " ".join(f"{ref_pp[p] / pp[p]:5.2f}x" for p in POSITIONS)
            track = (
                f"{ref['track_10s_s'] / r['track_10s_s']:5.2f}x"
                if r["track_10s_s"] and ref["track_10s_s"]
                else "    -"
            )
            print(
                f"  {name:<16}{ratios}   RTF30 {rtf(ref_pp, 30) / rtf(pp, 30):5.2f}x   "
                f"track {track}"
            )


def print_quality(results: dict[str, dict]) -> None:
    """Logit error and top-1/top-5 agreement of each engine against the exact fp32 graphs."""
    if "onnx-exact" not in results:
        return
    print()
    exact = np.array(results["onnx-exact"]["logits"])
    for name, r in results.items():
        if r["logits"] is None or name == "onnx-exact":
            continue
        got = np.array(r["logits"])
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
            f" top-1 agreement {top1:.3f}, top-5 overlap {top5:.3f} (9 steps x 8 rows)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engines", help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--json", type=Path, help="also write every engine's result here")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="run nothing: print the tables from results saved with --json (merged in order)",
    )
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        child(args)
        return
    if args.report:
        saved: dict[str, dict] = {}
        for path in args.report:
            saved.update(json.loads(path.read_text()))
        report(saved, f"{args.model.name}, {args.threads} threads (saved results)")
        return
    engines = args.engines.split(",") if args.engines else list(ENGINES)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)} (choose from {', '.join(ENGINES)})")
    missing = tjs_missing() if TJS in engines else None
    if missing and args.engines:
        parser.error(f"{TJS} cannot run: {missing}")
    if missing:
        print(f"skipping {TJS}: {missing}")
        engines.remove(TJS)
    model_dir = ensure_model(args.model)
    print(f"load before the run: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    results = {}
    for name in engines:
        print(f"running {name}...", flush=True)
        start = time.perf_counter()
        try:
            results[name] = run_engine(name, model_dir, args.threads)
        except RuntimeError as exc:
            if name != TJS:
                raise SystemExit(str(exc)) from None
            print(str(exc))  # Transformers.js failing on these files is a finding, not the end
            continue
        print(
            f"  done in {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if args.json:  # after each engine: a long run cut short keeps what it measured
            write_json_atomic(args.json, results)
    report(results, f"{model_dir.name}, {args.threads} threads")


def report(results: dict[str, dict], title: str) -> None:
    """The table, the speed-ups and the logit agreement."""
    print_table(results, title)
    print_ratios(results)
    print_quality(results)


if __name__ == "__main__":
    main()
