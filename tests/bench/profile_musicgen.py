"""Where a MusicGen track's time goes on this machine (issue #12), with the bandwidth arithmetic.

Run by hand (never in CI), from the repository root, on a quiet machine::

    PYTHONPATH=. python tests/bench/profile_musicgen.py [--model DIR] [--quant q8kv]
        [--threads 2] [--seconds 30]

``--model`` defaults to the full-size random-weight musicgen-small export that
bench_musicgen.py builds (tests/bench/.cache/musicgen-small-random, with its fast decoders).
It prints, in one run on the same weights:

1. **Components of a real track**: ``engine.stream`` of a ``--seconds`` track with the default
   settings (guidance, top-k sampling, streamed EnCodec chunks), its wall time split into the
   text encoder, the cross-attention projection + prefill, the decoder steps (ONNX Runtime),
   EnCodec, and the rest (sampling, the delay pattern, Python), with the real-time factor.
2. **A decoder step by operator** at positions 1, 500 and 1500 (ONNX Runtime's own profiler on a
   second session of the same graph): milliseconds per step for the weight matrices
   (MatMulNBits / MatMulInteger / MatMul, with their quantize ops), the self-attention
   (GroupQueryAttention), the cross-attention and the rest.
3. **Bandwidth**: the bytes a step must read (weights, and the key/value cache up to the
   position), what this machine reads per second (numpy over a 1 GB array on one and on two
   threads, measured in the same run), and so the floor a step cannot go under and the RTF it
   allows, against what the step costs now.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lofitui.convert.formats import DEFAULT_FAST_QUANT
from lofitui.engines.base import TrackRequest
from lofitui.engines.musicgen import MusicGenEngine
from lofitui.engines.musicgen_decoder import FastDecoder
from lofitui.engines.runtime import RuntimeOptions, session_options

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / ".cache" / "musicgen-small-random"
PROMPT = "lofi hip hop beat with warm piano and vinyl crackle"
POSITIONS = (1, 500, 1500)
STEPS = 8
FRAME_RATE = 50
WEIGHT_OPS = {"MatMulNBits", "MatMulInteger", "MatMul", "DynamicQuantizeLinear", "Gemm"}


class Clock:
    """Wall seconds spent inside wrapped callables, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return timed


def components(engine: MusicGenEngine, seconds: float) -> None:
    clock = Clock()
    decoder = engine._decoder
    decoder.start = clock.wrap("cross + prefill", decoder.start)
    decoder.step = clock.wrap("decoder steps", decoder.step)
    engine.encode_text = clock.wrap("text encoder (T5)", engine.encode_text)
    engine._encodec_run = clock.wrap("EnCodec", engine._encodec_run)
    request = TrackRequest(PROMPT, seconds, seed=3, model="musicgen-small")
    list(engine.stream(TrackRequest(PROMPT, 5.0, seed=1, model="musicgen-small")))  # warm-up
    clock.seconds.clear()
    clock.calls.clear()
    start = time.perf_counter()
    for _ in engine.stream(request):
        pass
    total = time.perf_counter() - start
    rtf = total / seconds
    print(f"\n1. a {seconds:g} s track through engine.stream: {total:.1f} s, RTF {rtf:.2f}")
    rest = total - sum(clock.seconds.values())
    rows = [*clock.seconds.items(), ("sampling, delay pattern, Python", rest)]
    for name, spent in rows:
        calls = clock.calls.get(name)
        each = f"  ({calls} calls, {spent / calls * 1000:.1f} ms each)" if calls else ""
        print(f"   {name:34s} {spent:7.2f} s  {spent / total * 100:5.1f} %{each}")


def _profiled(step: Path, threads: int, folder: Path) -> ort.InferenceSession:
    opts = session_options(threads)
    opts.enable_profiling = True
    opts.profile_file_prefix = str(folder / "step")
    return ort.InferenceSession(os.fspath(step), opts, providers=["CPUExecutionProvider"])


def _bucket(op: str, node: str) -> str:
    if op in WEIGHT_OPS:
        return "weights (MatMul*)"
    if op == "GroupQueryAttention":
        return "self-attention (GQA)"
    if "encoder_attn" in node or "cross" in node.lower():
        return "cross-attention"
    return "other ops"


