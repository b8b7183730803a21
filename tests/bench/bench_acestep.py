"""ACE-Step 1.5 speed: lofi's ONNX Runtime path vs diffusers on the same random weights.

Run by hand (not in CI), with the ``export-acestep`` extra installed plus lofi itself::

    python tests/bench/bench_acestep.py --size full --duration 60 [--device cpu|cuda] [--track]
        [--threads N] [--work DIR]

``--size`` picks the model shape: ``full`` is the real ACE-Step 1.5 turbo configuration
(DiT 1.58 B params, ~6 GB fp32; ~12 GB of weights in all), ``small`` a 4-layer/512-wide
stand-in for a quick check of this script. Weights are random: speed does not depend on them.

Every phase runs in its own process, so no phase holds more than it needs and each reports its
peak resident memory (``peak_rss_gib``):

1. ``build``: the random pipeline is built one component at a time (fixed seed, fixed order) and
   saved in diffusers format (safetensors) under ``DIR/pipeline``;
2. ``export``: each ONNX component is exported by lofi's exporter in a process that loads only
   that component (the others stay on torch's ``meta`` device), into ``DIR/onnx``;
3. ``dit``: milliseconds per DiT call (batch 1, L = duration x 25 frames, a 400-token condition)
   in PyTorch (``--device``) and in ONNX Runtime (CUDA provider when available and
   ``--device cuda``, else CPU);
4. ``track`` (with ``--track``): whole-track wall time and real-time factor (audio seconds per
   compute second) for lofi's engine (text -> condition -> 8 Euler steps -> tiled VAE) and for
   diffusers' ``AceStepPipeline`` loaded from ``DIR/pipeline``, on the same duration.

With ``--work DIR`` the saved pipeline and the export are kept and a re-run skips phases 1-2
(only the missing components are exported). Full size, 30 s, CPU: the largest phase is diffusers'
pipeline at ~16.3 GiB (without ``accelerate`` it loads each state dict next to its module),
lofi's engine ~12.1 GiB, each export <= 6.5 GiB, so a 24 GB machine is enough.
Results are JSON lines.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

SEED = 0
PROMPT = "lofi piano, vinyl crackle"
# ONNX component name -> the pipeline attribute (diffusers subfolder) it is exported from.
COMPONENTS = {
    "text_encoder": "text_encoder",
    "condition_encoder": "condition_encoder",
    "transformer": "transformer",
    "vae_decoder": "vae",
}

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


# -- phases (each runs in its own process) ----------------------------------------------------


def in_process(fn, *args) -> dict:
    """Run ``fn(*args)`` in a fresh process; its result gains the process's peak RSS."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_measured, fn, *args).result()


def _measured(fn, *args) -> dict:
    result = fn(*args)
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return result


def _torch(threads: int):
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch


def _modules(size: str):
    """Constructors of the four modules, in the order (and so the RNG draws) of the build."""
    from diffusers import AceStepConditionEncoder, AceStepTransformer1DModel, AutoencoderOobleck
    from transformers import Qwen3Config, Qwen3Model

    qwen_kw, common, (lyric_layers, timbre_layers, dit_layers), vae_channels = SIZES[size]
    return {
        "text_encoder": lambda: Qwen3Model(
            Qwen3Config(max_position_embeddings=4096, use_cache=False, **qwen_kw)
        ),
        "condition_encoder": lambda: AceStepConditionEncoder(
            text_hidden_dim=qwen_kw["hidden_size"],
            timbre_hidden_dim=64,
            num_lyric_encoder_hidden_layers=lyric_layers,
            num_timbre_encoder_hidden_layers=timbre_layers,
            **common,
        ),
        "transformer": lambda: AceStepTransformer1DModel(
            num_hidden_layers=dit_layers,
            in_channels=192,
            audio_acoustic_hidden_dim=64,
            is_turbo=True,
            model_version="turbo",
            **common,
        ),
        "vae": lambda: AutoencoderOobleck(
            encoder_hidden_size=vae_channels,
            downsampling_ratios=[2, 4, 4, 6, 10],
            channel_multiples=[1, 2, 4, 8, 16],
            decoder_channels=vae_channels,
            decoder_input_channels=64,
            audio_channels=2,
            sampling_rate=48000,
        ),
    }


