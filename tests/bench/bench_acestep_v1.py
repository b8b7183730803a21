"""ACE-Step v1 (3.5B) speed: lofi's ONNX Runtime path vs the original PyTorch code, same weights.

Run by hand (not in CI) in an environment with the ``export-acestep-v1`` extra and the original
code (see the README), from the repository root::

    PYTHONPATH=. python tests/bench/bench_acestep_v1.py --work DIR [--duration 30] [--threads 2]
        [--device cpu|cuda] [--repeats 2] [--code ACE_STEP_CLONE]

The models have the real configurations (the transformer's is the one the original code ships,
``acestep/models/config.json``: 24 layers, 2560 wide, 2.5 B parameters, 10 GB in float32; UMT5-base;
the DCAE and the vocoder as the checkpoint's) and random weights: speed does not depend on them.
Every phase runs in its own process, so none holds more than it needs, and reports its peak
resident memory (``peak_rss_gib``):

1. ``build``: the random models, saved in the original checkpoint layout under ``DIR/checkpoint``;
2. ``export``: ``lofi models export ace-step-v1``'s exporter, into ``DIR/onnx``;
3. ``decoder``: seconds per ``transformer_decoder`` evaluation (batch 1 like both pipelines, F
   latent frames for ``--duration``, a 12-token prompt) in PyTorch (the original
   ``ACEStepTransformer2DModel.decode``) and in ONNX Runtime with lofi's session options;
4. ``window``: one 128-frame DCAE window (11.9 s of audio) and its vocoding, both ways.

The whole track is then predicted at the original defaults (60 Euler steps; APG inside the 0.5
guidance interval: 30 guided steps of two evaluations, 30 of one, so 90 evaluations; and the DCAE
windows the track needs) and printed as a real-time factor (audio seconds per compute second).
With ``--work DIR`` the checkpoint and the export are kept and a re-run skips phases 1-2.
Results are JSON lines.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np
from bench_acestep import emit, in_process, timed

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

SEED = 0
PROMPT_TOKENS = 12
STEPS = 60
GUIDANCE_INTERVAL = 0.5
DCAE_WINDOW = 128
# UMT5-base (google/umt5-base config.json).
UMT5 = dict(
    vocab_size=256384,
    d_model=768,
    d_kv=64,
    d_ff=2048,
    num_layers=12,
    num_heads=12,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
    tie_word_embeddings=False,
)
# The DCAE at full size (music_dcae_f8c8's sizes; its structure is the fixture's DCAE_LAYOUT).
DCAE_SIZES = dict(
    attention_head_dim=32,
    encoder_block_out_channels=(128, 256, 512, 1024),
    decoder_block_out_channels=(128, 256, 512, 1024),
    encoder_layers_per_block=(2, 2, 3, 3),
    decoder_layers_per_block=(3, 3, 3, 3),
    scaling_factor=0.41407,
)


def frames_for(duration: float) -> int:
    """The original's latent frame count: int(duration * 44100 / 512 / 8)."""
    return int(duration * 44100 / 512 / 8)


def evaluations(steps: int = STEPS, interval: float = GUIDANCE_INTERVAL) -> int:
    """Transformer evaluations of one track: two inside the guidance interval, one outside."""
    start = int(steps * (1 - interval) / 2)
    end = int(steps * (interval / 2 + 0.5))
    return steps + (end - start)


def _classes(code: str | None):
    from lofitui.convert import _acestep_v1_torch as wrappers
    from lofitui.convert.acestep_v1 import code_dir

    return wrappers.import_acestep(code_dir(code))


def _torch(threads: int):
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    return torch


# -- phases (each runs in its own process) ----------------------------------------------------


def build(checkpoint: Path, code: str | None) -> dict:
    """The random full-size models in the original layout, one at a time."""
    torch = _torch(0)
    classes = _classes(code)  # first: it hides the broken torchvision before transformers looks
    from make_acestep_v1 import DCAE_LAYOUT, build_tokenizer
    from transformers import UMT5Config

    start = time.perf_counter()
    # The original code ships the transformer's real configuration next to its class.
    config = json.loads(
        (Path(inspect.getfile(classes.transformer)).parent / "config.json").read_text()
    )
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    parts = {
        "ace_step_transformer": lambda: classes.transformer(**kwargs),
        "music_dcae_f8c8": lambda: classes.dcae(**DCAE_LAYOUT, **DCAE_SIZES),
        "music_vocoder": lambda: classes.vocoder(),
        "umt5-base": lambda: classes.text_encoder(UMT5Config(**UMT5)),
    }
    params = {}
    for folder, make in parts.items():
        with torch.no_grad():
            model = make().eval()
        params[folder] = sum(p.numel() for p in model.parameters())
        model.save_pretrained(checkpoint / folder)
        del model
    build_tokenizer(checkpoint / "umt5-base")
    return {"bench": "build", "params": params, "seconds": time.perf_counter() - start}