def operators(model: Path, step: Path, cross: Path, threads: int) -> dict[int, dict[str, float]]:
    """ms per step by operator bucket at each position (ORT's profiler, median-free mean)."""
    engine = MusicGenEngine.load(model, RuntimeOptions("cpu", threads), decoder="split")
    hidden, mask = engine.encode_text(PROMPT)
    del engine
    hidden = np.concatenate([hidden, np.zeros_like(hidden)])
    mask = np.concatenate([mask, np.zeros_like(mask)])
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 2048, size=(8, max(POSITIONS) + STEPS + 1))
    tokens[:, 0] = 2048
    result: dict[int, dict[str, float]] = {}
    print(f"\n2. one decoder step by operator ({step.name}, mean of {STEPS} steps):")
    for pos in POSITIONS:
        with tempfile.TemporaryDirectory() as tmp:
            runner = FastDecoder(step, cross, RuntimeOptions("cpu", threads))
            runner._session = _profiled(step, threads, Path(tmp))
            runner.start(tokens[:, :pos], hidden, mask, capacity=pos + STEPS + 1)
            walls = []
            for s in range(pos, pos + STEPS):
                t = time.perf_counter()
                runner.step(tokens[:, s : s + 1])
                walls.append(time.perf_counter() - t)
            events = json.loads(Path(runner._session.end_profiling()).read_text())
        runs = [e for e in events if e.get("name") == "model_run"][-STEPS:]
        first = runs[0]["ts"]
        buckets: dict[str, float] = defaultdict(float)
        for e in events:
            if e.get("cat") == "Node" and e["ts"] >= first and e["name"].endswith("_kernel_time"):
                buckets[_bucket(e["args"]["op_name"], e["name"])] += e["dur"] / 1000 / STEPS
        buckets["wall (Python + ORT)"] = float(np.mean(walls) * 1000)
        result[pos] = dict(buckets)
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(buckets.items()))
        print(f"   position {pos:4d}: {parts} (ms)")
    return result


def read_bandwidth() -> tuple[float, float]:
    """GB/s numpy reads from a 1 GB array (no cache can hold it) on one and two threads."""
    data = np.ones(2**27, dtype=np.float64)  # 1 GiB
    data.sum()

    def read(part: np.ndarray) -> float:
        return float(part.sum())

    best1 = best2 = 0.0
    halves = np.array_split(data, 2)
    with ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            t = time.perf_counter()
            read(data)
            best1 = max(best1, data.nbytes / (time.perf_counter() - t) / 1e9)
            t = time.perf_counter()
            list(pool.map(read, halves))
            best2 = max(best2, data.nbytes / (time.perf_counter() - t) / 1e9)
    return best1, best2


def bandwidth(
    step: Path,
    ops: dict[int, dict[str, float]],
    layers: int,
    heads: int,
    head_dim: int,
    kv_bytes: int,
    rows: int,
) -> None:
    import onnx

    graph = onnx.load(os.fspath(step), load_external_data=False).graph
    weight_bytes = sum(
        int(np.prod(t.dims)) * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        for t in graph.initializer
    )
    one, two = read_bandwidth()
    print(f"\n3. bandwidth: numpy reads {one:.1f} GB/s on one thread, {two:.1f} GB/s on two")
    print(f"   the step graph holds {weight_bytes / 1e6:.0f} MB of weights, read once per step")
    floor_w = weight_bytes / (two * 1e9) * 1000
    for pos, buckets in ops.items():
        cache = 2 * layers * rows * heads * pos * head_dim * kv_bytes
        matmul = buckets.get("weights (MatMul*)", 0.0)
        gqa = buckets.get("self-attention (GQA)", 0.0)
        achieved = weight_bytes / (matmul / 1000) / 1e9 if matmul else float("nan")
        floor = (weight_bytes + cache) / (two * 1e9) * 1000
        wall = buckets["wall (Python + ORT)"]
        print(
            f"   position {pos:4d}: weights {matmul:5.1f} ms ({achieved:4.1f} GB/s, "
            f"{achieved / two * 100:3.0f} % of two threads' read), cache {cache / 1e6:5.1f} MB "
            f"in GQA {gqa:5.1f} ms; floor {floor:4.1f} ms vs step {wall:.1f} ms"
        )
    budget = 1000 / FRAME_RATE
    print(
        f"   real time needs <= {budget:.0f} ms per step on average (50 steps per second of "
        f"audio, T5 and EnCodec included); the weights alone take >= {floor_w:.1f} ms at the "
        f"measured read bandwidth"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--quant", default=DEFAULT_FAST_QUANT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, ORT {ort.__version__}")
    engine = MusicGenEngine.load(
        args.model, RuntimeOptions("cpu", args.threads), decoder="fast", fast_quant=args.quant
    )
    components(engine, args.seconds)
    step = engine.files.fast[args.quant]
    cross = engine.files.cross_kv
    layout = engine._decoder.layout
    del engine
    ops = operators(args.model, step, cross, args.threads)
    bandwidth(
        step,
        ops,
        layout.layers,
        layout.heads,
        layout.head_dim,
        np.dtype(layout.dtype).itemsize,
        rows=2,
    )
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