def save_pipeline(size: str, path: Path) -> dict:
    """Build the random-weight pipeline one module at a time and save it in diffusers format.

    Only one module is alive at a time; the seed and construction order are fixed, so the
    weights are what building the whole pipeline in one go would give. ``model_index.json`` is
    written last: its presence marks a complete save. Tokenizer: the tiny fixture one.
    """
    torch = _torch(0)
    from diffusers import AceStepPipeline, FlowMatchEulerDiscreteScheduler
    from make_acestep import build_tokenizer

    start = time.perf_counter()
    if path.exists():
        shutil.rmtree(path)
    torch.manual_seed(SEED)
    tokenizer = build_tokenizer()
    makers = _modules(size)
    params = 0
    for name, make in makers.items():
        module = make().eval()
        if name == "transformer":
            params = sum(p.numel() for p in module.parameters())
        module.save_pretrained(path / name)
        del module
    with torch.device("meta"):
        stand_ins = {name: make() for name, make in makers.items()}
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0)
    pipe = AceStepPipeline(tokenizer=tokenizer, scheduler=scheduler, **stand_ins)
    tokenizer.save_pretrained(path / "tokenizer")
    scheduler.save_pretrained(path / "scheduler")
    pipe.save_config(path)
    return {
        "bench": "build",
        "size": size,
        "dit_params": params,
        "seconds": time.perf_counter() - start,
    }


def _meta_module(pipeline_dir: Path, name: str):
    """A weightless stand-in for a saved module (config only), on torch's meta device."""
    import torch
    from diffusers import AceStepConditionEncoder, AceStepTransformer1DModel, AutoencoderOobleck
    from transformers import Qwen3Config, Qwen3Model

    sub = pipeline_dir / name
    with torch.device("meta"):
        if name == "text_encoder":
            return Qwen3Model(Qwen3Config.from_pretrained(sub))
        cls = {
            "condition_encoder": AceStepConditionEncoder,
            "transformer": AceStepTransformer1DModel,
            "vae": AutoencoderOobleck,
        }[name]
        return cls.from_config(cls.load_config(sub))


def export_component(pipeline_dir: Path, component: str, out: Path) -> dict:
    """Export one ONNX component (plus the side data) with only that module loaded."""
    torch = _torch(0)
    from diffusers import AceStepPipeline
    from safetensors import safe_open

    from lofitui.convert.acestep import export_acestep

    start = time.perf_counter()
    real = COMPONENTS[component]
    stand_ins = {
        name: _meta_module(pipeline_dir, name) for name in COMPONENTS.values() if name != real
    }
    cond = stand_ins.get("condition_encoder")
    if cond is not None:
        # The side data (silence latent, null condition) is read from the condition encoder.
        for shard in sorted((pipeline_dir / "condition_encoder").glob("*.safetensors")):
            with safe_open(str(shard), "pt") as f:
                keys = set(f.keys())
                if "silence_latent" in keys:
                    cond.silence_latent = f.get_tensor("silence_latent")
                if "null_condition_emb" in keys:
                    cond.null_condition_emb = torch.nn.Parameter(f.get_tensor("null_condition_emb"))
    pipe = AceStepPipeline.from_pretrained(pipeline_dir, torch_dtype=torch.float32, **stand_ins)
    load_s = time.perf_counter() - start
    export_acestep(pipe, out, components=(component,))
    return {
        "bench": "export",
        "component": component,
        "load_s": load_s,
        "seconds": time.perf_counter() - start,
    }


def bench_dit(
    pipeline_dir: Path, model_dir: Path, frames: int, device: str, threads: int, repeats: int
) -> dict:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    frames += frames % 2
    x = rng.standard_normal((1, frames, 64), dtype=np.float32)
    ctx = rng.standard_normal((1, frames, 128), dtype=np.float32)
    hidden = json.loads((pipeline_dir / "transformer" / "config.json").read_text())["hidden_size"]
    enc = rng.standard_normal((1, 400, hidden), dtype=np.float32)
    t = np.array([0.5], np.float32)
    feed = dict(
        hidden_states=x, timestep=t, timestep_r=t, encoder_hidden_states=enc, context_latents=ctx
    )
    torch_s = _time_torch_dit(pipeline_dir, feed, device, threads, repeats)

    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_dir / "transformer.onnx"), opts, providers=providers)
    ort_s = timed(lambda: session.run(None, feed), repeats)
    return {
        "bench": "dit",
        "frames": frames,
        "torch_device": device,
        "torch_ms": torch_s * 1e3,
        "ort_provider": session.get_providers()[0],
        "ort_ms": ort_s * 1e3,
    }


def _time_torch_dit(
    pipeline_dir: Path, feed: dict[str, np.ndarray], device: str, threads: int, repeats: int
) -> float:
    """Seconds per call of the saved DiT in PyTorch; the module is freed on return."""
    from diffusers import AceStepTransformer1DModel

    torch = _torch(threads)
    dit = AceStepTransformer1DModel.from_pretrained(
        pipeline_dir / "transformer", torch_dtype=torch.float32
    )
    dit = dit.eval().to(device)
    inputs = {k: torch.from_numpy(v).to(device) for k, v in feed.items()}

    def run():
        with torch.no_grad():
            dit(return_dict=False, **inputs)
        if device == "cuda":
            torch.cuda.synchronize()

    return timed(run, repeats)


