"""MusicGen decoder speed: lofi's ONNX engine vs PyTorch transformers on the same weights.

Run by hand (not in CI), in an environment with the ``fixtures`` extra (torch, transformers,
optimum-onnx) plus lofi itself::

    python tests/bench/bench_musicgen.py [--model DIR] [--steps 500] [--threads 2]

Without ``--model`` it builds (once, cached under tests/bench/.cache/) a musicgen-small-shaped
export with random weights using tests/fixtures/make_musicgen.py --preset small. Both engines
then generate the same number of tokens with classifier-free guidance (8 token rows per step);
per-step times come from the engine's own progress callbacks (so sampling and the delay pattern
are included) and from a plain KV-cache loop over the PyTorch model.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_CACHE = HERE / ".cache" / "musicgen-small-random"
PROMPT = "lofi hip hop beat with warm piano and vinyl crackle"
FRAME_RATE = 50


def ensure_model(directory: Path) -> Path:
    if (directory / "decoder_with_past_model.onnx").is_file() and (directory / "pytorch").is_dir():
        return directory
    print(f"building a full-size random-weight export in {directory} (minutes, ~12 GB RAM)...")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    script = ROOT / "tests" / "fixtures" / "make_musicgen.py"
    subprocess.run(
        [
            sys.executable,
            str(script),
            "--preset",
            "small",
            "--out",
            str(directory),
            "--no-fp16",
            "--no-reference",
        ],
        check=True,
        env=env,
    )
    return directory


def onnx_step_times(model_dir: Path, steps: int, threads: int, decoder: str) -> np.ndarray:
    from lofitui.engines.musicgen import MusicGenEngine, SamplingParams
    from lofitui.engines.runtime import RuntimeOptions

    engine = MusicGenEngine.load(model_dir, RuntimeOptions("cpu", threads), decoder=decoder)
    stamps: list[float] = []
    params = SamplingParams(top_k=250, temperature=1.0, guidance=3.0)
    start = time.perf_counter()
    engine.generate_codes(
        PROMPT, steps - 3, params, seed=0, on_progress=lambda p: stamps.append(time.perf_counter())
    )
    return np.diff(np.array([start, *stamps])) * 1000


def torch_step_times(model_dir: Path, steps: int, threads: int) -> np.ndarray:
    import torch
    from transformers import MusicgenForConditionalGeneration
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    from lofitui.engines.musicgen import MusicGenEngine
    from lofitui.engines.runtime import RuntimeOptions

    torch.set_num_threads(threads)
    model = MusicgenForConditionalGeneration.from_pretrained(model_dir / "pytorch").eval()
    engine = MusicGenEngine.load(model_dir, RuntimeOptions("cpu", threads))
    ids = torch.tensor([engine._tokenizer.encode(PROMPT).ids])
    mask = torch.ones_like(ids)
    times = []
    with torch.inference_mode():
        t0 = time.perf_counter()
        hidden = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden = torch.cat([hidden, torch.zeros_like(hidden)])
        mask2 = torch.cat([mask, torch.zeros_like(mask)])
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        tokens = torch.full((8, 1), 2048, dtype=torch.long)
        text_ms = (time.perf_counter() - t0) * 1000
        for _ in range(steps):
            t = time.perf_counter()
            out = model(
                encoder_outputs=(hidden,),
                attention_mask=mask2,
                decoder_input_ids=tokens,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :]
            guided = logits[4:] + 3.0 * (logits[:4] - logits[4:])
            tokens = torch.cat([guided.argmax(-1)] * 2)[:, None]
            times.append((time.perf_counter() - t) * 1000)
    times[0] += text_ms
    return np.array(times)


def summarize(name: str, ms: np.ndarray) -> dict[str, float]:
    n = len(ms)
    row = {
        "step 1": ms[0],
        "1-50": float(np.median(ms[1:50])),
        "~250": float(np.median(ms[max(1, n // 2 - 10) : n // 2 + 10])),
        f"{n - 50}-{n}": float(np.median(ms[-50:])),
        "mean": float(ms.mean()),
    }
    row["steps/s"] = 1000 / row["mean"]
    row["RTF 10s"] = (ms[: 10 * FRAME_RATE + 3].sum() / 1000) / 10
    print(f"{name:<26}" + "".join(f"{v:>10.1f}" for v in row.values()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    model_dir = ensure_model(args.model or DEFAULT_CACHE)

    results = {}
    for decoder in ("split", "merged"):
        if (model_dir / f"decoder_model{'_merged' if decoder == 'merged' else ''}.onnx").exists():
            results[f"onnx fp32 {decoder}"] = onnx_step_times(
                model_dir, args.steps, args.threads, decoder
            )
    if not args.skip_torch:
        results["pytorch (transformers)"] = torch_step_times(model_dir, args.steps, args.threads)

    print(f"\n{args.steps} decoder steps, CFG batch (8 rows), {args.threads} threads; ms per step")
    header = [
        "step 1",
        "1-50",
        "~250",
        f"{args.steps - 50}-{args.steps}",
        "mean",
        "steps/s",
        "RTF 10s",
    ]
    print(f"{'engine':<26}" + "".join(f"{h:>10}" for h in header))
    rows = {name: summarize(name, ms) for name, ms in results.items()}
    if "pytorch (transformers)" in rows:
        ref = rows["pytorch (transformers)"]["mean"]
        for name, row in rows.items():
            print(f"speed-up of {name} over PyTorch: {ref / row['mean']:.2f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB (real time needs <= 20 ms/step)")


if __name__ == "__main__":
    main()
