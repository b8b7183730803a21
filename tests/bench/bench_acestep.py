"""ACE-Step 1.5 speed: lofi's ONNX Runtime path vs diffusers on the same random weights.

Run by hand (not in CI), with the ``export-acestep`` extra installed plus lofi itself::

    python tests/bench/bench_acestep.py --size full --duration 60 [--device cpu|cuda] [--track]

``--size`` picks the model shape: ``full`` is the real ACE-Step 1.5 turbo configuration
(DiT 1.58 B params, ~6 GB fp32; building + exporting needs ~25 GB RAM and minutes), ``small``
a 4-layer/512-wide stand-in for a quick check of this script. Weights are random: speed does
not depend on them. It reports, as JSON lines:

- ``dit``: milliseconds per DiT call (batch 1, L = duration x 25 frames, a 400-token condition)
  in PyTorch (``--device``) and in ONNX Runtime (CUDA provider when available and
  ``--device cuda``, else CPU);
- ``track`` (with ``--track``): whole-track wall time and real-time factor (audio seconds per
  compute second) for lofi's engine (text -> condition -> 8 Euler steps -> tiled VAE) and for
  diffusers' ``AceStepPipeline`` on the same duration.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

SIZES = {
    # name: (qwen kwargs, shared encoder/DiT kwargs, dit layers, vae decoder channels)
    "full": (
        dict(
            hidden_size=1024,
            intermediate_size=3072,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151669,
        ),
        dict(
            hidden_size=2048,
            intermediate_size=6144,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            sliding_window=128,
        ),
        (8, 4, 24),
        128,
    ),
    "small": (
        dict(
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=64,
            vocab_size=1000,
        ),
        dict(
            hidden_size=512,
            intermediate_size=1024,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=64,
            sliding_window=128,
        ),
        (2, 2, 4),
        32,
    ),
}


def build(size: str):
    """A random-weight AceStepPipeline with the given shape (tokenizer: the tiny fixture one)."""
    import torch
    from diffusers import (
        AceStepConditionEncoder,
        AceStepPipeline,
        AceStepTransformer1DModel,
        AutoencoderOobleck,
        FlowMatchEulerDiscreteScheduler,
    )
    from make_acestep import build_tokenizer
    from transformers import Qwen3Config, Qwen3Model

    qwen_kw, common, (lyric_layers, timbre_layers, dit_layers), vae_channels = SIZES[size]
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    qwen = Qwen3Model(Qwen3Config(max_position_embeddings=4096, use_cache=False, **qwen_kw))
    cond = AceStepConditionEncoder(
        text_hidden_dim=qwen_kw["hidden_size"],
        timbre_hidden_dim=64,
        num_lyric_encoder_hidden_layers=lyric_layers,
        num_timbre_encoder_hidden_layers=timbre_layers,
        **common,
    )
    dit = AceStepTransformer1DModel(
        num_hidden_layers=dit_layers,
        in_channels=192,
        audio_acoustic_hidden_dim=64,
        is_turbo=True,
        model_version="turbo",
        **common,
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=vae_channels,
        downsampling_ratios=[2, 4, 4, 6, 10],
        channel_multiples=[1, 2, 4, 8, 16],
        decoder_channels=vae_channels,
        decoder_input_channels=64,
        audio_channels=2,
        sampling_rate=48000,
    )
    for module in (qwen, cond, dit, vae):
        module.eval()
    return AceStepPipeline(
        vae=vae,
        text_encoder=qwen,
        tokenizer=tokenizer,
        transformer=dit,
        condition_encoder=cond,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0),
    )


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, CUDA kernels, ORT's first-run optimisations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_dit(pipe, model_dir: Path, frames: int, device: str, threads: int, repeats: int):
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    frames += frames % 2
    x = rng.standard_normal((1, frames, 64), dtype=np.float32)
    ctx = rng.standard_normal((1, frames, 128), dtype=np.float32)
    enc = rng.standard_normal((1, 400, pipe.transformer.config.hidden_size), dtype=np.float32)
    t = np.array([0.5], np.float32)

    dit = pipe.transformer.to(device)
    tx = {
        k: torch.from_numpy(v).to(device)
        for k, v in dict(hidden_states=x, context_latents=ctx, encoder_hidden_states=enc).items()
    }
    tt = torch.from_numpy(t).to(device)

    def run_torch():
        with torch.no_grad():
            dit(timestep=tt, timestep_r=tt, return_dict=False, **tx)
        if device == "cuda":
            torch.cuda.synchronize()

    torch_s = timed(run_torch, repeats)
    dit.to("cpu")

    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_dir / "transformer.onnx"), opts, providers=providers)
    feed = dict(
        hidden_states=x, timestep=t, timestep_r=t, encoder_hidden_states=enc, context_latents=ctx
    )
    ort_s = timed(lambda: session.run(None, feed), repeats)
    return {
        "bench": "dit",
        "frames": frames,
        "torch_device": device,
        "torch_ms": torch_s * 1e3,
        "ort_provider": session.get_providers()[0],
        "ort_ms": ort_s * 1e3,
    }


def bench_track(pipe, model_dir: Path, duration: float, device: str, threads: int):
    import torch

    from lofitui.engines.acestep import AceStepEngine, AceStepSettings
    from lofitui.engines.runtime import RuntimeOptions

    ort_device = "cuda" if device == "cuda" else "cpu"
    try:
        engine = AceStepEngine.load(model_dir, RuntimeOptions(ort_device, threads))
    except Exception:
        engine = AceStepEngine.load(model_dir, RuntimeOptions("cpu", threads))
    settings = AceStepSettings(prompt="lofi piano, vinyl crackle", duration_s=duration, steps=8)
    start = time.perf_counter()
    engine.render(settings)
    lofi_s = time.perf_counter() - start

    pipe.to(device)
    start = time.perf_counter()
    with torch.no_grad():
        pipe(
            prompt="lofi piano, vinyl crackle",
            audio_duration=duration,
            num_inference_steps=8,
            guidance_scale=1.0,
            generator=torch.Generator(device).manual_seed(0),
        )
    if device == "cuda":
        torch.cuda.synchronize()
    torch_s = time.perf_counter() - start
    return {
        "bench": "track",
        "duration_s": duration,
        "lofi_s": lofi_s,
        "lofi_rtf": duration / lofi_s,
        "diffusers_device": device,
        "diffusers_s": torch_s,
        "diffusers_rtf": duration / torch_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--track", action="store_true", help="also time whole tracks")
    parser.add_argument("--work", type=Path, default=None, help="keep the export here")
    args = parser.parse_args(argv)

    import torch

    from lofitui.export.acestep import export_acestep

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    pipe = build(args.size)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    print(
        json.dumps(
            {
                "bench": "build",
                "size": args.size,
                "dit_params": params,
                "seconds": time.perf_counter() - start,
            }
        ),
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.work or Path(tmp) / "acestep"
        components = None if args.track else ("transformer",)
        start = time.perf_counter()
        if not (model_dir / "transformer.onnx").is_file():
            kwargs = {"components": components} if components else {}
            export_acestep(pipe, model_dir, **kwargs)
        print(json.dumps({"bench": "export", "seconds": time.perf_counter() - start}), flush=True)
        frames = math.ceil(args.duration * 25)
        result = bench_dit(pipe, model_dir, frames, args.device, args.threads, args.repeats)
        result["rtf_8_steps_dit_only"] = args.duration / (8 * result["ort_ms"] / 1e3)
        print(json.dumps(result), flush=True)
        if args.track:
            print(
                json.dumps(bench_track(pipe, model_dir, args.duration, args.device, args.threads)),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