def track_lofi(model_dir: Path, duration: float, device: str, threads: int) -> dict:
    """lofi's engine (numpy + onnxruntime, no torch): load, then one timed render."""
    from lofitui.engines.acestep import AceStepEngine, AceStepSettings
    from lofitui.engines.runtime import RuntimeOptions

    start = time.perf_counter()
    try:
        engine = AceStepEngine.load(model_dir, RuntimeOptions(device, threads))
    except Exception:
        engine = AceStepEngine.load(model_dir, RuntimeOptions("cpu", threads))
    load_s = time.perf_counter() - start
    settings = AceStepSettings(prompt=PROMPT, duration_s=duration, steps=8, seed=SEED)
    start = time.perf_counter()
    audio = engine.render(settings)
    seconds = time.perf_counter() - start
    return {
        "engine": "lofi",
        "device": engine.describe()["device"],
        "load_s": load_s,
        "seconds": seconds,
        "audio_s": audio.samples.shape[0] / audio.sample_rate,
    }


def track_diffusers(pipeline_dir: Path, duration: float, device: str, threads: int) -> dict:
    """diffusers' AceStepPipeline (PyTorch) on the saved weights: load, then one timed call."""
    torch = _torch(threads)
    from diffusers import AceStepPipeline

    start = time.perf_counter()
    pipe = AceStepPipeline.from_pretrained(pipeline_dir, torch_dtype=torch.float32).to(device)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        audio = pipe(
            prompt=PROMPT,
            audio_duration=duration,
            num_inference_steps=8,
            guidance_scale=1.0,
            generator=torch.Generator(device).manual_seed(SEED),
        ).audios
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "engine": "diffusers",
        "device": device,
        "load_s": load_s,
        "seconds": seconds,
        "audio_s": audio.shape[-1] / pipe.vae.config.sampling_rate,
    }


# -- driver ------------------------------------------------------------------------------------


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, CUDA kernels, ORT's first-run optimisations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def prepare(work: Path, size: str, components: tuple[str, ...]) -> tuple[Path, Path]:
    """The saved pipeline and an ONNX directory holding ``components``, reusing what exists."""
    pipeline_dir, model_dir = work / "pipeline", work / "onnx"
    marker = work / "bench.json"
    if marker.is_file() and json.loads(marker.read_text()).get("size") != size:
        raise SystemExit(f"{work} holds another size: pick another --work directory")
    if not (pipeline_dir / "model_index.json").is_file():
        work.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"size": size, "seed": SEED}) + "\n")
        if model_dir.exists():
            shutil.rmtree(model_dir)
        emit(in_process(save_pipeline, size, pipeline_dir))
    config_path = model_dir / "acestep.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    done = set(config["files"]) if config else set()
    missing = [name for name in components if name not in done]
    total = 0.0
    for name in missing:
        part = work / "parts" / name
        result = emit(in_process(export_component, pipeline_dir, name, part))
        total += result["seconds"]
        part_config = json.loads((part / "acestep.json").read_text())
        if config is None:
            shutil.move(part, model_dir)  # the first part brings the side data
            config = part_config
        else:
            for path in part.glob(f"{name}.onnx*"):  # the graph and its external data
                shutil.move(path, model_dir / path.name)
            config["files"][name] = part_config["files"][name]
            config_path.write_text(json.dumps(config, indent=2) + "\n")
            shutil.rmtree(part)
    if (work / "parts").is_dir():
        shutil.rmtree(work / "parts")
    emit({"bench": "export", "exported": missing, "seconds": total})
    return pipeline_dir, model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--track", action="store_true", help="also time whole tracks")
    parser.add_argument("--work", type=Path, default=None, help="keep the pipeline and export here")
    args = parser.parse_args(argv)

    components = tuple(COMPONENTS) if args.track else ("transformer",)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_dir, model_dir = prepare(args.work or Path(tmp), args.size, components)
        frames = math.ceil(args.duration * 25)
        result = in_process(
            bench_dit, pipeline_dir, model_dir, frames, args.device, args.threads, args.repeats
        )
        result["rtf_8_steps_dit_only"] = args.duration / (8 * result["ort_ms"] / 1e3)
        emit(result)
        if args.track:
            lofi = in_process(track_lofi, model_dir, args.duration, args.device, args.threads)
            emit({"bench": "track_phase", **lofi})
            ref = in_process(
                track_diffusers, pipeline_dir, args.duration, args.device, args.threads
            )
            emit({"bench": "track_phase", **ref})
            emit(
                {
                    "bench": "track",
                    "duration_s": args.duration,
                    "threads": args.threads,
                    "lofi_s": lofi["seconds"],
                    "lofi_rtf": args.duration / lofi["seconds"],
                    "lofi_peak_rss_gib": lofi["peak_rss_gib"],
                    "diffusers_device": ref["device"],
                    "diffusers_s": ref["seconds"],
                    "diffusers_rtf": args.duration / ref["seconds"],
                    "diffusers_peak_rss_gib": ref["peak_rss_gib"],
                    "speedup": ref["seconds"] / lofi["seconds"],
                }
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