def export(checkpoint: Path, out: Path, code: str | None) -> dict:
    from lofitui.convert.acestep_v1 import export_acestep_v1

    start = time.perf_counter()
    export_acestep_v1(checkpoint, out, code=code)
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    return {"bench": "export", "seconds": time.perf_counter() - start, "bytes": sizes}


def _decoder_feed(frames: int, width: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    tokens = 1 + PROMPT_TOKENS + 1  # speaker, prompt, the empty lyric
    return {
        "hidden_states": rng.standard_normal((1, 8, 16, frames), dtype=np.float32),
        "attention_mask": np.ones((1, frames), np.float32),
        "encoder_hidden_states": rng.standard_normal((1, tokens, width), dtype=np.float32),
        "encoder_hidden_mask": np.ones((1, tokens), np.float32),
        "timestep": np.array([500.0], np.float32),
    }


def decoder_torch(checkpoint: Path, frames: int, threads: int, device: str, repeats: int) -> dict:
    torch = _torch(threads)
    classes = _classes(None)
    model = classes.transformer.from_pretrained(
        checkpoint / "ace_step_transformer", torch_dtype=torch.float32
    )
    model = model.eval().to(device)
    feed = {
        k: torch.from_numpy(v).to(device)
        for k, v in _decoder_feed(frames, model.config.inner_dim).items()
    }

    def run() -> None:
        with torch.no_grad():
            model.decode(
                hidden_states=feed["hidden_states"],
                attention_mask=feed["attention_mask"],
                encoder_hidden_states=feed["encoder_hidden_states"],
                encoder_hidden_mask=feed["encoder_hidden_mask"],
                output_length=frames,
                timestep=feed["timestep"],
            )
        if device == "cuda":
            torch.cuda.synchronize()

    return {"bench": "decoder", "runtime": f"torch-{device}", "seconds": timed(run, repeats)}


def _sessions(model_dir: Path, threads: int, device: str):
    from lofitui.engines.runtime import RuntimeOptions, load_session

    options = RuntimeOptions(device=device, threads=threads)
    return options, lambda name: load_session(model_dir / name, options)


def decoder_ort(model_dir: Path, frames: int, threads: int, device: str, repeats: int) -> dict:
    _, load = _sessions(model_dir, threads, device)
    session = load("transformer_decoder.onnx")
    width = session.get_inputs()[2].shape[-1]
    feed = _decoder_feed(frames, int(width))
    seconds = timed(lambda: session.run(["sample"], feed), repeats)
    return {
        "bench": "decoder",
        "runtime": f"ort-{session.get_providers()[0]}",
        "seconds": seconds,
    }


def window_torch(checkpoint: Path, threads: int, device: str, repeats: int) -> dict:
    torch = _torch(threads)
    classes = _classes(None)
    dcae = classes.dcae.from_pretrained(checkpoint / "music_dcae_f8c8", torch_dtype=torch.float32)
    vocoder = classes.vocoder.from_pretrained(checkpoint / "music_vocoder").float()
    dcae, vocoder = dcae.eval().to(device), vocoder.eval().to(device)
    latents = torch.randn(1, 8, 16, DCAE_WINDOW, device=device)

    def run() -> None:
        with torch.no_grad():  # MusicDCAE.decode, one window, both channels
            mel = dcae.decoder(latents / 0.1786 - 1.9091) * 0.5 + 0.5
            mel = mel * 14.0 - 11.0
            vocoder.decode(mel[:, 0])
            vocoder.decode(mel[:, 1])
        if device == "cuda":
            torch.cuda.synchronize()

    return {"bench": "window", "runtime": f"torch-{device}", "seconds": timed(run, repeats)}


def window_ort(model_dir: Path, threads: int, device: str, repeats: int) -> dict:
    _, load = _sessions(model_dir, threads, device)
    dcae, vocoder = load("dcae_decoder.onnx"), load("vocoder.onnx")
    latents = np.random.default_rng(SEED).standard_normal((1, 8, 16, DCAE_WINDOW), np.float32)
    dcae_in, voc_in = dcae.get_inputs()[0].name, vocoder.get_inputs()[0].name

    def run() -> None:
        (mel,) = dcae.run(None, {dcae_in: latents})[:1]
        for channel in range(mel.shape[1]):
            vocoder.run(None, {voc_in: np.ascontiguousarray(mel[:, channel])})

    return {
        "bench": "window",
        "runtime": f"ort-{dcae.get_providers()[0]}",
        "seconds": timed(run, repeats),
    }


def track_lofi(model_dir: Path, duration: float, threads: int, device: str, steps: int) -> dict:
    """lofi's engine end to end (text, guided steps at the original's defaults, overlapped DCAE
    windows, vocoder, 48 kHz): load, then one timed track."""
    from lofitui.engines.acestep_v1 import AceStepV1Engine
    from lofitui.engines.base import TrackRequest
    from lofitui.engines.runtime import RuntimeOptions

    start = time.perf_counter()
    engine = AceStepV1Engine.load(model_dir, RuntimeOptions(device, threads))
    load_s = time.perf_counter() - start
    request = TrackRequest("lofi piano, vinyl crackle", duration, SEED, {"steps": steps})
    start = time.perf_counter()
    audio = engine.generate(request)
    seconds = time.perf_counter() - start
    return {
        "bench": "track (lofi, measured)",
        "device": engine.describe()["device"],
        "steps": steps,
        "evaluations": evaluations(steps),
        "load_s": load_s,
        "seconds": seconds,
        "audio_s": audio.duration_s,
        "rtf": audio.duration_s / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="checkpoint and export kept here")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--code", default=None, help="a clone of the original ACE-Step code")
    parser.add_argument(
        "--track",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also time a whole track of this length through lofi's engine",
    )
    parser.add_argument("--steps", type=int, default=STEPS, help="steps of that track")
    args = parser.parse_args(argv)
    if not 5 <= args.duration <= 240 or args.repeats < 1 or args.threads < 0:
        print("bench_acestep_v1: --duration 5-240, --repeats >= 1, --threads >= 0", file=sys.stderr)
        return 2

    checkpoint, model_dir = args.work / "checkpoint", args.work / "onnx"
    if not (checkpoint / "umt5-base").is_dir():
        emit(in_process(build, checkpoint, args.code))
    if not (model_dir / "vocoder.onnx").is_file():
        emit(in_process(export, checkpoint, model_dir, args.code))
    from lofitui.engines.acestep_v1_decode import window_cores

    frames = frames_for(args.duration)
    how = (args.threads, args.device, args.repeats)
    torch_eval = emit(in_process(decoder_torch, checkpoint, frames, *how))
    ort_eval = emit(in_process(decoder_ort, model_dir, frames, *how))
    torch_window = emit(in_process(window_torch, checkpoint, *how))
    ort_window = emit(in_process(window_ort, model_dir, *how))

    evals = evaluations()
    # The original decodes the track in one pass (about frames / 128 windows' work); lofi
    # decodes overlapping 128-frame windows.
    windows = {"torch": frames / DCAE_WINDOW, "lofi": len(window_cores(frames, DCAE_WINDOW, 16))}
    track = {
        name: evals * ev["seconds"] + windows[name] * win["seconds"]
        for name, ev, win in (
            ("torch", torch_eval, torch_window),
            ("lofi", ort_eval, ort_window),
        )
    }
    emit(
        {
            "bench": "track (predicted)",
            "duration_s": args.duration,
            "frames": frames,
            "evaluations": evals,
            "dcae_windows": windows,
            "torch_s": track["torch"],
            "lofi_s": track["lofi"],
            "torch_rtf": args.duration / track["torch"],
            "lofi_rtf": args.duration / track["lofi"],
            "speedup_decoder": torch_eval["seconds"] / ort_eval["seconds"],
            "speedup_window": torch_window["seconds"] / ort_window["seconds"],
            "speedup_track": track["torch"] / track["lofi"],
        }
    )
    if args.track:
        emit(in_process(track_lofi, model_dir, args.track, *how[:2], args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
