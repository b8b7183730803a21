"""The default download's CPU path against the fp32 export: logits of the fast decoder built from
fp16 weights, full-size musicgen-small shape (random weights), against the exact fp32 graphs.

The fp16 export stores each fp32 weight rounded to float16 (optimum's fp16 export and
onnxruntime's float16 converter both do); this writes a decoder holding exactly those weights,
builds lofi's fast decoder from it through the same code a user's machine runs
(``build_fast_decoder``: widened to float32, then fp32 / q8kv / q4kv, the three compute types),
and compares 9 decoder steps x 8 rows with ``tests/bench/bench_musicgen.py``'s exact-graph
logits on the same inputs.

    PYTHONPATH=. python tests/bench/bench_fp16_default.py SRC_DIR OUT_DIR

SRC_DIR: the fp32 export made by bench_musicgen.py (read only); OUT_DIR: scratch (~3 GB).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

PROMPT = "lofi hip hop, warm piano, vinyl crackle"


def fp16_weights_copy(src: Path, dest: Path) -> None:
    """``src`` with every float32 initializer rounded to float16 (the builder reads only these)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
            )
    onnx.save(model, str(dest))


def step_logits(engine) -> np.ndarray:
    hidden, mask = engine.encode_text(PROMPT)
    hidden = np.concatenate([hidden, np.zeros_like(hidden)])
    mask = np.concatenate([mask, np.zeros_like(mask)])
    tokens = np.random.default_rng(0).integers(0, 2048, size=(8, 16))
    tokens[:, 0] = 2048
    d = engine._decoder
    out = [d.start(tokens[:, :1], hidden, mask, capacity=32)]
    out += [d.step(tokens[:, s : s + 1]) for s in range(1, 9)]
    return np.stack(out).astype(np.float32)


def compare(name: str, got: np.ndarray, exact: np.ndarray) -> None:
    err = np.abs(got - exact).max()
    top1 = (got.argmax(-1) == exact.argmax(-1)).mean()
    rows_g, rows_e = got.reshape(-1, got.shape[-1]), exact.reshape(-1, exact.shape[-1])
    top5 = np.mean(
        [
            len(set(np.argsort(a)[-5:]) & set(np.argsort(b)[-5:])) / 5
            for a, b in zip(rows_g, rows_e, strict=True)
        ]
    )
    print(
        f"{name}: logit error {err:.3g} (range ±{np.abs(exact).max():.2f}), "
        f"top-1 {top1:.3f}, top-5 {top5:.3f}",
        flush=True,
    )


def main() -> None:
    from lofitui.convert.formats import CROSS_KV
    from lofitui.convert.musicgen_fast import build_fast_decoder
    from lofitui.engines.musicgen import MusicGenEngine
    from lofitui.engines.musicgen_files import MusicGenFiles
    from lofitui.engines.runtime import RuntimeOptions

    parser = argparse.ArgumentParser()
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--quants", default="fp32,q8kv,q4kv")
    args = parser.parse_args()
    args.src, args.out = args.src.resolve(), args.out.resolve()  # the views link to them
    options = RuntimeOptions("cpu", 2)
    exact = step_logits(MusicGenEngine.load(args.src, options, decoder="split"))
    args.out.mkdir(parents=True, exist_ok=True)
    fp16 = args.out / "decoder_model.onnx"
    if not fp16.exists():
        fp16_weights_copy(args.src / "decoder_model.onnx", fp16)
    print(
        f"fp16 decoder_model.onnx: {fp16.stat().st_size / 1e6:.0f} MB "
        f"(fp32: {(args.src / 'decoder_model.onnx').stat().st_size / 1e6:.0f} MB)",
        flush=True,
    )
    config = MusicGenFiles.find(args.src).read_config()["decoder"]
    for quant in args.quants.split(","):
        t = time.perf_counter()
        path = build_fast_decoder(
            fp16,
            args.out,
            heads=config["num_attention_heads"],
            max_positions=config.get("max_position_embeddings", 2048),
            quant=quant,
            # the int8-cache builds calibrate by generating (the user's own text encoder; the
            # fp32 one here: the scales' 1.25x headroom dwarfs fp16 rounding)
            text_encoder=args.src / "text_encoder.onnx",
            tokenizer=args.src / "tokenizer.json",
        )
        print(
            f"built {path.name} ({path.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        # The fast decoder next to the exact export's other files, as the engine finds it.
        view = args.out / f"view-{quant}"
        view.mkdir(exist_ok=True)
        for f in (
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "text_encoder.onnx",
            "encodec_decode.onnx",
            "decoder_model.onnx",
            "decoder_with_past_model.onnx",
        ):
            if not (view / f).exists():
                os.symlink(args.src / f, view / f)
        for f in (path.name, CROSS_KV):
            if not (view / f).exists():
                os.symlink(args.out / f, view / f)
        engine = MusicGenEngine.load(view, options, decoder="fast", fast_quant=quant)
        compare(f"fast {quant} from fp16 weights", step_logits(engine), exact)
        del engine


if __name__ == "__main__":
    main()
